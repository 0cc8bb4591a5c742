//! No kernel struct offset is baked into the probe object at build time: every kernel layout
//! the programs depend on comes from the kernel's BTF at load time.
//!
//! How: the running kernel's BTF (`/sys/kernel/btf/vmlinux`) is copied into a synthetic
//! kernel in which every kernel struct the probe reads ([`SHIFTS`]: `task_struct`, `dentry`,
//! `mm_struct`, `cred`, … 28 of them) has all its members moved by a different number of
//! bytes, the struct growing by as much. `PROBE_OBJECT` is then parsed and CO-RE-relocated
//! twice by aya-obj, the crate aya 0.14 loads it with, in the order `EbpfLoader::load` uses
//! (`Object::parse`, `fixup_and_sanitize_btf`, `relocate_btf`): once against the real BTF,
//! once against the shifted one. The test asserts that
//! - both relocations succeed, and the two instruction streams differ;
//! - every instruction without a CO-RE relocation is identical in the original object and in
//!   both relocated ones, so nothing else can depend on the kernel;
//! - every relocated instruction differs between the two only in the field that carries the
//!   relocated value (`imm` for ALU and `ld_imm64`, `off` for loads and stores), holds exactly
//!   the value this test computes itself from each BTF (field offset, type size, existence,
//!   enum value), and moved by exactly the sum of the shifts of the structs on its access path
//!   (`sock.__sk_common.skc_family` moves by the shift of `sock` plus that of `sock_common`;
//!   `bpf_core_type_size(struct inode)` by the growth of `inode`);
//! - every shifted struct moved at least one instruction, and well-known accesses
//!   (`task_struct.real_parent`, `task_struct.tgid`, `mm_struct.exe_file`, …) moved by the
//!   hand-written expected amount;
//! - every named kernel struct on any access path has a shift (a struct the probe starts to
//!   read must be added to [`SHIFTS`]).
//!
//! Every member moves, the first included: `mm_struct` wraps all its fields in a first
//! anonymous member, and `vfsmount.mnt_root`, `path.mnt` or `cgroup_subsys_state.cgroup` sit
//! at offset 0 on real kernels; a baked-in 0 would go unnoticed otherwise.
//!
//! Why aya-obj and a BTF reader of our own: aya-obj exposes the parsed object and its
//! relocated instructions (`Object::functions`), but keeps its BTF type table and the parsed
//! `.BTF.ext` relocation records crate-private. The test therefore reads `.BTF.ext` itself
//! (the CO-RE records: instruction offset, root type, access string, kind) to know which
//! instruction each relocation patches and what it accesses, and resolves the accesses with
//! the small BTF reader in `tests/btf/mod.rs`, independently of aya-obj's resolver.
//!
//! Limit: an offset computed by hand without CO-RE (say `(u8 *)task + 1280`) creates no
//! relocation, so nothing marks it as kernel-dependent and this test cannot tell it from any
//! other constant. It does catch it for the accesses in [`SAMPLES`], which must be relocated:
//! replacing `BPF_CORE_READ(task, real_parent, tgid)` by a read at `task + 1280` fails with
//! "no relocated access to task_struct.real_parent". Everything else rests on the rule that
//! kernel memory is read through `BPF_CORE_READ` or `preserve_access_index` types (kernel.h).
//!
//! Needs `/sys/kernel/btf/vmlinux` (readable without root); without it the test prints a
//! loud SKIPPED line, or fails when `CI` is set.

mod btf;

