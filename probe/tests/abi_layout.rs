//! The Rust mirror of the kernel → user ABI (`probe/common/src/lib.rs`) equals the C structs
//! (`probe/ebpf/src/events.h`) in the compiled object.
//!
//! What it proves: for every struct in `falco_learn_probe_common::LAYOUTS`, the `.BTF` of
//! `PROBE_OBJECT` (the bytes the loader embeds, so exactly what the kernel writes) has a struct
//! of that name with the same size, the same members in the same order (C `type` is Rust
//! `typ`), and each member at the same byte offset with the same size as the Rust field
//! (`std::mem::offset_of!`). A field added on one side only fails with a message naming the
//! struct, the field, its offset and the side it is missing from:
//! - C side: the member has no Rust field (the object's BTF lists every member);
//! - Rust side: the field lists below destructure each Rust struct without `..`, so a new
//!   Rust field does not compile until it is listed, and then it has no C member.
//!
//! It also fails when LAYOUTS and the field lists here disagree, and when the object has an
//! `fl_*` struct that LAYOUTS lacks (a new record without a Rust mirror).
//! `a_field_on_one_side_only_is_reported` checks that the comparison catches both cases.
//!
//! clang emits BTF only for types that a program signature, a global or a relocation reaches;
//! the `fl_abi_types` anchor in `probe.bpf.c` keeps every record struct in the object's BTF.

mod btf;

use btf::{Btf, KIND_STRUCT};
use falco_learn_probe_common as abi;

/// One Rust field: name, byte offset, byte size.
#[derive(Debug, Clone)]
struct RustField {
    name: &'static str,
    offset: usize,
    size: usize,
}

/// A Rust ABI struct: its C name, Rust name, size, fields in declaration order.
struct RustLayout {
    c_name: &'static str,
    rust_name: &'static str,
    size: usize,
    fields: Vec<RustField>,
}

/// One C member from the object's BTF.
#[derive(Debug, Clone)]
struct CMember {
    name: String,
    offset: u64,
    size: u64,
}

struct CStruct {
    name: String,
    size: u64,
    members: Vec<CMember>,
}

fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    std::mem::size_of::<F>()
}

/// `layout!("fl_x" => X { a, b })`: the fields of `abi::X`, which must be all of them.
macro_rules! layout {
    ($c:literal => $ty:ident { $($f:ident),* $(,)? }) => {{
        // Exhaustive destructuring (no `..`): a Rust field missing from this list is a
        // compile error here.
        let _exhaustive = |v: &abi::$ty| {
            let abi::$ty { $($f: _),* } = v;
        };
        RustLayout {
            c_name: $c,
            rust_name: stringify!($ty),
            size: std::mem::size_of::<abi::$ty>(),
            fields: vec![$(RustField {
                name: stringify!($f),
                offset: std::mem::offset_of!(abi::$ty, $f),
                size: field_size(|v: &abi::$ty| &v.$f),
            }),*],
        }
    }};
}

fn rust_layouts() -> Vec<RustLayout> {
    vec![
        layout!("fl_hdr" => Hdr {
            ts_boot_ns, cgroup_id, kind, size, pid, tid, ppid, uid, gid, exec_id, res, comm,
        }),
        layout!("fl_sock" => Sock { family, typ, protocol, lport, rport, flags, _pad, laddr, raddr }),
        layout!("fl_addr" => Addr { family, port, _pad, addr }),
        layout!("fl_exec" => Exec {
            h, cap_effective, cap_permitted, start_boot_ns, exe_ino, exe_ctime_ns, exe_mtime_ns,
            exe_mode, exe_uid, exe_gid, flags, loginuid, tty, vpid, sid, pgid, cwd_flags, lens, _pad2,
        }),
        layout!("fl_fork" => Fork { h, start_boot_ns, vpid, _pad }),
        layout!("fl_exit" => Exit { h, exit_code, _pad }),
        layout!("fl_net" => Net { h, fd, size, addr, sock }),
        layout!("fl_open" => Open { h, dirfd, flags, mode, ino, dev_magic, lens, path_flags, _pad }),
        layout!("fl_socket" => Socket { h, domain, typ, protocol, _pad }),
        layout!("fl_dup" => Dup { h, oldfd, newfd, flags, _pad, sock }),
        layout!("fl_link" => Link { h, olddirfd, newdirfd, flags, lens }),
        layout!("fl_ptrace" => Ptrace { h, request, target_pid }),
        layout!("fl_module" => Module { h, len_or_fd, flags, lens, _pad }),
        layout!("fl_ia32" => Ia32 { h, id }),
    ]
}

