//! The table of event kinds (`probe/common/src/kind_table.rs`) is the one source of truth,
//! and the compiled object agrees with it.
//!
//! What it proves:
//! - the object's `enum fl_kind` (its BTF) has exactly the table's enumerators and ids, and
//!   `FL_KIND_MAX`: the C side cannot disagree with `Kind`;
//! - the generated headers (`fl_kinds.h`, `fl_hooks.h` in OUT_DIR) are what the table says,
//!   and the hand-written C declares no kind and no hook of its own;
//! - every syscall the table hooks has both handlers in the object (`fl_exit_<name>` for the
//!   dispatcher, `fl_tp_exit_<name>` for its own tracepoint), every scheduler program the
//!   table names is there, and the object has no syscall handler the table lacks and no
//!   enter program at all (one would run on every syscall of the machine);
//! - every syscall's x86_64 number is the kernel's (`asm/unistd_64.h`), and so are its
//!   32-bit twins' slots: its ia32 numbers (`asm/unistd_32.h`; `umount2` also takes ia32
//!   `umount`, `accept` has none: ia32 reaches it through `socketcall`) and its x32 number
//!   (`asm/unistd_x32.h`).

mod btf;

use btf::{Btf, KIND_ENUM, KIND_FUNC};
use falco_learn_probe_common as abi;
use std::collections::BTreeSet;

fn object_btf() -> Btf {
    let raw =
        btf::elf_section(btf::probe_object(), ".BTF").expect("the probe object's .BTF section");
    Btf::parse(raw).expect("the probe object's .BTF parses")
}

/// Every syscall the table hooks (kinds and path changes).
fn table_syscalls() -> impl Iterator<Item = &'static (&'static str, u32)> {
    abi::SYSCALLS.iter().chain(abi::PATHS_CHANGED)
}

#[test]
fn the_objects_enum_fl_kind_is_the_table() {
    let btf = object_btf();
    let enums: Vec<_> = btf
        .named("fl_kind")
        .into_iter()
        .filter(|t| t.kind == KIND_ENUM)
        .collect();
    assert_eq!(enums.len(), 1, "the object's BTF has one enum fl_kind");
    let got: Vec<(String, i64)> = enums[0]
        .enumerators
        .iter()
        .map(|e| (btf.name(e.name_off).unwrap().to_string(), e.value))
        .collect();
    let mut want: Vec<(String, i64)> = abi::Kind::ALL
        .iter()
        .map(|k| (k.c_name().to_string(), *k as u32 as i64))
        .collect();
    want.push(("FL_KIND_MAX".into(), abi::KIND_MAX as i64));
    assert_eq!(got, want);
}

#[test]
fn generated_headers_are_the_table_and_the_c_declares_none_of_its_own() {
    let out = env!("OUT_DIR");
    let kinds = std::fs::read_to_string(format!("{out}/fl_kinds.h")).unwrap();
    for k in abi::Kind::ALL {
        assert!(
            kinds.contains(&format!("\t{} = {},\n", k.c_name(), k as u32)),
            "{k:?}"
        );
    }
    for (id, name) in abi::RETIRED {
        assert!(kinds.contains(&format!("/* {id} retired (was {name}) */")));
    }
    let hooks = std::fs::read_to_string(format!("{out}/fl_hooks.h")).unwrap();
    let exits: Vec<&str> = hooks.lines().filter(|l| l.starts_with("EXIT(")).collect();
    assert_eq!(exits.len(), abi::SYSCALLS.len());
    for k in abi::Kind::ALL {
        for (sc, _) in k.syscalls() {
            assert!(
                exits.iter().any(|l| l.starts_with(&format!("EXIT({sc}, "))
                    && l.ends_with(&format!(", {})", k.c_name()))),
                "{sc} of {k:?}"
            );
        }
    }
    for (sc, _) in abi::PATHS_CHANGED {
        assert!(hooks.contains(&format!("PATHS_CHANGED({sc})\n")), "{sc}");
    }

    // the hand-written C: no enumerator of a kind, no hook line
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/ebpf/src");
    for f in ["events.h", "probe.bpf.c", "kernel.h"] {
        let text = std::fs::read_to_string(format!("{dir}/{f}")).unwrap();
        for line in text.lines() {
            let l = line.trim_start();
            assert!(
                !l.starts_with("EXIT(") && !l.starts_with("PATHS_CHANGED("),
                "{f}: a hand-written hook ({l}); hooks come from the table"
            );
            assert!(
                !l.starts_with("enum fl_kind"),
                "{f}: enum fl_kind is generated from the table"
            );
            for k in abi::Kind::ALL {
                assert!(
                    !l.starts_with(&format!("{} =", k.c_name())),
                    "{f}: {} is generated from the table",
                    k.c_name()
                );
            }
        }
    }
}