use aya_obj::btf::{Btf as AyaBtf, BtfFeatures};
use aya_obj::generated::bpf_insn;
use aya_obj::Object;
use btf::{flavorless, Btf, KIND_ARRAY, KIND_ENUM, KIND_ENUM64, KIND_STRUCT, KIND_UNION};
use object::{Endianness, Object as _, ObjectSection as _};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Bytes inserted before the first member of each kernel struct the probe reads. Distinct
/// per struct, and multiples of 8 so member alignment (and a bitfield's position in its
/// 64-bit word) is kept.
const SHIFTS: &[(&str, u32)] = &[
    ("task_struct", 8),
    ("dentry", 16),
    ("mm_struct", 24),
    ("cred", 32),
    ("inode", 40),
    ("file", 48),
    ("path", 56),
    ("mount", 64),
    ("vfsmount", 72),
    ("qstr", 80),
    ("super_block", 88),
    ("fs_struct", 96),
    ("files_struct", 104),
    ("fdtable", 112),
    ("signal_struct", 120),
    ("pid", 128),
    ("upid", 136),
    ("tty_struct", 144),
    ("tty_driver", 152),
    ("css_set", 160),
    ("cgroup_subsys_state", 168),
    ("cgroup", 176),
    ("kernfs_node", 184),
    ("linux_binprm", 192),
    ("socket", 200),
    ("sock", 208),
    ("sock_common", 216),
    ("timespec64", 224),
];

/// Accesses every kernel has and the probe makes, with the structs whose shifts they must
/// move by (written out by hand, not derived from the walk below).
const SAMPLES: &[(&str, &[&str])] = &[
    ("task_struct.real_parent", &["task_struct"]),
    ("task_struct.tgid", &["task_struct"]),
    ("task_struct.mm", &["task_struct"]),
    ("mm_struct.exe_file", &["mm_struct"]),
    ("mm_struct.arg_start", &["mm_struct"]),
    ("dentry.d_parent", &["dentry"]),
    ("dentry.d_name.name", &["dentry", "qstr"]),
    ("cred.cap_effective", &["cred"]),
    ("file.f_path.dentry", &["file", "path"]),
    ("mount.mnt", &["mount"]),
    ("sock.__sk_common.skc_family", &["sock", "sock_common"]),
    ("sizeof(struct inode)", &["inode"]),
    ("sizeof(struct upid)", &["upid"]),
];

// bpf_core_relo_kind
const FIELD_BYTE_OFFSET: u32 = 0;
const FIELD_BYTE_SIZE: u32 = 1;
const FIELD_EXISTS: u32 = 2;
const FIELD_SIGNED: u32 = 3;
const TYPE_EXISTS: u32 = 8;
const TYPE_SIZE: u32 = 9;
const ENUMVAL_EXISTS: u32 = 10;
const ENUMVAL_VALUE: u32 = 11;

fn kind_name(kind: u32) -> &'static str {
    match kind {
        FIELD_BYTE_OFFSET => "field_byte_offset",
        FIELD_BYTE_SIZE => "field_byte_size",
        FIELD_EXISTS => "field_exists",
        FIELD_SIGNED => "field_signed",
        4 => "field_lshift_u64",
        5 => "field_rshift_u64",
        6 => "type_id_local",
        7 => "type_id_target",
        TYPE_EXISTS => "type_exists",
        TYPE_SIZE => "type_size",
        ENUMVAL_EXISTS => "enumval_exists",
        ENUMVAL_VALUE => "enumval_value",
        12 => "type_matches",
        _ => "unknown",
    }
}