/// C member names are Rust field names, except `type` (a Rust keyword).
fn rust_name_of(c_member: &str) -> &str {
    match c_member {
        "type" => "typ",
        other => other,
    }
}

fn c_struct(btf: &Btf, name: &str) -> Result<CStruct, String> {
    let t = btf.unique_struct(name)?;
    let mut members = Vec::new();
    for m in &t.members {
        let mname = btf.name(m.name_off)?.to_string();
        if m.bitfield_size != 0 || m.bit_offset % 8 != 0 {
            return Err(format!(
                "struct {name}: member `{mname}` is a bitfield (bit offset {}, {} bits); the ABI has none",
                m.bit_offset, m.bitfield_size
            ));
        }
        members.push(CMember {
            name: mname,
            offset: u64::from(m.bit_offset / 8),
            size: btf.size_of(m.typ)?,
        });
    }
    Ok(CStruct {
        name: name.to_string(),
        size: u64::from(t.size_or_type),
        members,
    })
}

/// Every difference between a C struct and its Rust mirror, as messages.
fn compare(c: &CStruct, r: &RustLayout) -> Vec<String> {
    let mut errors = Vec::new();
    let (cn, rn) = (&c.name, r.rust_name);
    if c.size != r.size as u64 {
        errors.push(format!(
            "struct {cn} is {} bytes in the object but abi::{rn} is {} bytes",
            c.size, r.size
        ));
    }
    for (i, m) in c.members.iter().enumerate() {
        let want = rust_name_of(&m.name);
        match r.fields.iter().position(|f| f.name == want) {
            None => errors.push(format!(
                "struct {cn}: C member `{}` (offset {}, {} bytes) has no Rust field `{want}` in abi::{rn}: \
                 add it to probe/common/src/lib.rs (and to the list in probe/tests/abi_layout.rs) or remove it from events.h",
                m.name, m.offset, m.size
            )),
            Some(j) => {
                let f = &r.fields[j];
                if j != i {
                    errors.push(format!(
                        "struct {cn}: C member `{}` is member #{i} but abi::{rn}.{} is field #{j}",
                        m.name, f.name
                    ));
                }
                if f.offset as u64 != m.offset {
                    errors.push(format!(
                        "struct {cn}: C member `{}` is at byte {} but abi::{rn}.{} is at byte {}",
                        m.name, m.offset, f.name, f.offset
                    ));
                }
                if f.size as u64 != m.size {
                    errors.push(format!(
                        "struct {cn}: C member `{}` is {} bytes but abi::{rn}.{} is {} bytes",
                        m.name, m.size, f.name, f.size
                    ));
                }
            }
        }
    }
    for f in &r.fields {
        if !c.members.iter().any(|m| rust_name_of(&m.name) == f.name) {
            errors.push(format!(
                "abi::{rn}: Rust field `{}` (offset {}, {} bytes) has no C member in struct {cn}: \
                 add it to probe/ebpf/src/events.h or remove it from probe/common/src/lib.rs",
                f.name, f.offset, f.size
            ));
        }
    }
    errors
}

fn object_btf() -> Btf {
    let raw =
        btf::elf_section(btf::probe_object(), ".BTF").expect("the probe object's .BTF section");
    Btf::parse(raw).expect("the probe object's .BTF parses")
}

