//! No kernel struct offset is baked into the probe object at build time: every kernel layout
//! the programs depend on comes from the kernel's BTF at load time; and the object relocates
//! cleanly on every kernel layout it knows of, each member a kernel lacks read only behind
//! an existence check that is 0 there.
//!
//! # No offset baked in (`kernel_struct_offsets_come_from_the_kernel_btf`)
//!
//! How: the running kernel's BTF (`/sys/kernel/btf/vmlinux`) is copied into a synthetic
//! kernel in which every kernel struct the probe reads ([`SHIFTS`]: `task_struct`, `dentry`,
//! `mm_struct`, `cred`, … 30 of them) has all its members moved by a different number of
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
//! # Every kernel layout the probe knows, including those that cannot be booted here
//!
//! The probe reads some members that differ between kernel versions, each one only behind
//! its own `bpf_core_field_exists` check: the inode times (6.11+ `i_ctime_sec`/`_nsec`,
//! `i_mtime_sec`/`_nsec`; 6.7–6.10 `__i_ctime`/`__i_mtime`; 6.6 `__i_ctime` with `i_mtime`;
//! up to 6.5 `i_ctime`/`i_mtime`; `struct timespec64` before 6.11), `kernfs_node.__parent` (6.15+)
//! or `parent`, `task_struct.loginuid` (CONFIG_AUDIT) and `linux_binprm.fdpath` (5.9+). `kernel_cap_t` is `{ u64 val; }`
//! from 6.3 and `{ __u32 cap[2]; }` before; the probe reads the 8 bytes at `cred`'s field and
//! never names the inner member. A relocation whose member the kernel lacks is *poisoned*
//! (aya writes `call 0xbad2310`), and the verifier rejects a program that can reach one. So
//! for each of these BTFs, [`check_relocation`] relocates the object with aya-obj exactly as
//! above and asserts
//! - (i) the relocation succeeds;
//! - (ii) every field_exists relocation is 0 or 1 as the BTF says, and (iii) every other
//!   relocated instruction holds the value this test computes from the BTF (member offsets
//!   found by name, with CO-RE's type compatibility rule), every relocation of a missing
//!   member is poisoned, and nothing else changed;
//! - (iv) no unguarded poison: every poisoned relocation is a read for which the same program
//!   has a field_exists relocation on the same access path (or a prefix of it:
//!   `task_struct.loginuid` guards `task_struct.loginuid.val`) that is 0 in that BTF. The
//!   check is "is 0", not control flow; it holds because each member is read only inside its
//!   own `if (bpf_core_field_exists(...))`, and it fails, naming the program, instruction and
//!   access, as soon as a read is added without one (or guarded by another member's check);
//! - exactly one member of each [`ALTERNATIVES`] group exists (a kernel that renamed the
//!   inode times again fails here instead of reporting times of 0).
//!
//! `older_kernel_layouts_relocate_with_every_absent_member_guarded` applies it to layouts
//! synthesized from the running kernel's BTF (6.15+) with the BTF editor (`Btf::with_changes`:
//! members renamed, retyped or dropped at their offsets, an array type appended, a struct
//! named), for the kernels that cannot be booted here and for the older ones: [`LAYOUTS`] =
//! 6.7–6.10 (Ubuntu 24.04's 6.8), 6.6, 5.9–6.2 (timespec64 inode times with the
//! `__u32 cap[2]` kernel_cap_t), 5.8 (the same without `linux_binprm.fdpath`), and
//! 6.11–6.14 without CONFIG_AUDIT; all with `kernfs_node.parent`.
//! Besides (i)–(iv), each layout lists the value of every field_exists relocation of the
//! object (a new check needs its value in each layout), and the renamed members must be read
//! at the offset the member they replace has in the running kernel (`inode___timespec.__i_ctime`
//! where `i_ctime_sec` is; `cred.cap_effective` where it was, whatever `kernel_cap_t` holds).
//! The synthetic structs keep the kernel's offsets, so a 16-byte `struct timespec64` overlaps
//! the next member; CO-RE matches by name and reads offsets, which is all that is tested.
//!
//! `every_absent_member_is_guarded_on_this_kernel_and_the_booted_ones` applies it to the
//! running kernel's BTF and to every `*.btf` file in the directory named by the environment
//! variable `FALCO_LEARN_EXTRA_BTF`, if set (an error if it holds none): the kernel matrix
//! (qemu) saves each booted guest's `/sys/kernel/btf/vmlinux` there, so every booted kernel's
//! real BTF is checked offline too:
//! `FALCO_LEARN_EXTRA_BTF=<dir> cargo test -p falco-learn-probe --test core_relocation`
//! (only the files directly in `<dir>`, each named `<anything>.btf`).
//!
//! Needs `/sys/kernel/btf/vmlinux` (readable without root); without it the tests print a
//! loud SKIPPED line, or fail when `CI` is set. The layouts are synthesized from a 6.15+
//! kernel's BTF (split inode times, `kernfs_node.__parent`, `kernel_cap_t.val`); on an older
//! running kernel that test skips the same way.

mod btf;