fn shift_of(name: &str) -> Option<u32> {
    SHIFTS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// One CO-RE relocation record of `.BTF.ext`.
#[derive(Debug, Clone)]
struct CoreRelo {
    section: String,
    insn_off: u32,
    type_id: u32,
    access: String,
    kind: u32,
}

fn le32(b: &[u8], pos: usize) -> u32 {
    let s = b
        .get(pos..pos + 4)
        .unwrap_or_else(|| panic!(".BTF.ext truncated at byte {pos}"));
    u32::from_le_bytes([s[0], s[1], s[2], s[3]])
}

/// The `core_relo` subsection of `.BTF.ext`: `u32 record_size`, then per ELF section
/// `{sec_name_off, num_info}` and `num_info` records `{insn_off, type_id, access_str_off, kind}`.
fn core_relos(ext: &[u8], local: &Btf) -> Vec<CoreRelo> {
    assert_eq!(
        u16::from_le_bytes([ext[0], ext[1]]),
        0xeb9f,
        ".BTF.ext magic"
    );
    let hdr_len = le32(ext, 4) as usize;
    assert!(
        hdr_len >= 32,
        ".BTF.ext header of {hdr_len} bytes has no CO-RE relocation subsection"
    );
    let start = hdr_len + le32(ext, 24) as usize;
    let end = start + le32(ext, 28) as usize;
    let rec_size = le32(ext, start) as usize;
    assert!(rec_size >= 16, "CO-RE record size {rec_size}");
    let mut out = Vec::new();
    let mut pos = start + 4;
    while pos < end {
        let section = local
            .name(le32(ext, pos))
            .expect("CO-RE section name in .BTF strings")
            .to_string();
        let n = le32(ext, pos + 4) as usize;
        pos += 8;
        for _ in 0..n {
            out.push(CoreRelo {
                section: section.clone(),
                insn_off: le32(ext, pos),
                type_id: le32(ext, pos + 4),
                access: local
                    .name(le32(ext, pos + 8))
                    .expect("CO-RE access string in .BTF strings")
                    .to_string(),
                kind: le32(ext, pos + 12),
            });
            pos += rec_size;
        }
    }
    assert_eq!(pos, end, "CO-RE relocation subsection length");
    out
}

/// What a relocation must produce against one target BTF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Value(u64),
    /// No target type or field: aya poisons the instruction (`call 0xbad2310`).
    Poisoned,
}

/// A relocation resolved against a target BTF.
#[derive(Debug, Clone)]
struct Resolved {
    outcome: Outcome,
    /// Human-readable access, e.g. `task_struct.real_parent` or `sizeof(struct inode)`.
    path: String,
    /// The shifted structs the value depends on, with multiplicity (by construction, the
    /// value moves by the sum of their shifts).
    shifted: Vec<String>,
}

/// How much a type grows in the shifted BTF.
fn growth(target: &Btf, id: u32, shifted: &mut Vec<String>, times: u64) -> Result<(), String> {
    let t = target.resolve(id)?;
    match t.kind {
        KIND_STRUCT => {
            let name = target.type_name(t.id);
            if !name.is_empty() && shift_of(name).is_some() {
                for _ in 0..times {
                    shifted.push(name.to_string());
                }
            }
        }
        KIND_ARRAY => {
            let (elem, n) = t.array.expect("array data");
            growth(target, elem, shifted, times * u64::from(n))?;
        }
        _ => {}
    }
    Ok(())
}

/// Target types CO-RE considers for a local root type: same kind (enums: either width),
/// same name without `___flavor`.
fn candidates(local: &Btf, target: &Btf, local_root: u32) -> Result<Vec<u32>, String> {
    let lt = local.get(local_root)?;
    let name = flavorless(local.type_name(lt.id));
    if name.is_empty() {
        return Err(format!("local root type {local_root} is anonymous"));
    }
    let is_enum = |k: u32| k == KIND_ENUM || k == KIND_ENUM64;
    Ok(target
        .named(name)
        .into_iter()
        .filter(|t| t.kind == lt.kind || (is_enum(t.kind) && is_enum(lt.kind)))
        .map(|t| t.id)
        .collect())
}

/// A field access resolved in a target BTF.
struct FieldAccess {
    bit_offset: u64,
    /// The field's type in the target.
    typ: u32,
    path: String,
    /// Shifted structs the offset depends on (see [`Resolved::shifted`]).
    shifted: Vec<String>,
}

