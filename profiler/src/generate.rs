//! Falco allowlist rules generated from a profile (DESIGN §5).
//!
//! One rule per dimension (process, outbound connection, inbound connection,
//! file write) and
//! image. Every list and macro is prefixed `fl_learned_<image>_`, so the file
//! needs nothing from `falco_rules.yaml` and loads alone or next to it. The
//! conditions spell exactly the predicates of [`crate::matcher::behaviour`]
//! and [`Profile::check`]; a test checks verdicts agree event for event.

use crate::glob::{falco_form, falco_quote, FalcoForm};
use crate::model::{Dimension, ImageRef, Profile};
use crate::text::{allowed_macro, l4_literal, rule, rule_with, yaml_scalar};
pub use crate::text::{rule_name, GenerateError};
use crate::yaml;
use ipnet::IpNet;
use std::fmt::Write;

/// The condition of the generated `…_runtime_setup` macro: `matcher::is_runtime_setup`
/// in Falco's fields (runc before it becomes the workload: not in a pid namespace of its
/// own and named `runc…`, running `…/runc`, its protected copy `/` or its memfd copy; or
/// `runc:[2:INIT]` on the copy). The matcher also reads two flags of the probe's that
/// stock Falco has no field for: the kernel saw the runtime's own child (which it reads
/// as setup), or enforce-kill killed the exec (never setup).
pub const RUNTIME_SETUP: &str = "(proc.vpid > 0 and proc.vpid = val(proc.pid) and (proc.name startswith runc or proc.exepath = / or proc.exepath endswith /runc or proc.exepath startswith 'memfd:runc_cloned:')) or (proc.name startswith runc and proc.exepath = /)";

/// Prefix of the image's lists and macros: `fl_learned_` + the image with
/// every character outside `[a-z0-9]` as `_`.
pub fn name_prefix(image: &ImageRef) -> String {
    let s: String = image
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("fl_learned_{s}")
}

/// A value as a list item: bare for plain absolute paths (characters
/// libsinsp's bare-string lexer and ours both read as one word), otherwise a
/// quoted string with Falco's escapes ([`crate::glob::falco_quote`]), as a
/// YAML scalar.
fn item(v: &str) -> String {
    let bare = v.starts_with('/')
        && v.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, ',' | '(' | ')' | '"' | '\'' | '\\' | '=')
        });
    if bare {
        yaml_scalar(v)
    } else {
        yaml_scalar(&falco_quote(v))
    }
}

/// Values of one dimension as Falco spells them: list items (exact values,
/// and both forms of a [`FalcoForm::Dual`]) and globs for the values it
/// cannot spell exactly ([`FalcoForm::Approx`]).
#[derive(Default)]
struct Spelled {
    items: Vec<String>,
    globs: Vec<String>,
}

fn spell<'a>(values: impl Iterator<Item = &'a String>) -> Spelled {
    let mut s = Spelled::default();
    for v in values {
        match falco_form(v) {
            FalcoForm::Exact => s.items.push(item(v)),
            FalcoForm::Dual { raw } => {
                s.items.push(item(&raw));
                s.items.push(item(v));
            }
            FalcoForm::Approx { globs } => s.globs.extend(globs),
        }
    }
    s
}

/// A condition `field glob "g1" or field glob "g2" …`, as a YAML scalar.
fn glob_condition(field: &str, globs: &[String]) -> String {
    let c: Vec<String> = globs
        .iter()
        .map(|g| format!("{field} glob {}", falco_quote(g)))
        .collect();
    yaml_scalar(&c.join(" or "))
}

fn net_item(n: &IpNet) -> String {
    match n {
        IpNet::V4(_) => n.to_string(),
        IpNet::V6(_) => yaml_scalar(&format!("\"{n}\"")),
    }
}

fn image_literal(image: &ImageRef, v: &str) -> Result<String, GenerateError> {
    if v.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
    {
        Ok(format!("\"{v}\""))
    } else {
        Err(GenerateError::Unrepresentable {
            image: image.to_string(),
            value: v.to_string(),
            why: "image names are limited to [A-Za-z0-9._/:@-]",
        })
    }
}