use aya_obj::btf::{Btf as AyaBtf, BtfFeatures};
use aya_obj::generated::bpf_insn;
use aya_obj::Object;
use btf::{flavorless, Btf, Change, KIND_ARRAY, KIND_ENUM, KIND_ENUM64, KIND_STRUCT, KIND_UNION};
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
    ("hlist_bl_node", 232),
    ("pt_regs", 240),
    ("thread_info", 248),
    ("nsproxy", 256),
    ("cgroup_root", 264),
];

/// Accesses every kernel has and the probe makes, with the structs whose shifts they must
/// move by (written out by hand, not derived from the walk below).
const SAMPLES: &[(&str, &[&str])] = &[
    ("task_struct.real_parent", &["task_struct"]),
    ("task_struct.tgid", &["task_struct"]),
    ("pt_regs.orig_ax", &["pt_regs"]),
    ("pt_regs.di", &["pt_regs"]),
    (
        "task_struct.thread_info.status",
        &["task_struct", "thread_info"],
    ),
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
    ("task_struct.nsproxy", &["task_struct"]),
    ("nsproxy.mnt_ns", &["nsproxy"]),
    ("cgroup.root", &["cgroup"]),
    ("cgroup_root.hierarchy_id", &["cgroup_root"]),
    ("kernfs_node.id", &["kernfs_node"]),
];

// bpf_core_relo_kind
const FIELD_BYTE_OFFSET: u32 = 0;
const FIELD_BYTE_SIZE: u32 = 1;
const FIELD_EXISTS: u32 = 2;
const FIELD_SIGNED: u32 = 3;
const FIELD_LSHIFT_U64: u32 = 4;
const FIELD_RSHIFT_U64: u32 = 5;
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
        FIELD_LSHIFT_U64 => "field_lshift_u64",
        FIELD_RSHIFT_U64 => "field_rshift_u64",
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
    /// Bits of the field when the target's member is a bitfield (0 otherwise).
    bitfield_size: u64,
    /// The field's type in the target.
    typ: u32,
    path: String,
    /// Shifted structs the offset depends on (see [`Resolved::shifted`]).
    shifted: Vec<String>,
}

/// Whether a local member type and the target's member of the same name are compatible, by
/// CO-RE's rule (libbpf's `bpf_core_fields_are_compat`): after typedefs and qualifiers, two
/// structs/unions always are; otherwise the kinds must be equal (enums: either width), and then pointers and floats
/// are, integers are unless one is a legacy bitfield int (bit offset in its encoding),
/// enums and forward declarations are when their names match without `___flavor`, and arrays
/// are when their element types are. A name match of an incompatible type is no match.
fn fields_compatible(local: &Btf, lid: u32, target: &Btf, tid: u32) -> Result<bool, String> {
    let (mut lid, mut tid) = (lid, tid);
    for _ in 0..32 {
        let l = local.resolve(lid)?;
        let t = target.resolve(tid)?;
        let composite = |k: u32| k == KIND_STRUCT || k == KIND_UNION;
        if composite(l.kind) && composite(t.kind) {
            return Ok(true);
        }
        let is_enum = |k: u32| k == KIND_ENUM || k == KIND_ENUM64;
        if l.kind != t.kind && !(is_enum(l.kind) && is_enum(t.kind)) {
            return Ok(false);
        }
        match l.kind {
            btf::KIND_PTR | btf::KIND_FLOAT => return Ok(true),
            // INT encoding word: bits 16..24 are the legacy bit offset.
            btf::KIND_INT => {
                return Ok((l.int_encoding >> 16) & 0xff == 0 && (t.int_encoding >> 16) & 0xff == 0)
            }
            KIND_ENUM | KIND_ENUM64 | btf::KIND_FWD => {
                return Ok(flavorless(local.type_name(l.id)) == flavorless(target.type_name(t.id)))
            }
            KIND_ARRAY => {
                lid = l.array.expect("array data").0;
                tid = t.array.expect("array data").0;
            }
            k => return Err(format!("member type of kind {k} in a CO-RE access")),
        }
    }
    Err(format!("array nesting too deep at local type {lid}"))
}

/// Resolves a field access (`access` = `0:3:1`) from `local_root` in `target`, as CO-RE does.
/// None when the target lacks a struct or member on the way (or has it with an incompatible
/// type). With `require_shifts`, a named struct on the way that has no entry in [`SHIFTS`]
/// is an error (the shifted-kernel test must move it).
fn walk_field(
    local: &Btf,
    target: &Btf,
    local_root: u32,
    cand: u32,
    access: &[u64],
    require_shifts: bool,
) -> Result<Option<FieldAccess>, String> {
    let root_name = flavorless(local.type_name(local_root)).to_string();
    let mut path = root_name.clone();
    let mut shifted = Vec::new();
    let mut bit_offset = access[0] * target.size_of(cand)? * 8;
    let mut bitfield_size = 0;
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
                if !fields_compatible(local, m.typ, target, found.typ)? {
                    return Ok(None);
                }
                // a bitfield is the last step of an access (BPF_CORE_READ_BITFIELD_PROBED)
                bitfield_size = u64::from(found.bitfield_size);
                for &via in &found.via {
                    let v = target.get(via)?;
                    let vname = target.type_name(via);
                    if v.kind == KIND_STRUCT && !vname.is_empty() {
                        if shift_of(vname).is_none() && require_shifts {
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
        bitfield_size,
        typ: tt,
        path,
        shifted,
    }))
}