/// Resolves a field access (`access` = `0:3:1`) from `local_root` in `target`, as CO-RE does.
/// None when the target lacks a struct or member on the way.
fn walk_field(
    local: &Btf,
    target: &Btf,
    local_root: u32,
    cand: u32,
    access: &[u64],
) -> Result<Option<FieldAccess>, String> {
    let root_name = flavorless(local.type_name(local_root)).to_string();
    let mut path = root_name.clone();
    let mut shifted = Vec::new();
    let mut bit_offset = access[0] * target.size_of(cand)? * 8;
    growth(target, cand, &mut shifted, access[0])?;
    let (mut lt, mut tt) = (local_root, cand);
    for &idx in &access[1..] {
        let l = local.resolve(lt)?;
        let t = target.resolve(tt)?;
        match l.kind {
            KIND_STRUCT | KIND_UNION => {
                let m = l
                    .members
                    .get(idx as usize)
                    .ok_or_else(|| format!("{path}: local member #{idx} out of range"))?;
                let name = local.name(m.name_off)?;
                if name.is_empty() {
                    return Err(format!(
                        "{path}: access through an anonymous local member is not handled here"
                    ));
                }
                path = format!("{path}.{name}");
                if t.kind != KIND_STRUCT && t.kind != KIND_UNION {
                    return Ok(None);
                }
                let Some(found) = target.find_member(t.id, name)? else {
                    return Ok(None);
                };
                if found.bitfield_size != 0 {
                    return Err(format!("{path}: bitfield accesses are not handled here"));
                }
                for &via in &found.via {
                    let v = target.get(via)?;
                    let vname = target.type_name(via);
                    if v.kind == KIND_STRUCT && !vname.is_empty() {
                        if shift_of(vname).is_none() {
                            return Err(format!(
                                "{path}: struct {vname} is on the access path but has no shift in SHIFTS: add it"
                            ));
                        }
                        shifted.push(vname.to_string());
                    }
                }
                bit_offset += found.bit_offset;
                lt = m.typ;
                tt = found.typ;
            }
            KIND_ARRAY => {
                let (lelem, _) = l.array.expect("array data");
                if t.kind != KIND_ARRAY {
                    return Ok(None);
                }
                let (telem, _) = t.array.expect("array data");
                path = format!("{path}[{idx}]");
                bit_offset += idx * target.size_of(telem)? * 8;
                growth(target, telem, &mut shifted, idx)?;
                lt = lelem;
                tt = telem;
            }
            k => return Err(format!("{path}: access into a type of kind {k}")),
        }
    }
    Ok(Some(FieldAccess {
        bit_offset,
        typ: tt,
        path,
        shifted,
    }))
}