/// A comment before the globs that stand for values Falco cannot spell.
fn approx_note(o: &mut String, globs: &[String]) {
    o.push_str(
        "# Entries with a byte that is not UTF-8 (or a backslash one string cannot spell for\n\
         # both Falco and falco-learn) are allowed as these globs: the raw form, each such byte\n\
         # as `?`, and the rendered form falco-learn sees (marked in the profile):\n",
    );
    for g in globs {
        let _ = writeln!(o, "#   {}", yaml::double_quoted(g));
    }
}

fn list(out: &mut String, name: &str, items: &[String]) {
    let _ = writeln!(out, "- list: {name}\n  items: [{}]\n", items.join(", "));
}

/// The generated rules for one profile, as a Falco rules file.
pub fn generate_rules(p: &Profile) -> Result<String, GenerateError> {
    let img = &p.image;
    let px = name_prefix(img);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Falco rules generated by falco-learn from the profile of {img}\n\
         # (learned {} .. {}, {} events, {} containers{}).\n\
         # Do not edit: review the profile, then `falco-learn rules generate`.\n\
         # Self-contained: loads alone or next to falco_rules.yaml.\n",
        yaml::format_ts(p.learning.started),
        yaml::format_ts(p.learning.ended),
        p.learning.events,
        p.learning.containers,
        if p.learning.tainted { ", TAINTED" } else { "" }
    );

    let repo = image_literal(img, &img.repository)?;
    let image_cond = if img.tag.is_empty() {
        format!("container.image.repository = {repo} and not container.image.tag exists")
    } else {
        let tag = image_literal(img, &img.tag)?;
        format!("container.image.repository = {repo} and container.image.tag = {tag}")
    };
    let _ = writeln!(
        o,
        "- macro: {px}_image\n  condition: {}\n",
        yaml_scalar(&image_cond)
    );
    // the runtime setting the container up is not the workload
    // (matcher::is_runtime_setup)
    let _ = writeln!(
        o,
        "- macro: {px}_runtime_setup\n  condition: \"{RUNTIME_SETUP}\"\n"
    );
    let img_m = format!("{px}_image and not {px}_runtime_setup");
    let output_tail = "container=%container.id name=%container.name \
                       image=%container.image.repository tag=%container.image.tag";

    // --- processes: entries whose lineage is checked (model::lineage_checked)
    // are allowed by the exception's (parent, exe) tuples when the parent is one
    // of the profile's executables, and by the runtime-side macro otherwise
    // (Profile::exec_allowed_from); the others by path
    let mut allowed = Vec::new();
    let mut lineage: Vec<String> = Vec::new();
    let mut init_execs = Vec::new();
    let mut outside_execs = Vec::new();
    let execs = spell(p.exec.iter().filter_map(|(path, e)| {
        if !crate::model::lineage_checked(path, e) {
            return Some(path);
        }
        for parent in e.parents.iter().filter(|q| p.exec_allowed(q)) {
            lineage.push(format!("[{}, {}]", item(parent), item(path)));
        }
        if e.init {
            init_execs.push(item(path));
        }
        if p.outside_started(e) {
            outside_execs.push(item(path));
        }
        None
    }));

    if !execs.items.is_empty() {
        list(&mut o, &format!("{px}_execs"), &execs.items);
        allowed.push(format!("proc.exepath in ({px}_execs)"));
    }
    if !execs.globs.is_empty() {
        approx_note(&mut o, &execs.globs);
        let _ = writeln!(
            o,
            "- macro: {px}_exec_globs\n  condition: {}\n",
            glob_condition("proc.exepath", &execs.globs)
        );
        allowed.push(format!("{px}_exec_globs"));
    }
    if !init_execs.is_empty() || !outside_execs.is_empty() {
        // the parent is one of the profile's executables (inside the container)
        let all = spell(p.exec.keys());
        let mut inside = Vec::new();
        if !all.items.is_empty() {
            list(&mut o, &format!("{px}_all_execs"), &all.items);
            inside.push(format!("proc.pexepath in ({px}_all_execs)"));
        }
        if !all.globs.is_empty() {
            inside.push(
                all.globs
                    .iter()
                    .map(|g| format!("proc.pexepath glob {}", falco_quote(g)))
                    .collect::<Vec<_>>()
                    .join(" or "),
            );
        }
        let mut runtime = Vec::new();
        if !init_execs.is_empty() {
            list(&mut o, &format!("{px}_init_execs"), &init_execs);
            runtime.push(format!(
                "(proc.vpid = 1 and proc.exepath in ({px}_init_execs))"
            ));
        }
        if !outside_execs.is_empty() {
            list(&mut o, &format!("{px}_outside_execs"), &outside_execs);
            runtime.push(format!(
                "(proc.vpid != 1 and proc.exepath in ({px}_outside_execs))"
            ));
        }
        let _ = writeln!(
            o,
            "- macro: {px}_runtime_started\n  condition: {}\n",
            yaml_scalar(&format!(
                "not ({}) and ({})",
                inside.join(" or "),
                runtime.join(" or ")
            ))
        );
        allowed.push(format!("{px}_runtime_started"));
    }
    let not_part = if allowed.is_empty() {
        String::new()
    } else {
        format!(" and not ({})", allowed.join(" or "))
    };
    let exceptions = if lineage.is_empty() {
        String::new()
    } else {
        format!(
            "  exceptions:\n    - name: learned_lineage\n      fields: [proc.pexepath, proc.exepath]\n      \
             comps: [=, =]\n      values:\n{}",
            lineage
                .iter()
                .map(|t| format!("        - {t}\n"))
                .collect::<String>()
        )
    };
    rule_with(
        &mut o,
        &rule_name(img, Dimension::Exec),
        &format!(
            "Executable not seen while learning image {img}, or started by a parent executable \
             that was not seen starting it"
        ),
        &format!("evt.type in (execve, execveat) and evt.rawres >= 0 and {img_m}{not_part}"),
        &format!(
            "Unexpected process in learned image (exe=%proc.exepath cmdline=%proc.cmdline \
             parent=%proc.pexepath pname=%proc.pname user=%user.name {output_tail})"
        ),
        "process",
        &exceptions,
    );

    // --- outbound
    let mut alts = Vec::new();
    for ((proto, port), e) in &p.outbound {
        let name = format!("{px}_net_{}_{port}", proto.as_str());
        let items: Vec<String> = e.peers.iter().map(net_item).collect();
        list(&mut o, &name, &items);
        let l4 = l4_literal(*proto);
        alts.push(format!(
            "(fd.l4proto = {l4} and fd.sport = {port} and fd.snet in ({name}))"
        ));
    }
    // a UDP send from the server's end (fd.lport = fd.sport) is inbound, never
    // outbound (matcher::is_server_end, dimension::inbound)
    let not_part = allowed_macro(&mut o, &format!("{px}_outbound_allowed"), &alts);
    rule(
        &mut o,
        &rule_name(img, Dimension::Outbound),
        &format!("Outbound connection (protocol, port, peer) not seen while learning image {img}"),
        &format!(
            "evt.type in (connect, sendto, sendmsg) and (evt.rawres >= 0 or evt.res = EINPROGRESS)\n    \
             and fd.typechar in (4, 6) and {img_m}{not_part}\n    \
             and not (evt.type in (sendto, sendmsg) and fd.l4proto = udp and fd.lport = val(fd.sport))"
        ),
        &format!(
            "Unexpected outbound connection from learned image (connection=%fd.name \
             proto=%fd.l4proto port=%fd.sport peer=%fd.sip exe=%proc.exepath \
             cmdline=%proc.cmdline {output_tail})"
        ),
        "network",
    );

    // --- the dimensions with a home of their own (dimension::DIMS)
    let cx = crate::dimension::RuleContext {
        image: img,
        prefix: &px,
        image_macro: &img_m,
        output_tail,
    };
    for d in crate::dimension::DIMS {
        d.generate(p, &cx, &mut o)?;
    }

    // --- file writes
    let mut allowed = Vec::new();
    let files = spell(p.write_files.keys());
    if !files.items.is_empty() {
        list(&mut o, &format!("{px}_write_files"), &files.items);
        allowed.push(format!("fd.name in ({px}_write_files)"));
    }
    // learned globs (/proc/<pid>/…, volatile names) and the globs of values
    // Falco cannot spell exactly (a directory's covers what is below it)
    // `pmatch` reads `*`, `?`, `[` as a pattern and would cover more than was learned;
    // the model never generalises such a directory (model::has_glob_char), so one can
    // only come from an older profile
    if let Some(d) = p.write_dirs.keys().find(|d| crate::model::has_glob_char(d)) {
        return Err(GenerateError::Unrepresentable {
            image: img.to_string(),
            value: d.to_string(),
            why: "glob character in a generalised directory (pmatch would read it as a pattern)",
        });
    }
    let dirs = spell(p.write_dirs.keys());
    let mut globs: Vec<String> = p.write_globs.keys().cloned().collect();
    if !files.globs.is_empty() || !dirs.globs.is_empty() {
        approx_note(&mut o, &[files.globs.clone(), dirs.globs.clone()].concat());
    }
    globs.extend(files.globs);
    for g in dirs.globs {
        globs.push(format!("{g}/*"));
        globs.push(g);
    }
    if !globs.is_empty() {
        let _ = writeln!(
            o,
            "- macro: {px}_write_globs\n  condition: {}\n",
            glob_condition("fd.name", &globs)
        );
        allowed.push(format!("{px}_write_globs"));
    }
    if !dirs.items.is_empty() {
        list(&mut o, &format!("{px}_write_dirs"), &dirs.items);
        allowed.push(format!("fd.name pmatch ({px}_write_dirs)"));
    }
    // the same benign sinks the matcher ignores (matcher::BENIGN_WRITE_SINKS)
    let sinks: Vec<String> = crate::matcher::BENIGN_WRITE_SINKS
        .iter()
        .map(|f| item(f))
        .collect();
    list(&mut o, &format!("{px}_benign_sinks"), &sinks);
    allowed.push(format!("fd.name in ({px}_benign_sinks)"));
    let not_part = format!(" and not ({})", allowed.join(" or "));
    rule(
        &mut o,
        &rule_name(img, Dimension::FileWrite),
        &format!("File opened for writing at a path not seen while learning image {img}"),
        &format!(
            "evt.type in (open, openat, openat2, creat) and evt.rawres >= 0\n    \
             and fd.typechar = f and fd.num >= 0\n    \
             and (evt.type = creat or evt.is_open_write = true\n         \
             or evt.arg.flags contains O_CREAT or evt.arg.flags contains O_TRUNC)\n    \
             and {img_m}{not_part}"
        ),
        &format!(
            "Unexpected file write in learned image (file=%fd.name flags=%evt.arg.flags \
             exe=%proc.exepath cmdline=%proc.cmdline {output_tail})"
        ),
        "filesystem",
    );
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_bare_or_quoted() {
        assert_eq!(item("/usr/sbin/nginx"), "/usr/sbin/nginx");
        assert_eq!(item("/a b"), "\"\\\"/a b\\\"\"");
        assert_eq!(item("memfd:x (deleted)"), "\"\\\"memfd:x (deleted)\\\"\"");
        assert_eq!(item("/a\"b' c"), "\"\\\"/a\\\\\\\"b' c\\\"\"");
        assert_eq!(item("/a\nb"), "\"\\\"/a\\\\nb\\\"\"");
        assert_eq!(item("/a=b"), "\"\\\"/a=b\\\"\"");
    }

    #[test]
    fn prefix_and_names() {
        let i = ImageRef::new("docker.io/library/nginx", "1.27");
        assert_eq!(name_prefix(&i), "fl_learned_docker_io_library_nginx_1_27");
        assert_eq!(
            rule_name(&i, Dimension::Exec),
            "Unexpected process in docker.io/library/nginx:1.27 (falco-learn)"
        );
    }
}