#[test]
fn rust_abi_matches_the_c_structs_in_the_object() {
    let btf = object_btf();
    let layouts = rust_layouts();
    let mut errors = Vec::new();

    // LAYOUTS (what the common crate declares) and the field lists here cover the same structs.
    for (c_name, size) in abi::LAYOUTS {
        match layouts.iter().find(|l| l.c_name == c_name) {
            None => errors.push(format!(
                "LAYOUTS has {c_name} but probe/tests/abi_layout.rs has no field list for it: add a layout! line"
            )),
            Some(l) if l.size != size => errors.push(format!(
                "LAYOUTS says {c_name} is {size} bytes but the field list here maps it to abi::{} ({} bytes)",
                l.rust_name, l.size
            )),
            Some(_) => {}
        }
    }
    for l in &layouts {
        if !abi::LAYOUTS.iter().any(|(c, _)| *c == l.c_name) {
            errors.push(format!(
                "{} (abi::{}) is checked here but missing from falco_learn_probe_common::LAYOUTS",
                l.c_name, l.rust_name
            ));
        }
    }
    // Every record struct of the object has a Rust mirror.
    for t in &btf.types {
        let name = btf.type_name(t.id);
        if t.kind == KIND_STRUCT
            && name.starts_with("fl_")
            && !abi::LAYOUTS.iter().any(|(c, _)| *c == name)
        {
            errors.push(format!(
                "struct {name} is in the probe object but has no Rust mirror in falco_learn_probe_common::LAYOUTS"
            ));
        }
    }

    let mut members = 0;
    for l in &layouts {
        match c_struct(&btf, l.c_name) {
            Err(e) => errors.push(format!(
                "{e} (a record struct must be in the object's BTF: see fl_abi_types in probe.bpf.c)"
            )),
            Ok(c) => {
                members += c.members.len();
                errors.extend(compare(&c, l));
            }
        }
    }
    assert!(
        errors.is_empty(),
        "the Rust ABI mirror differs from the C structs in the probe object:\n  {}",
        errors.join("\n  ")
    );
    assert_eq!(layouts.len(), abi::LAYOUTS.len());
    println!(
        "{} ABI structs, {members} members: sizes and offsets agree",
        layouts.len()
    );
}

#[test]
fn a_field_on_one_side_only_is_reported() {
    let btf = object_btf();
    let rust = rust_layouts()
        .into_iter()
        .find(|l| l.c_name == "fl_fork")
        .expect("fl_fork is in the field lists");
    let c = c_struct(&btf, "fl_fork").expect("struct fl_fork in the object's BTF");
    assert!(compare(&c, &rust).is_empty(), "fl_fork agrees as built");

    // A member added to the C struct only.
    let mut c_more = CStruct {
        name: c.name.clone(),
        size: c.size + 8,
        members: c.members.clone(),
    };
    c_more.members.push(CMember {
        name: "extra".to_string(),
        offset: c.size,
        size: 8,
    });
    let errors = compare(&c_more, &rust);
    assert_eq!(
        errors,
        vec![
            format!(
                "struct fl_fork is {} bytes in the object but abi::Fork is {} bytes",
                c.size + 8,
                c.size
            ),
            format!(
                "struct fl_fork: C member `extra` (offset {}, 8 bytes) has no Rust field `extra` in abi::Fork: \
                 add it to probe/common/src/lib.rs (and to the list in probe/tests/abi_layout.rs) or remove it from events.h",
                c.size
            ),
        ]
    );

    // A field added to the Rust struct only.
    let mut rust_more = RustLayout {
        c_name: rust.c_name,
        rust_name: rust.rust_name,
        size: rust.size + 8,
        fields: rust.fields.clone(),
    };
    rust_more.fields.push(RustField {
        name: "extra",
        offset: rust.size,
        size: 8,
    });
    let errors = compare(&c, &rust_more);
    assert_eq!(
        errors,
        vec![
            format!(
                "struct fl_fork is {} bytes in the object but abi::Fork is {} bytes",
                c.size,
                rust.size + 8
            ),
            format!(
                "abi::Fork: Rust field `extra` (offset {}, 8 bytes) has no C member in struct fl_fork: \
                 add it to probe/ebpf/src/events.h or remove it from probe/common/src/lib.rs",
                rust.size
            ),
        ]
    );

    // Two fields swapped in C (`_pad` before `vpid`): order and both offsets are named.
    let mut c_moved = CStruct {
        name: c.name.clone(),
        size: c.size,
        members: c.members.clone(),
    };
    let last = c_moved.members.len() - 1;
    let (a, b) = (
        c_moved.members[last - 1].name.clone(),
        c_moved.members[last].name.clone(),
    );
    c_moved.members[last - 1].name = b;
    c_moved.members[last].name = a;
    let errors = compare(&c_moved, &rust);
    assert_eq!(
        errors.len(),
        4,
        "two members out of order, each at the other's offset: {errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("C member `vpid` is member #3 but abi::Fork.vpid is field #2")),
        "{errors:#?}"
    );
}