/// The value `relo` must take against `target`.
fn resolve(local: &Btf, target: &Btf, relo: &CoreRelo) -> Result<Resolved, String> {
    let access: Vec<u64> = relo
        .access
        .split(':')
        .map(|s| s.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("access string {:?}: {e}", relo.access))?;
    let root_name = flavorless(local.type_name(relo.type_id)).to_string();
    let cands = candidates(local, target, relo.type_id)?;
    let mut results: Vec<Resolved> = Vec::new();
    let mut missing_path = None;
    for &cand in &cands {
        let r = match relo.kind {
            FIELD_BYTE_OFFSET | FIELD_BYTE_SIZE | FIELD_EXISTS | FIELD_SIGNED => {
                match walk_field(local, target, relo.type_id, cand, &access)? {
                    None => None,
                    Some(FieldAccess {
                        bit_offset: bits,
                        typ: ty,
                        path,
                        mut shifted,
                    }) => {
                        let outcome = match relo.kind {
                            FIELD_BYTE_OFFSET => {
                                if bits % 8 != 0 {
                                    return Err(format!("{path}: bit offset {bits}"));
                                }
                                Outcome::Value(bits / 8)
                            }
                            FIELD_BYTE_SIZE => {
                                shifted.clear();
                                growth(target, ty, &mut shifted, 1)?;
                                Outcome::Value(target.size_of(ty)?)
                            }
                            FIELD_EXISTS => {
                                shifted.clear();
                                Outcome::Value(1)
                            }
                            _ => {
                                shifted.clear();
                                let t = target.resolve(ty)?;
                                let signed = match t.kind {
                                    btf::KIND_INT => (t.int_encoding >> 24) & 1 == 1,
                                    KIND_ENUM | KIND_ENUM64 => t.kind_flag,
                                    _ => false,
                                };
                                Outcome::Value(u64::from(signed))
                            }
                        };
                        Some(Resolved {
                            outcome,
                            path,
                            shifted,
                        })
                    }
                }
            }
            TYPE_EXISTS | TYPE_SIZE => {
                let mut shifted = Vec::new();
                let outcome = if relo.kind == TYPE_SIZE {
                    growth(target, cand, &mut shifted, 1)?;
                    Outcome::Value(target.size_of(cand)?)
                } else {
                    Outcome::Value(1)
                };
                Some(Resolved {
                    outcome,
                    path: if relo.kind == TYPE_SIZE {
                        format!("sizeof(struct {root_name})")
                    } else {
                        format!("exists(struct {root_name})")
                    },
                    shifted,
                })
            }
            ENUMVAL_EXISTS | ENUMVAL_VALUE => {
                let l = local.get(relo.type_id)?;
                let e = l
                    .enumerators
                    .get(access[0] as usize)
                    .ok_or_else(|| format!("enum {root_name}: local enumerator #{}", access[0]))?;
                let ename = local.name(e.name_off)?;
                let t = target.get(cand)?;
                let mut found = None;
                for te in &t.enumerators {
                    if target.name(te.name_off)? == ename {
                        found = Some(te.value);
                    }
                }
                found.map(|v| Resolved {
                    outcome: Outcome::Value(if relo.kind == ENUMVAL_EXISTS {
                        1
                    } else {
                        v as u64
                    }),
                    path: format!("{root_name}::{ename}"),
                    shifted: Vec::new(),
                })
            }
            k => {
                return Err(format!(
                    "CO-RE relocation kind {k} ({}) is not handled by this test",
                    kind_name(k)
                ))
            }
        };
        match r {
            Some(r) => results.push(r),
            None => missing_path = Some(relo.access.clone()),
        }
    }
    if let Some(first) = results.first() {
        if results.iter().any(|r| r.outcome != first.outcome) {
            return Err(format!(
                "{root_name} {}: candidates disagree: {results:?}",
                relo.access
            ));
        }
        return Ok(first.clone());
    }
    // Nothing in the target: existence checks say 0, everything else is poisoned.
    let path = format!(
        "{root_name} (access {}{})",
        relo.access,
        missing_path.map_or(", no such type", |_| ", no such member")
    );
    let outcome = match relo.kind {
        FIELD_EXISTS | TYPE_EXISTS | ENUMVAL_EXISTS => Outcome::Value(0),
        _ => Outcome::Poisoned,
    };
    Ok(Resolved {
        outcome,
        path,
        shifted: Vec::new(),
    })
}

// Instruction classes.
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_ST: u8 = 0x02;
const BPF_STX: u8 = 0x03;
const BPF_ALU: u8 = 0x04;
const BPF_ALU64: u8 = 0x07;
const LD_IMM64: u8 = 0x18;
const POISON_CODE: u8 = 0x85; // BPF_JMP | BPF_CALL
const POISON_IMM: i32 = 0xBAD2310;

type Insn = (u8, u8, u8, i16, i32);

fn fields(i: &bpf_insn) -> Insn {
    (i.code, i.dst_reg(), i.src_reg(), i.off, i.imm)
}

fn show(i: &bpf_insn) -> String {
    let (code, dst, src, off, imm) = fields(i);
    format!("{{code {code:#04x} dst r{dst} src r{src} off {off} imm {imm}}}")
}

/// The relocated value an instruction carries, and whether it is in `imm` (else `off`).
fn value_of(insns: &[bpf_insn], i: usize) -> Result<(u64, bool), String> {
    let ins = &insns[i];
    match ins.code & 0x07 {
        BPF_ALU | BPF_ALU64 => Ok((u64::from(ins.imm as u32), true)),
        BPF_LDX | BPF_ST | BPF_STX => Ok((u64::from(ins.off as u16), false)),
        BPF_LD if ins.code == LD_IMM64 => {
            let hi = insns
                .get(i + 1)
                .ok_or("ld_imm64 without its second half")?
                .imm as u32;
            Ok(((u64::from(hi) << 32) | u64::from(ins.imm as u32), true))
        }
        c => Err(format!(
            "instruction class {c:#x} cannot carry a relocation"
        )),
    }
}

