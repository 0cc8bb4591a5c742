//! `falco-learn profiles list|show|diff|merge|export|import` and
//! `falco-learn rules generate`.
//!
//! Wherever a profile is named, a path to an existing file means that file;
//! anything else is an image pattern (as `--image` takes it) that must match
//! stored profiles.

use crate::cmd::learn::DEFAULT_STORE;
use anyhow::bail;
use clap::{Args, Subcommand};
use falco_learn_profiler::{diff::diff, generate_rules, to_yaml, Limits, Profile};
use falco_learn_rules::Ruleset;
use falco_learn_store::{export_stems, read_profile_file, Store};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug, Clone)]
pub struct StoreArg {
    /// Store directory (sled).
    #[arg(long, env = "FALCO_LEARN_STORE", default_value = DEFAULT_STORE)]
    pub store: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum ProfilesCommand {
    /// Stored profiles: sizes, learning window, convergence, taint; and the
    /// learning windows with their resume points.
    List(StoreArg),
    /// Print profiles as YAML (a file, or stored profiles matching an image).
    #[command(
        after_help = "Examples:\n  falco-learn profiles show nginx\n  falco-learn profiles show profiles/nginx.yaml"
    )]
    Show {
        #[command(flatten)]
        store: StoreArg,
        /// File or image pattern.
        profile: String,
    },
    /// Behaviour differences from A to B (+ only in B, - only in A, ~ changed).
    #[command(after_help = "Example:\n  falco-learn profiles diff profiles/nginx.yaml nginx")]
    Diff {
        #[command(flatten)]
        store: StoreArg,
        a: String,
        b: String,
    },
    /// Union of profiles of one image (replicas learned on several nodes).
    #[command(
        after_help = "Example:\n  falco-learn profiles merge node1/nginx.yaml node2/nginx.yaml -o profiles/nginx.yaml"
    )]
    Merge {
        #[command(flatten)]
        store: StoreArg,
        /// Write the merged profile here (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Also store the merged profile (replacing the stored one).
        #[arg(long)]
        save: bool,
        /// Files or image patterns (at least two profiles in all).
        #[arg(required = true, num_args = 1..)]
        profiles: Vec<String>,
    },
    /// Write stored profiles to DIR/<image>.yaml, deterministically, for review in git.
    #[command(
        after_help = "Example:\n  falco-learn profiles export --dir profiles && git diff profiles/"
    )]
    Export {
        #[command(flatten)]
        store: StoreArg,
        #[arg(long, default_value = "profiles")]
        dir: PathBuf,
        /// Only images matching this pattern.
        #[arg(long)]
        image: Option<String>,
    },
    /// Load reviewed profile files into the store; each replaces the stored
    /// profile of its image. All files are checked before any is stored.
    #[command(after_help = "Example:\n  falco-learn profiles import profiles/*.yaml")]
    Import {
        #[command(flatten)]
        store: StoreArg,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `falco-learn rules generate`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    falco-learn rules generate --image nginx\n  \
    falco-learn rules generate --all -o rules/learned\n  \
    falco-learn rules generate profiles/nginx.yaml --stdout")]
pub struct GenerateArgs {
    #[command(flatten)]
    pub store: StoreArg,
    /// Stored profiles of images matching this pattern.
    #[arg(long, conflicts_with = "all")]
    pub image: Option<String>,
    /// Every stored profile.
    #[arg(long)]
    pub all: bool,
    /// Reviewed profile files to generate from (instead of the store).
    #[arg(conflicts_with_all = ["image", "all"])]
    pub files: Vec<PathBuf>,
    /// Output directory: one `<image>.yaml` per profile.
    #[arg(short, long, default_value = "rules/learned")]
    pub output: PathBuf,
    /// Print the rules on standard output instead of writing files.
    #[arg(long)]
    pub stdout: bool,
}

/// Open the store to change it (created if missing).
fn open(store: &StoreArg) -> anyhow::Result<Store> {
    said(Store::open(&store.store)?)
}

/// Open the store to read it: a missing store is an error, not a new one.
fn open_existing(store: &StoreArg) -> anyhow::Result<Store> {
    said(Store::open_existing(&store.store)?)
}

fn said(s: Store) -> anyhow::Result<Store> {
    for note in s.notes() {
        tracing::warn!("{note}");
    }
    Ok(s)
}

/// Resolve a file path or an image pattern to profiles.
fn resolve(store: &StoreArg, what: &str) -> anyhow::Result<Vec<Profile>> {
    let path = Path::new(what);
    if path.is_file() {
        return Ok(vec![read_profile_file(path)?]);
    }
    let s = match Store::open_existing(&store.store) {
        Ok(s) => said(s)?,
        Err(e @ falco_learn_store::StoreError::Missing { .. }) => {
            bail!("'{what}' is neither a file nor an image with a stored profile: {e}")
        }
        Err(e) => return Err(e.into()),
    };
    let v: Vec<Profile> = s
        .profiles()?
        .into_iter()
        .filter(|p| falco_learn_event::image::matches(what, &p.image.repository, &p.image.tag))
        .collect();
    if v.is_empty() {
        bail!(
            "'{what}' is neither a file nor an image with a stored profile in {}",
            store.store.display()
        );
    }
    Ok(v)
}

fn one(store: &StoreArg, what: &str) -> anyhow::Result<Profile> {
    let mut v = resolve(store, what)?;
    if v.len() > 1 {
        let names: Vec<String> = v.iter().map(|p| p.image.to_string()).collect();
        bail!(
            "'{what}' matches {} profiles ({}); name one exactly (repository:tag)",
            v.len(),
            names.join(", ")
        );
    }
    Ok(v.remove(0))
}

fn ts(ns: u64) -> String {
    if ns == 0 {
        "-".into()
    } else {
        falco_learn_profiler::yaml::format_ts(ns)
    }
}

pub fn run(cmd: ProfilesCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        ProfilesCommand::List(store) => {
            let s = open_existing(&store)?;
            writeln!(
                out,
                "{:<44} {:>5} {:>5} {:>5} {:>6} {:>9}  {:<8} converged (last new → end)",
                "IMAGE", "EXECS", "PORTS", "PATHS", "CONTS", "EVENTS", "TAINTED"
            )?;
            for p in s.profiles()? {
                let l = &p.learning;
                let conv = if l.last_new_behaviour == 0 {
                    "-".to_string()
                } else {
                    let d = l.ended.saturating_sub(l.last_new_behaviour) / 1_000_000_000;
                    format!(
                        "{} → {} ({})",
                        ts(l.last_new_behaviour),
                        ts(l.ended),
                        humantime::format_duration(std::time::Duration::from_secs(d))
                    )
                };
                writeln!(
                    out,
                    "{:<44} {:>5} {:>5} {:>5} {:>6} {:>9}  {:<8} {conv}",
                    p.image.to_string(),
                    p.exec.len(),
                    p.outbound.len(),
                    p.write_entries(),
                    l.containers,
                    l.events,
                    if l.tainted {
                        format!("yes ({})", l.flagged_events)
                    } else {
                        "no".into()
                    },
                )?;
            }
            let windows = s.windows()?;
            if !windows.is_empty() {
                writeln!(out, "\nwindows:")?;
                for w in windows {
                    writeln!(
                        out,
                        "  {} — {}, {} events read, {} learning",
                        w.id,
                        if w.done {
                            "done"
                        } else {
                            "unfinished (resumable)"
                        },
                        w.consumed,
                        humantime::format_duration(std::time::Duration::from_secs(
                            w.elapsed_ns / 1_000_000_000
                        ))
                    )?;
                }
            }
        }
        ProfilesCommand::Show { store, profile } => {
            for p in resolve(&store, &profile)? {
                // coverage on stderr: stdout stays a loadable profile
                eprintln!("{}", crate::cmd::learn::coverage_line(&p));
                write!(out, "{}", to_yaml(&p))?;
            }
        }
        ProfilesCommand::Diff { store, a, b } => {
            let (pa, pb) = (one(&store, &a)?, one(&store, &b)?);
            let changes = diff(&pa, &pb);
            if changes.is_empty() {
                writeln!(out, "no behaviour differences between {a} and {b}")?;
            }
            for c in changes {
                writeln!(out, "{c}")?;
            }
        }
        ProfilesCommand::Merge {
            store,
            output,
            save,
            profiles,
        } => {
            let mut all = Vec::new();
            for what in &profiles {
                all.extend(resolve(&store, what)?);
            }
            if all.len() < 2 {
                bail!("merge needs at least two profiles (got {})", all.len());
            }
            let mut merged = all.remove(0);
            for p in &all {
                merged.merge(p, &Limits::default())?;
            }
            let text = to_yaml(&merged);
            match &output {
                Some(path) => falco_learn_store::export::write_atomic(path, &text)?,
                None => write!(out, "{text}")?,
            }
            if save {
                open(&store)?.put_profile(&merged)?;
                eprintln!("falco-learn: stored the merged profile of {}", merged.image);
            }
        }
        ProfilesCommand::Export { store, dir, image } => {
            let s = open_existing(&store)?;
            let only: Option<Vec<_>> = match &image {
                Some(pat) => Some(
                    s.images()?
                        .into_iter()
                        .filter(|i| falco_learn_event::image::matches(pat, &i.repository, &i.tag))
                        .collect(),
                ),
                None => None,
            };
            let written = s.export(&dir, only.as_deref())?;
            if written.is_empty() {
                eprintln!("falco-learn: no stored profiles to export");
            }
            for (img, path) in written {
                writeln!(out, "{img} → {}", path.display())?;
            }
        }
        ProfilesCommand::Import { store, files } => {
            let s = open(&store)?;
            for p in s.import(&files)? {
                writeln!(out, "imported {} ({} entries)", p.image, p.size())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let profiles: Vec<Profile> = if !args.files.is_empty() {
        args.files
            .iter()
            .map(|f| read_profile_file(f))
            .collect::<Result<_, _>>()?
    } else if args.all {
        open_existing(&args.store)?.profiles()?
    } else if let Some(pat) = &args.image {
        resolve(&args.store, pat)?
    } else {
        bail!("say which profiles: --image NAME, --all, or profile files");
    };
    let stems = export_stems(profiles.iter().map(|p| &p.image));
    let mut out = std::io::stdout().lock();
    for p in &profiles {
        let text = generate_rules(p)?;
        // Self-check: what we write must load in our engine without a word (but the
        // note that an allowlist of writes keeps the kernel's write filter off, true of
        // every such rule by design).
        let (_, report) = Ruleset::load_sources(&[("generated", text.as_str())]);
        if report.has_errors()
            || report
                .warnings_but(falco_learn_rules::Code::KernelFilterOff)
                .next()
                .is_some()
        {
            bail!(
                "generated rules for {} do not load cleanly:\n{report}",
                p.image
            );
        }
        if args.stdout {
            write!(out, "{text}")?;
            continue;
        }
        falco_learn_store::export::create_dir(&args.output)?;
        let path = args.output.join(format!("{}.yaml", stems[&p.image]));
        falco_learn_store::export::write_atomic(&path, &text)?;
        writeln!(out, "{} → {}", p.image, path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_prefers_files_and_names_missing_images() {
        let dir = std::env::temp_dir().join(format!("fl-prof-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = dir.join("p.yaml");
        std::fs::write(&f, "schema_version: 1\nimage: { repository: nginx }\n").expect("w");
        let st = StoreArg {
            store: dir.join("store"),
        };
        let v = resolve(&st, &f.display().to_string()).expect("file");
        assert_eq!(v[0].image.repository, "nginx");
        let err = resolve(&st, "redis").expect_err("none").to_string();
        assert_eq!(
            err,
            format!(
                "'redis' is neither a file nor an image with a stored profile: no store at {} \
                 (nothing was learned into it; check --store or FALCO_LEARN_STORE)",
                dir.join("store").display()
            )
        );
        assert!(!dir.join("store").exists(), "reading made no store");
        Store::open(&dir.join("store")).expect("create");
        let err = resolve(&st, "redis").expect_err("none").to_string();
        assert_eq!(
            err,
            format!(
                "'redis' is neither a file nor an image with a stored profile in {}",
                dir.join("store").display()
            )
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