#[test]
fn every_hook_of_the_table_is_in_the_object_and_no_other() {
    let btf = object_btf();
    let funcs: BTreeSet<&str> = btf
        .types
        .iter()
        .filter(|t| t.kind == KIND_FUNC)
        .map(|t| btf.type_name(t.id))
        .collect();
    for (sc, _) in table_syscalls() {
        for prog in [format!("fl_exit_{sc}"), format!("fl_tp_exit_{sc}")] {
            assert!(funcs.contains(prog.as_str()), "{prog} is not in the object");
        }
    }
    for k in abi::Kind::ALL {
        for (prog, _) in k.sched() {
            assert!(funcs.contains(prog), "{prog} ({k:?}) is not in the object");
        }
    }
    // no program on a syscall's entry: `syscalls:sys_enter_<name>` is one hook on the raw
    // `sys_enter`, which every syscall of the machine would pay
    use object::{Object as _, ObjectSection as _};
    let elf = object::File::parse(btf::probe_object()).expect("the probe object is ELF");
    for s in elf.sections() {
        let name = s.name().unwrap_or_default();
        assert!(
            !name.contains("sys_enter"),
            "the object has a program on a syscall's entry: {name}"
        );
    }
    // ia32 socketcall: not a kind's syscall, the multiplexer of several (its own program)
    assert!(funcs.contains("fl_exit_socketcall"));
    let mut hooked: BTreeSet<String> = table_syscalls().map(|(sc, _)| sc.to_string()).collect();
    hooked.insert("socketcall".into());
    for f in &funcs {
        if let Some(sc) = f
            .strip_prefix("fl_tp_exit_")
            .or_else(|| f.strip_prefix("fl_exit_"))
        {
            assert!(
                hooked.contains(sc),
                "the object has {f}, which the table does not hook"
            );
        }
    }
}

/// `#define __NR_<name> <nr>` of one of the kernel's x86 syscall tables (`64`, `32`,
/// `x32`: whose numbers read `(__X32_SYSCALL_BIT + <nr>)`, given without the bit).
fn unistd(abi: &str) -> Vec<(String, u32)> {
    let path = [
        format!("/usr/include/x86_64-linux-gnu/asm/unistd_{abi}.h"),
        format!("/usr/include/asm/unistd_{abi}.h"),
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .unwrap_or_else(|| {
        panic!("asm/unistd_{abi}.h (apt-get install linux-libc-dev, which libbpf-dev pulls in)")
    });
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (name, nr) = l
                .strip_prefix("#define __NR_")?
                .split_once(char::is_whitespace)?;
            let nr = nr.trim();
            let nr = nr
                .strip_prefix("(__X32_SYSCALL_BIT +")
                .and_then(|n| n.strip_suffix(')'))
                .unwrap_or(nr);
            Some((name.to_string(), nr.trim().parse().ok()?))
        })
        .collect()
}

fn unistd_64() -> Vec<(String, u32)> {
    unistd("64")
}

#[test]
fn syscall_numbers_are_the_x86_64_tables() {
    let table = unistd_64();
    assert!(table.len() > 300, "{} syscalls read", table.len());
    for (sc, nr) in table_syscalls() {
        let kernel = table.iter().find(|(n, _)| n == sc).map(|(_, nr)| *nr);
        assert_eq!(kernel, Some(*nr), "{sc}: the table says {nr}");
    }
}

#[test]
fn the_32_bit_slots_are_the_ia32_and_x32_tables() {
    let (ia32, x32) = (unistd("32"), unistd("x32"));
    assert!(ia32.len() > 300 && x32.len() > 300);
    let nr = |table: &[(String, u32)], sc: &str| {
        table
            .iter()
            .find(|(n, _)| n == sc)
            .map(|(_, nr)| *nr)
            .unwrap_or_else(|| panic!("{sc} is not in the table"))
    };
    for (sc, _) in table_syscalls() {
        let slots: BTreeSet<u32> = abi::COMPAT_SLOTS
            .iter()
            .filter(|(s, _)| s == sc)
            .map(|(_, slot)| *slot)
            .collect();
        let mut want = BTreeSet::from([abi::X32_SLOTS + nr(&x32, sc)]);
        match *sc {
            "accept" => {} // ia32: socketcall only
            "umount2" => {
                want.extend([nr(&ia32, "umount2"), nr(&ia32, "umount")]);
            }
            _ => {
                want.insert(nr(&ia32, sc));
            }
        }
        assert_eq!(slots, want, "{sc}");
    }
}