fn load_and_relocate(bytes: &[u8], target: &[u8], what: &str) -> Object {
    let mut obj = Object::parse(bytes).expect("aya-obj parses PROBE_OBJECT");
    // As EbpfLoader::load does before relocating (this kernel has every BTF feature).
    let features = BtfFeatures::new(true, true, true, true, true, true, true, true);
    obj.fixup_and_sanitize_btf(&features)
        .expect("aya-obj fixes up the object's BTF");
    let target = AyaBtf::parse(target, Endianness::Little)
        .unwrap_or_else(|e| panic!("aya-obj parses the {what} BTF: {e}"));
    obj.relocate_btf(&target)
        .unwrap_or_else(|e| panic!("CO-RE relocation against the {what} BTF failed: {e:?}"));
    obj
}

/// One relocated instruction.
struct Site {
    relo: CoreRelo,
    real: Resolved,
    shifted: Resolved,
}

#[test]
fn kernel_struct_offsets_come_from_the_kernel_btf() {
    let obj_bytes = btf::probe_object();
    let vmlinux = match std::fs::read("/sys/kernel/btf/vmlinux") {
        Ok(b) => b,
        Err(e) => {
            btf::skip_unless_ci(&format!("cannot read /sys/kernel/btf/vmlinux ({e})"));
            return;
        }
    };

    // The synthetic kernel, and a check that the editor did exactly what it says.
    let real = Btf::parse(&vmlinux).expect("the kernel's BTF parses");
    let shifted_bytes = real
        .with_struct_shifts(SHIFTS)
        .expect("the kernel's BTF can be shifted");
    let shifted = Btf::parse(&shifted_bytes).expect("the shifted BTF parses");
    assert_eq!(real.types.len(), shifted.types.len());
    let mut edited = 0;
    for (a, b) in real.types.iter().zip(&shifted.types).skip(1) {
        let name = real.type_name(a.id);
        match shift_of(name).filter(|_| a.kind == KIND_STRUCT) {
            None => assert_eq!(
                real.record(a.id),
                shifted.record(b.id),
                "type [{}] {name} must be untouched",
                a.id
            ),
            Some(s) => {
                edited += 1;
                assert_eq!(b.size_or_type, a.size_or_type + s, "struct {name} size");
                for (ma, mb) in a.members.iter().zip(&b.members) {
                    assert_eq!(mb.bit_offset, ma.bit_offset + s * 8, "struct {name} member");
                    assert_eq!((mb.bitfield_size, mb.typ), (ma.bitfield_size, ma.typ));
                }
            }
        }
    }
    assert_eq!(
        edited,
        SHIFTS.len(),
        "one struct per SHIFTS entry in the kernel's BTF"
    );

    // The object's own BTF and CO-RE records.
    let local = Btf::parse(btf::elf_section(obj_bytes, ".BTF").expect(".BTF"))
        .expect("the object's .BTF parses");
    let relos = core_relos(
        btf::elf_section(obj_bytes, ".BTF.ext").expect(".BTF.ext"),
        &local,
    );
    let elf = object::File::parse(obj_bytes).expect("PROBE_OBJECT is ELF");
    let section_index: HashMap<String, usize> = elf
        .sections()
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.index().0)))
        .collect();

    let original = Object::parse(obj_bytes).expect("aya-obj parses PROBE_OBJECT");
    let on_real = load_and_relocate(obj_bytes, &vmlinux, "real kernel");
    let on_shifted = load_and_relocate(obj_bytes, &shifted_bytes, "shifted kernel");

    // Relocation sites by (function key, instruction index).
    let mut sites: BTreeMap<((usize, u64), usize), Site> = BTreeMap::new();
    for relo in &relos {
        let sec = *section_index
            .get(&relo.section)
            .unwrap_or_else(|| panic!("CO-RE section {} is not in the ELF", relo.section));
        let at = relo.insn_off as usize / 8;
        let (key, func) = original
            .functions
            .iter()
            .find(|(_, f)| {
                let start = f.section_offset / 8;
                f.section_index.0 == sec && (start..start + f.instructions.len()).contains(&at)
            })
            .unwrap_or_else(|| {
                panic!(
                    "CO-RE relocation at {}+{} is in no function",
                    relo.section, relo.insn_off
                )
            });
        let index = at - func.section_offset / 8;
        let resolve_in = |target: &Btf| {
            resolve(&local, target, relo).unwrap_or_else(|e| {
                panic!(
                    "{} instruction {index} ({} {}): {e}",
                    func.name,
                    kind_name(relo.kind),
                    relo.access
                )
            })
        };
        let site = Site {
            relo: relo.clone(),
            real: resolve_in(&real),
            shifted: resolve_in(&shifted),
        };
        assert!(
            sites.insert((*key, index), site).is_none(),
            "{} instruction {index}: two CO-RE relocations",
            func.name
        );
    }

    // Compare every instruction of every function.
    assert_eq!(
        original.functions.keys().collect::<Vec<_>>(),
        on_real.functions.keys().collect::<Vec<_>>()
    );
    let mut compared = 0usize;
    let mut differing = 0usize;
    let mut moved_by: BTreeMap<String, usize> = BTreeMap::new();
    let mut moved_paths: Vec<(String, String, usize, i64, i64)> = Vec::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut poisoned: Vec<String> = Vec::new();
    for (key, orig) in &original.functions {
        let a = &on_real.functions[key].instructions;
        let b = &on_shifted.functions[key].instructions;
        let prog = &orig.name;
        assert_eq!(
            a.len(),
            orig.instructions.len(),
            "{prog}: instruction count"
        );
        assert_eq!(
            b.len(),
            orig.instructions.len(),
            "{prog}: instruction count"
        );
        let mut second_half = None;
        for i in 0..orig.instructions.len() {
            compared += 1;
            if fields(&a[i]) != fields(&b[i]) {
                differing += 1;
            }
            let Some(site) = sites.get(&(*key, i)) else {
                if second_half == Some(i) {
                    // The upper half of a relocated ld_imm64: its imm was checked with the
                    // lower half; nothing else may change.
                    let (c0, d0, s0, o0, _) = fields(&orig.instructions[i]);
                    for (insns, on) in [(a, "real"), (b, "shifted")] {
                        let (c, d, s, o, _) = fields(&insns[i]);
                        assert!(
                            (c, d, s, o) == (c0, d0, s0, o0),
                            "{prog} instruction {i} (second half of a relocated ld_imm64) changed outside imm on the {on} kernel: {}",
                            show(&insns[i])
                        );
                    }
                    continue;
                }
                assert!(
                    fields(&orig.instructions[i]) == fields(&a[i])
                        && fields(&a[i]) == fields(&b[i]),
                    "{prog} instruction {i} has no CO-RE relocation but changed: original {}, real kernel {}, shifted kernel {}",
                    show(&orig.instructions[i]),
                    show(&a[i]),
                    show(&b[i])
                );
                continue;
            };
            *kinds.entry(kind_name(site.relo.kind)).or_default() += 1;
            if orig.instructions[i].code == LD_IMM64 {
                second_half = Some(i + 1);
            }
            let what = format!(
                "{prog} instruction {i} ({} {})",
                kind_name(site.relo.kind),
                site.real.path
            );
            match (site.real.outcome, site.shifted.outcome) {
                (Outcome::Poisoned, Outcome::Poisoned) => {
                    poisoned.push(format!("{prog}: {}", site.real.path));
                    for (insns, on) in [(a, "real"), (b, "shifted")] {
                        assert!(
                            insns[i].code == POISON_CODE && insns[i].imm == POISON_IMM,
                            "{what}: the {on} kernel lacks the target, so aya must poison it, got {}",
                            show(&insns[i])
                        );
                    }
                }
                (Outcome::Value(want_a), Outcome::Value(want_b)) => {
                    let (got_a, in_imm) = value_of(a, i).unwrap_or_else(|e| panic!("{what}: {e}"));
                    let (got_b, _) = value_of(b, i).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(
                        got_a,
                        want_a,
                        "{what}: value against the real kernel, {}",
                        show(&a[i])
                    );
                    assert_eq!(
                        got_b,
                        want_b,
                        "{what}: value against the shifted kernel, {}",
                        show(&b[i])
                    );
                    // Only the value field differs.
                    let (ca, da, sa, oa, ia) = fields(&a[i]);
                    let (cb, db, sb, ob, ib) = fields(&b[i]);
                    let same = if in_imm {
                        (ca, da, sa, oa) == (cb, db, sb, ob)
                    } else {
                        (ca, da, sa, ia) == (cb, db, sb, ib)
                    };
                    assert!(
                        same,
                        "{what}: differs outside its {} field: real kernel {}, shifted kernel {}",
                        if in_imm { "imm" } else { "off" },
                        show(&a[i]),
                        show(&b[i])
                    );
                    // By exactly the shifts on the path.
                    assert_eq!(
                        site.real.shifted, site.shifted.shifted,
                        "{what}: access path"
                    );
                    let expected: i64 = site
                        .real
                        .shifted
                        .iter()
                        .map(|s| i64::from(shift_of(s).expect("shifted struct")))
                        .sum();
                    let delta = got_b as i64 - got_a as i64;
                    assert_eq!(
                        delta, expected,
                        "{what}: moved by {delta} bytes, but the structs on its path ({:?}) were shifted by {expected}",
                        site.real.shifted
                    );
                    if delta != 0 {
                        for s in site.real.shifted.iter().collect::<BTreeSet<_>>() {
                            *moved_by.entry(s.clone()).or_default() += 1;
                        }
                        moved_paths.push((
                            prog.clone(),
                            site.real.path.clone(),
                            i,
                            got_a as i64,
                            delta,
                        ));
                    }
                }
                (ra, rb) => panic!(
                    "{what}: resolves to {ra:?} on the real kernel but {rb:?} on the shifted one"
                ),
            }
        }
    }

    assert_eq!(sites.len(), relos.len());
    assert!(
        differing > 0,
        "the two relocated instruction streams are identical"
    );
    assert_eq!(
        differing,
        moved_paths.len(),
        "every differing instruction is a relocation that moved"
    );
    for (name, _) in SHIFTS {
        assert!(
            moved_by.contains_key(*name),
            "no instruction moved with struct {name}: either the probe no longer reads it (drop it from SHIFTS) or its accesses are not relocated"
        );
    }
    for (path, structs) in SAMPLES {
        let want: i64 = structs
            .iter()
            .map(|s| i64::from(shift_of(s).expect("sample struct in SHIFTS")))
            .sum();
        let hits: Vec<_> = moved_paths.iter().filter(|m| m.1 == *path).collect();
        assert!(
            !hits.is_empty(),
            "no relocated access to {path} in the probe"
        );
        for (prog, p, i, at, delta) in &hits {
            assert_eq!(
                *delta, want,
                "{prog} instruction {i}: {p} (at byte {at} on this kernel) moved by {delta}, expected {want} ({structs:?})"
            );
        }
        println!(
            "  {path:<30} = {:>5} on this kernel, +{want:<3} on the shifted one ({} instructions)",
            hits[0].3,
            hits.len()
        );
    }
    let programs: BTreeSet<&String> = original.functions.values().map(|f| &f.name).collect();
    println!(
        "{} programs, {compared} instructions compared; {} CO-RE relocations ({kinds:?}); \
         {differing} instructions moved, {} poisoned identically (absent on this kernel: {poisoned:?})",
        programs.len(),
        relos.len(),
        poisoned.len()
    );
    println!("relocations moved per shifted struct: {moved_by:?}");
}