/// The value `relo` must take against `target` (`require_shifts`: see [`walk_field`]).
fn resolve(
    local: &Btf,
    target: &Btf,
    relo: &CoreRelo,
    require_shifts: bool,
) -> Result<Resolved, String> {
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
            FIELD_BYTE_OFFSET | FIELD_BYTE_SIZE | FIELD_EXISTS | FIELD_SIGNED
            | FIELD_LSHIFT_U64 | FIELD_RSHIFT_U64 => {
                match walk_field(local, target, relo.type_id, cand, &access, require_shifts)? {
                    None => None,
                    Some(FieldAccess {
                        bit_offset: bits,
                        bitfield_size,
                        typ: ty,
                        path,
                        mut shifted,
                    }) => {
                        // libbpf's bitfield arithmetic (little endian): the smallest aligned
                        // load of the member type's size, doubled until it holds the field
                        let bitfield = if bitfield_size == 0 {
                            None
                        } else {
                            let mut byte_sz = target.size_of(ty)?.max(1);
                            let mut byte_off = bits / 8 / byte_sz * byte_sz;
                            while bits + bitfield_size - byte_off * 8 > byte_sz * 8 {
                                if byte_sz >= 8 {
                                    return Err(format!("{path}: bitfield wider than 8 bytes"));
                                }
                                byte_sz *= 2;
                                byte_off = bits / 8 / byte_sz * byte_sz;
                            }
                            Some((byte_off, byte_sz))
                        };
                        let outcome = match relo.kind {
                            FIELD_BYTE_OFFSET => match bitfield {
                                Some((byte_off, _)) => Outcome::Value(byte_off),
                                None if bits % 8 != 0 => {
                                    return Err(format!("{path}: bit offset {bits}"))
                                }
                                None => Outcome::Value(bits / 8),
                            },
                            FIELD_BYTE_SIZE => {
                                shifted.clear();
                                match bitfield {
                                    Some((_, byte_sz)) => Outcome::Value(byte_sz),
                                    None => {
                                        growth(target, ty, &mut shifted, 1)?;
                                        Outcome::Value(target.size_of(ty)?)
                                    }
                                }
                            }
                            FIELD_LSHIFT_U64 | FIELD_RSHIFT_U64 => {
                                // a bitfield's position within its load never moves with a
                                // shift (whole structs move by multiples of 8 bytes)
                                shifted.clear();
                                let (byte_off, bit_sz) = match bitfield {
                                    Some((byte_off, _)) => (byte_off, bitfield_size),
                                    None => (bits / 8, target.size_of(ty)? * 8),
                                };
                                Outcome::Value(if relo.kind == FIELD_LSHIFT_U64 {
                                    64 - (bits + bit_sz - byte_off * 8)
                                } else {
                                    64 - bit_sz
                                })
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

/// A CO-RE relocation with the instruction it patches.
#[derive(Clone)]
struct Located {
    relo: CoreRelo,
    /// aya-obj's key of the function (program or subprogram) holding the instruction.
    key: (usize, u64),
    /// That function's name.
    func: String,
    /// Index of the instruction in the function.
    index: usize,
    /// The access named with the object's own types, flavours kept: `inode___timespec.__i_ctime`.
    access: String,
}

/// `PROBE_OBJECT`, parsed once: its BTF, its CO-RE relocations and where each one applies.
struct Probe {
    bytes: &'static [u8],
    local: Btf,
    original: Object,
    sites: Vec<Located>,
}

impl Probe {
    fn load() -> Probe {
        let bytes = btf::probe_object();
        let local = Btf::parse(btf::elf_section(bytes, ".BTF").expect(".BTF"))
            .expect("the object's .BTF parses");
        let relos = core_relos(
            btf::elf_section(bytes, ".BTF.ext").expect(".BTF.ext"),
            &local,
        );
        let elf = object::File::parse(bytes).expect("PROBE_OBJECT is ELF");
        let section_index: HashMap<String, usize> = elf
            .sections()
            .filter_map(|s| Some((s.name().ok()?.to_string(), s.index().0)))
            .collect();
        let original = Object::parse(bytes).expect("aya-obj parses PROBE_OBJECT");
        let mut sites = Vec::with_capacity(relos.len());
        let mut seen = BTreeSet::new();
        for relo in relos {
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
            assert!(
                seen.insert((*key, index)),
                "{} instruction {index}: two CO-RE relocations",
                func.name
            );
            let access = local_access(&local, &relo).unwrap_or_else(|e| {
                panic!(
                    "{} instruction {index} ({} {}): {e}",
                    func.name,
                    kind_name(relo.kind),
                    relo.access
                )
            });
            sites.push(Located {
                relo,
                key: *key,
                func: func.name.clone(),
                index,
                access,
            });
        }
        Probe {
            bytes,
            local,
            original,
            sites,
        }
    }
}

/// The numbers of an access string (`0:3:1`).
fn access_indices(relo: &CoreRelo) -> Result<Vec<u64>, String> {
    relo.access
        .split(':')
        .map(|s| s.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("access string {:?}: {e}", relo.access))
}

/// The access of `relo` named with the object's own types only (so it is the same against
/// every target): `task_struct.loginuid.val`, `pid.numbers[0]`, `sizeof(upid)`,
/// `cgroup_subsys_id::memory_cgrp_id`.
fn local_access(local: &Btf, relo: &CoreRelo) -> Result<String, String> {
    let access = access_indices(relo)?;
    let root = local.type_name(relo.type_id).to_string();
    let first = *access.first().ok_or("empty access string")?;
    match relo.kind {
        TYPE_EXISTS => return Ok(format!("exists({root})")),
        TYPE_SIZE => return Ok(format!("sizeof({root})")),
        6 | 7 | 12 => return Ok(format!("{}({root})", kind_name(relo.kind))),
        ENUMVAL_EXISTS | ENUMVAL_VALUE => {
            let e = local
                .get(relo.type_id)?
                .enumerators
                .get(first as usize)
                .ok_or_else(|| format!("enum {root}: no enumerator #{first}"))?;
            return Ok(format!("{root}::{}", local.name(e.name_off)?));
        }
        _ => {}
    }
    let mut path = if first == 0 {
        root
    } else {
        format!("{root}[{first}]")
    };
    let mut ty = relo.type_id;
    for &idx in &access[1..] {
        let t = local.resolve(ty)?;
        match t.kind {
            KIND_STRUCT | KIND_UNION => {
                let m = t
                    .members
                    .get(idx as usize)
                    .ok_or_else(|| format!("{path}: no member #{idx}"))?;
                let name = local.name(m.name_off)?;
                path = if name.is_empty() {
                    format!("{path}.<anon #{idx}>")
                } else {
                    format!("{path}.{name}")
                };
                ty = m.typ;
            }
            KIND_ARRAY => {
                path = format!("{path}[{idx}]");
                ty = t.array.expect("array data").0;
            }
            k => return Err(format!("{path}: access into a type of kind {k}")),
        }
    }
    Ok(path)
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

    // The object's own BTF and CO-RE records, and where each applies.
    let probe = Probe::load();
    let (local, relos, original) = (&probe.local, &probe.sites, &probe.original);
    let on_real = load_and_relocate(obj_bytes, &vmlinux, "real kernel");
    let on_shifted = load_and_relocate(obj_bytes, &shifted_bytes, "shifted kernel");

    // Relocation sites by (function key, instruction index).
    let mut sites: BTreeMap<((usize, u64), usize), Site> = BTreeMap::new();
    for located in relos {
        let (relo, index) = (&located.relo, located.index);
        let resolve_in = |target: &Btf| {
            resolve(local, target, relo, true).unwrap_or_else(|e| {
                panic!(
                    "{} instruction {index} ({} {}): {e}",
                    located.func,
                    kind_name(relo.kind),
                    located.access
                )
            })
        };
        let site = Site {
            relo: relo.clone(),
            real: resolve_in(&real),
            shifted: resolve_in(&shifted),
        };
        assert!(
            sites.insert((located.key, index), site).is_none(),
            "{} instruction {index}: two CO-RE relocations",
            located.func
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

/// The directory of extra kernels' BTF (`*.btf`) to check (see the module docs).
const EXTRA_BTF: &str = "FALCO_LEARN_EXTRA_BTF";

/// Members of which every kernel has exactly one; the probe reads whichever exists, each
/// behind its own `bpf_core_field_exists` check (the names are the object's field_exists
/// accesses). Checked against every BTF below, so a kernel with none of them (a rename the
/// probe does not know yet) fails here instead of silently reading nothing.
const ALTERNATIVES: &[(&str, &[&str])] = &[
    (
        "inode ctime",
        &[
            "inode.i_ctime_sec",
            "inode___timespec.__i_ctime",
            "inode___timespec.i_ctime",
        ],
    ),
    (
        "inode mtime",
        &[
            "inode.i_mtime_sec",
            "inode___timespec.__i_mtime",
            "inode___timespec.i_mtime",
        ],
    ),
    (
        "cgroup kernfs parent",
        &["kernfs_node.__parent", "kernfs_node___old.parent"],
    ),
];

/// What relocating the object against one BTF gave (all of it already checked).
struct Checked {
    /// The value of every field_exists relocation, by access (all sites of one access agree).
    exists: BTreeMap<String, u64>,
    /// The values of every field_byte_offset relocation, by access.
    offsets: BTreeMap<String, BTreeSet<u64>>,
    /// Accesses aya poisoned (every one guarded).
    poisoned: BTreeSet<String>,
}

/// The existence check that can guard a relocation of this kind.
fn guard_kind(kind: u32) -> Option<u32> {
    match kind {
        FIELD_BYTE_OFFSET | FIELD_BYTE_SIZE | FIELD_SIGNED | 4 | 5 => Some(FIELD_EXISTS),
        7 | TYPE_SIZE | 12 => Some(TYPE_EXISTS),
        ENUMVAL_VALUE => Some(ENUMVAL_EXISTS),
        _ => None,
    }
}

/// Relocates `PROBE_OBJECT` against `target_raw` with aya-obj as `EbpfLoader::load` does,
/// and asserts:
/// - (i) the relocation succeeds;
/// - (ii, iii) every relocated instruction holds the value this test computes itself from the
///   BTF (existence 0/1, member byte offset, size, enum value), every relocation whose target
///   is missing is poisoned, and no instruction without a relocation changed;
/// - (iv) no unguarded poison: every poisoned relocation reads a member (type, enumerator)
///   for which the same program has an existence check, on the same access path or a prefix
///   of it (`task_struct.loginuid` guards `task_struct.loginuid.val`), that is 0 here;
/// - each [`ALTERNATIVES`] group has exactly one member present.
fn check_relocation(probe: &Probe, target_raw: &[u8], what: &str) -> Checked {
    let target =
        Btf::parse(target_raw).unwrap_or_else(|e| panic!("the {what} BTF does not parse: {e}"));
    let relocated = load_and_relocate(probe.bytes, target_raw, what);
    let name = |s: &Located| {
        format!(
            "{} instruction {} ({} {})",
            s.func,
            s.index,
            kind_name(s.relo.kind),
            s.access
        )
    };

    let mut outcomes = Vec::with_capacity(probe.sites.len());
    let mut relocated_at = BTreeSet::new();
    let mut second_halves = BTreeSet::new();
    for site in &probe.sites {
        let at = format!("{what}: {}", name(site));
        let r = resolve(&probe.local, &target, &site.relo, false)
            .unwrap_or_else(|e| panic!("{at}: {e}"));
        let insns = &relocated.functions[&site.key].instructions;
        relocated_at.insert((site.key, site.index));
        if probe.original.functions[&site.key].instructions[site.index].code == LD_IMM64 {
            second_halves.insert((site.key, site.index + 1));
        }
        match r.outcome {
            Outcome::Poisoned => assert!(
                insns[site.index].code == POISON_CODE && insns[site.index].imm == POISON_IMM,
                "{at}: missing in this BTF, so aya must poison it; got {}",
                show(&insns[site.index])
            ),
            Outcome::Value(want) => {
                let (got, _) = value_of(insns, site.index).unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_eq!(
                    got,
                    want,
                    "{at}: aya relocated it to {got}, but the BTF says {want} ({})",
                    show(&insns[site.index])
                );
            }
        }
        outcomes.push(r.outcome);
    }
    for (key, f) in &probe.original.functions {
        let got = &relocated.functions[key].instructions;
        assert_eq!(got.len(), f.instructions.len(), "{what}: {}", f.name);
        for (i, ins) in f.instructions.iter().enumerate() {
            if relocated_at.contains(&(*key, i)) {
                continue;
            }
            let (c0, d0, s0, o0, i0) = fields(ins);
            let (c, d, s, o, imm) = fields(&got[i]);
            // The second half of a relocated ld_imm64 may change in imm only.
            assert!(
                (c0, d0, s0, o0) == (c, d, s, o)
                    && (i0 == imm || second_halves.contains(&(*key, i))),
                "{what}: {} instruction {i} has no CO-RE relocation but changed: {} -> {}",
                f.name,
                show(ins),
                show(&got[i])
            );
        }
    }

    // (iv) Every poisoned relocation is unreachable: an existence check says 0 first.
    let indices: Vec<Vec<u64>> = probe
        .sites
        .iter()
        .map(|s| access_indices(&s.relo).expect("access string"))
        .collect();
    let mut unguarded = Vec::new();
    for (i, site) in probe.sites.iter().enumerate() {
        if outcomes[i] != Outcome::Poisoned {
            continue;
        }
        let guarded = probe.sites.iter().enumerate().any(|(g, guard)| {
            Some(guard.relo.kind) == guard_kind(site.relo.kind)
                && guard.key == site.key
                && guard.relo.type_id == site.relo.type_id
                && outcomes[g] == Outcome::Value(0)
                && indices[i].starts_with(&indices[g])
        });
        if !guarded {
            unguarded.push(format!(
                "{}: {} is missing here, and {} has no existence check of it (or of a member on its path) that is 0 here",
                name(site),
                site.access,
                site.func
            ));
        }
    }
    assert!(
        unguarded.is_empty(),
        "{what}: {} poisoned relocations are not guarded; the verifier rejects a program that can \
         reach one (`invalid func unknown#195896080`). Read each member only behind its own \
         bpf_core_field_exists() check:\n  {}",
        unguarded.len(),
        unguarded.join("\n  ")
    );

    let mut checked = Checked {
        exists: BTreeMap::new(),
        offsets: BTreeMap::new(),
        poisoned: BTreeSet::new(),
    };
    for (site, outcome) in probe.sites.iter().zip(&outcomes) {
        match (site.relo.kind, *outcome) {
            (_, Outcome::Poisoned) => {
                checked.poisoned.insert(site.access.clone());
            }
            (FIELD_EXISTS, Outcome::Value(v)) => {
                let before = checked.exists.insert(site.access.clone(), v);
                assert!(
                    before.is_none() || before == Some(v),
                    "{what}: field_exists {} is {before:?} at one site and {v} at another",
                    site.access
                );
            }
            (FIELD_BYTE_OFFSET, Outcome::Value(v)) => {
                checked
                    .offsets
                    .entry(site.access.clone())
                    .or_default()
                    .insert(v);
            }
            _ => {}
        }
    }
    for (what_for, members) in ALTERNATIVES {
        for m in *members {
            assert!(
                checked.exists.contains_key(*m),
                "the probe has no bpf_core_field_exists() of {m} any more: update ALTERNATIVES ({what_for})"
            );
        }
        let present: Vec<&&str> = members
            .iter()
            .filter(|m| checked.exists[**m] == 1)
            .collect();
        assert_eq!(
            present.len(),
            1,
            "{what}: {what_for}: exactly one of {members:?} must exist, found {present:?}"
        );
    }
    checked
}

/// An older kernel's layout, synthesized from the running kernel's (6.15+) BTF.
struct Layout {
    name: &'static str,
    /// The inode's `i_atime_sec`, `i_mtime_sec`, `i_ctime_sec` become these
    /// `struct timespec64` members (at the same offsets) and the `*_nsec` members go; None
    /// keeps the 6.11+ split members.
    inode_times: Option<[&'static str; 3]>,
    /// `kernfs_node.__parent` is `parent` (before 6.15).
    kernfs_parent: bool,
    /// `kernel_cap_t` is `struct kernel_cap_struct { __u32 cap[2]; }` (before 6.3) instead
    /// of `struct { u64 val; }`.
    kernel_cap_u32x2: bool,
    /// `task_struct.loginuid` is gone (CONFIG_AUDIT off).
    no_audit: bool,
    /// `linux_binprm.fdpath` is missing (before 5.9).
    no_fdpath: bool,
    /// The value the layout implies for every field_exists relocation of the object.
    exists: &'static [(&'static str, u64)],
}

const LAYOUTS: &[Layout] = &[
    Layout {
        name: "6.7-6.10 (Ubuntu 24.04's 6.8): __i_ctime/__i_mtime as struct timespec64",
        inode_times: Some(["__i_atime", "__i_mtime", "__i_ctime"]),
        kernfs_parent: true,
        kernel_cap_u32x2: false,
        no_audit: false,
        no_fdpath: false,
        exists: &[
            ("inode.i_ctime_sec", 0),
            ("inode.i_ctime_nsec", 0),
            ("inode.i_mtime_sec", 0),
            ("inode.i_mtime_nsec", 0),
            ("inode___timespec.__i_ctime", 1),
            ("inode___timespec.i_ctime", 0),
            ("inode___timespec.__i_mtime", 1),
            ("inode___timespec.i_mtime", 0),
            ("kernfs_node.__parent", 0),
            ("kernfs_node___old.parent", 1),
            ("task_struct.loginuid", 1),
            ("linux_binprm.fdpath", 1),
        ],
    },
    Layout {
        name: "6.6: __i_ctime with i_mtime",
        inode_times: Some(["i_atime", "i_mtime", "__i_ctime"]),
        kernfs_parent: true,
        kernel_cap_u32x2: false,
        no_audit: false,
        no_fdpath: false,
        exists: &[
            ("inode.i_ctime_sec", 0),
            ("inode.i_ctime_nsec", 0),
            ("inode.i_mtime_sec", 0),
            ("inode.i_mtime_nsec", 0),
            ("inode___timespec.__i_ctime", 1),
            ("inode___timespec.i_ctime", 0),
            ("inode___timespec.__i_mtime", 0),
            ("inode___timespec.i_mtime", 1),
            ("kernfs_node.__parent", 0),
            ("kernfs_node___old.parent", 1),
            ("task_struct.loginuid", 1),
            ("linux_binprm.fdpath", 1),
        ],
    },
    Layout {
        name: "5.9-6.2: i_ctime/i_mtime, kernel_cap_t { __u32 cap[2]; }",
        inode_times: Some(["i_atime", "i_mtime", "i_ctime"]),
        kernfs_parent: true,
        kernel_cap_u32x2: true,
        no_audit: false,
        no_fdpath: false,
        exists: &[
            ("inode.i_ctime_sec", 0),
            ("inode.i_ctime_nsec", 0),
            ("inode.i_mtime_sec", 0),
            ("inode.i_mtime_nsec", 0),
            ("inode___timespec.__i_ctime", 0),
            ("inode___timespec.i_ctime", 1),
            ("inode___timespec.__i_mtime", 0),
            ("inode___timespec.i_mtime", 1),
            ("kernfs_node.__parent", 0),
            ("kernfs_node___old.parent", 1),
            ("task_struct.loginuid", 1),
            ("linux_binprm.fdpath", 1),
        ],
    },
    Layout {
        name: "5.8: as 5.9-6.2, without linux_binprm.fdpath (an exec reads as execve)",
        inode_times: Some(["i_atime", "i_mtime", "i_ctime"]),
        kernfs_parent: true,
        kernel_cap_u32x2: true,
        no_audit: false,
        no_fdpath: true,
        exists: &[
            ("inode.i_ctime_sec", 0),
            ("inode.i_ctime_nsec", 0),
            ("inode.i_mtime_sec", 0),
            ("inode.i_mtime_nsec", 0),
            ("inode___timespec.__i_ctime", 0),
            ("inode___timespec.i_ctime", 1),
            ("inode___timespec.__i_mtime", 0),
            ("inode___timespec.i_mtime", 1),
            ("kernfs_node.__parent", 0),
            ("kernfs_node___old.parent", 1),
            ("task_struct.loginuid", 1),
            ("linux_binprm.fdpath", 0),
        ],
    },
    Layout {
        name: "6.11-6.14 without CONFIG_AUDIT: kernfs_node.parent, no task_struct.loginuid",
        inode_times: None,
        kernfs_parent: true,
        kernel_cap_u32x2: false,
        no_audit: true,
        no_fdpath: false,
        exists: &[
            ("inode.i_ctime_sec", 1),
            ("inode.i_ctime_nsec", 1),
            ("inode.i_mtime_sec", 1),
            ("inode.i_mtime_nsec", 1),
            ("inode___timespec.__i_ctime", 0),
            ("inode___timespec.i_ctime", 0),
            ("inode___timespec.__i_mtime", 0),
            ("inode___timespec.i_mtime", 0),
            ("kernfs_node.__parent", 0),
            ("kernfs_node___old.parent", 1),
            ("task_struct.loginuid", 0),
            ("linux_binprm.fdpath", 1),
        ],
    },
];

/// The anonymous struct `kernel_cap_t` names.
fn kernel_cap_struct(btf: &Btf) -> Result<u32, String> {
    let typedef = btf
        .named("kernel_cap_t")
        .into_iter()
        .find(|t| t.kind == btf::KIND_TYPEDEF)
        .ok_or("no typedef kernel_cap_t")?;
    let t = btf.resolve(typedef.id)?;
    if t.kind != KIND_STRUCT {
        return Err(format!("kernel_cap_t is of kind {}", t.kind));
    }
    Ok(t.id)
}

/// `layout`, made from `real` (a 6.15+ kernel's BTF) with the BTF editor: the kernel's own
/// types, with just the members that differ between the versions renamed, retyped or dropped.
fn synthesize(real: &Btf, layout: &Layout) -> Result<Vec<u8>, String> {
    let mut changes = Vec::new();
    if let Some(names) = layout.inode_times {
        let inode = real.unique_struct("inode")?.id;
        let ts = real.unique_struct("timespec64")?.id;
        for (old, name) in ["i_atime_sec", "i_mtime_sec", "i_ctime_sec"]
            .into_iter()
            .zip(names)
        {
            changes.push(Change::ReplaceMember {
                container: inode,
                member: old,
                name,
                typ: ts,
            });
        }
        for old in ["i_atime_nsec", "i_mtime_nsec", "i_ctime_nsec"] {
            changes.push(Change::RemoveMember {
                container: inode,
                member: old,
            });
        }
    }
    if layout.kernfs_parent {
        let kn = real.unique_struct("kernfs_node")?.id;
        let (_, parent) = real.direct_member(kn, "__parent")?;
        changes.push(Change::ReplaceMember {
            container: kn,
            member: "__parent",
            name: "parent",
            typ: parent.typ,
        });
    }
    if layout.kernel_cap_u32x2 {
        let cap = kernel_cap_struct(real)?;
        let u32_ = real
            .named("__u32")
            .into_iter()
            .find(|t| t.kind == btf::KIND_TYPEDEF)
            .ok_or("no typedef __u32")?
            .id;
        let array = real.next_id();
        changes.push(Change::AppendArray {
            elem: u32_,
            index: real.resolve(u32_)?.id,
            n: 2,
        });
        changes.push(Change::ReplaceMember {
            container: cap,
            member: "val",
            name: "cap",
            typ: array,
        });
        changes.push(Change::Rename {
            id: cap,
            name: "kernel_cap_struct",
        });
    }
    if layout.no_audit {
        changes.push(Change::RemoveMember {
            container: real.unique_struct("task_struct")?.id,
            member: "loginuid",
        });
    }
    if layout.no_fdpath {
        changes.push(Change::RemoveMember {
            container: real.unique_struct("linux_binprm")?.id,
            member: "fdpath",
        });
    }
    real.with_changes(&changes)
}

/// Byte offset of `member` (a dotted path from `root`) in `btf`, found by name.
fn offset_in(btf: &Btf, root: &str, member: &str) -> Result<u64, String> {
    let mut ty = btf.unique_struct(root)?.id;
    let mut bits = 0;
    for part in member.split('.') {
        let f = btf
            .find_member(ty, part)?
            .ok_or_else(|| format!("no {root}.{member}"))?;
        bits += f.bit_offset;
        ty = f.typ;
    }
    Ok(bits / 8)
}

#[test]
fn older_kernel_layouts_relocate_with_every_absent_member_guarded() {
    let vmlinux = match std::fs::read("/sys/kernel/btf/vmlinux") {
        Ok(b) => b,
        Err(e) => {
            btf::skip_unless_ci(&format!("cannot read /sys/kernel/btf/vmlinux ({e})"));
            return;
        }
    };
    let real = Btf::parse(&vmlinux).expect("the kernel's BTF parses");
    let newest = |root: &str, member: &str| {
        real.unique_struct(root)
            .and_then(|t| real.direct_member(t.id, member).map(|_| ()))
    };
    if let Err(e) = newest("inode", "i_ctime_sec")
        .and(newest("kernfs_node", "__parent"))
        .and(kernel_cap_struct(&real).and_then(|id| real.direct_member(id, "val").map(|_| ())))
    {
        btf::skip_unless_ci(&format!(
            "the older layouts are made from a 6.15+ kernel's BTF, and this kernel's differs ({e})"
        ));
        return;
    }
    let probe = Probe::load();
    let real_offset = |root: &str, member: &str| {
        offset_in(&real, root, member).unwrap_or_else(|e| panic!("this kernel's BTF: {e}"))
    };

    for layout in LAYOUTS {
        let what = format!("synthetic {}", layout.name);
        let raw = synthesize(&real, layout).unwrap_or_else(|e| panic!("{what}: {e}"));
        let synthetic = Btf::parse(&raw).unwrap_or_else(|e| panic!("{what}: does not parse: {e}"));
        // The editor did what the layout says (the relocations below rest on it).
        let inode = synthetic.unique_struct("inode").expect("inode").id;
        for (member, present) in [
            ("i_ctime_sec", layout.inode_times.is_none()),
            ("i_mtime_nsec", layout.inode_times.is_none()),
        ] {
            assert_eq!(
                synthetic.direct_member(inode, member).is_ok(),
                present,
                "{what}: inode.{member}"
            );
        }
        if layout.kernel_cap_u32x2 {
            let cap = kernel_cap_struct(&synthetic).expect("kernel_cap_t");
            let (_, m) = synthetic
                .direct_member(cap, "cap")
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(synthetic.type_name(cap), "kernel_cap_struct", "{what}");
            let arr = synthetic.get(m.typ).expect("cap's type");
            let (elem, n) = arr.array.expect("cap is an array");
            assert_eq!(
                (n, synthetic.size_of(elem), synthetic.size_of(cap)),
                (2, Ok(4), Ok(8)),
                "{what}: kernel_cap_t must be {{ __u32 cap[2]; }}, 8 bytes"
            );
        }

        let checked = check_relocation(&probe, &raw, &what);

        // (ii) Every existence check says what the layout implies.
        let want: BTreeMap<String, u64> = layout
            .exists
            .iter()
            .map(|(a, v)| (a.to_string(), *v))
            .collect();
        assert_eq!(
            checked.exists, want,
            "{what}: field_exists values (left: relocated, right: what the layout implies; \
             a new existence check in the probe needs its value in every LAYOUTS entry)"
        );

        // (iii) The members that moved to another name are read where the edit put them:
        // the offset of the member they replace in this kernel's BTF.
        let mut moved: Vec<(String, u64)> = vec![(
            "cred.cap_effective".to_string(),
            real_offset("cred", "cap_effective"),
        )];
        if layout.kernfs_parent {
            moved.push((
                "kernfs_node___old.parent".to_string(),
                real_offset("kernfs_node", "__parent"),
            ));
        }
        if let Some([_, mtime, ctime]) = layout.inode_times {
            moved.push((
                format!("inode___timespec.{mtime}"),
                real_offset("inode", "i_mtime_sec"),
            ));
            moved.push((
                format!("inode___timespec.{ctime}"),
                real_offset("inode", "i_ctime_sec"),
            ));
        }
        for (access, at) in &moved {
            assert_eq!(
                checked.offsets.get(access),
                Some(&BTreeSet::from([*at])),
                "{what}: every read of {access} must be relocated to byte {at}, where the \
                 synthetic BTF has it"
            );
        }
        println!(
            "{what}: relocated; {} existence checks as the layout implies, moved members at {moved:?}, poisoned behind their checks: {:?}",
            checked.exists.len(),
            checked.poisoned
        );
    }
}

#[test]
fn every_absent_member_is_guarded_on_this_kernel_and_the_booted_ones() {
    let probe = Probe::load();
    match std::fs::read("/sys/kernel/btf/vmlinux") {
        Ok(raw) => {
            let checked = check_relocation(&probe, &raw, "this kernel (/sys/kernel/btf/vmlinux)");
            println!(
                "this kernel: relocated, poisoned behind their checks: {:?}",
                checked.poisoned
            );
        }
        Err(e) => btf::skip_unless_ci(&format!("cannot read /sys/kernel/btf/vmlinux ({e})")),
    }
    let Some(dir) = std::env::var_os(EXTRA_BTF) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{EXTRA_BTF}={}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "btf"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{EXTRA_BTF}={} has no *.btf file to check",
        dir.display()
    );
    for path in files {
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let what = path.display().to_string();
        let checked = check_relocation(&probe, &raw, &what);
        println!(
            "{what}: relocated, poisoned behind their checks: {:?}",
            checked.poisoned
        );
    }
}
