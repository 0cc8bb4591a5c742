//! A minimal raw BTF reader and editor, shared by `abi_layout.rs` and `core_relocation.rs`.
//!
//! aya-obj parses BTF too, but keeps its type table crate-private, and the tests need to walk
//! types, look members up by name and rewrite member offsets. The format is small: a header,
//! a type section of variable-length records, a string section
//! (<https://docs.kernel.org/bpf/btf.html>). Each record is `{name_off, info, size/type}`
//! followed by kind-specific data; `kind = (info >> 24) & 0x1f`, `vlen = info & 0xffff`,
//! `kind_flag = info >> 31`. Only little-endian BTF is read (x86_64, arm64, and the BPF
//! target's default), which the magic number check enforces.

// Each test target compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;

pub const KIND_INT: u32 = 1;
pub const KIND_PTR: u32 = 2;
pub const KIND_ARRAY: u32 = 3;
pub const KIND_STRUCT: u32 = 4;
pub const KIND_UNION: u32 = 5;
pub const KIND_ENUM: u32 = 6;
pub const KIND_FWD: u32 = 7;
pub const KIND_TYPEDEF: u32 = 8;
pub const KIND_VOLATILE: u32 = 9;
pub const KIND_CONST: u32 = 10;
pub const KIND_RESTRICT: u32 = 11;
pub const KIND_FUNC: u32 = 12;
pub const KIND_FUNC_PROTO: u32 = 13;
pub const KIND_VAR: u32 = 14;
pub const KIND_DATASEC: u32 = 15;
pub const KIND_FLOAT: u32 = 16;
pub const KIND_DECL_TAG: u32 = 17;
pub const KIND_TYPE_TAG: u32 = 18;
pub const KIND_ENUM64: u32 = 19;

const MAGIC: u16 = 0xeb9f;
const TYPE_HEADER: usize = 12;

/// One struct/union member.
#[derive(Debug, Clone)]
pub struct Member {
    pub name_off: u32,
    pub typ: u32,
    /// Offset from the start of the struct, in bits.
    pub bit_offset: u32,
    /// 0 unless the member is a bitfield.
    pub bitfield_size: u32,
    /// Position of the member's offset word in the raw bytes.
    offset_pos: usize,
}

/// One enumerator (ENUM or ENUM64).
#[derive(Debug, Clone)]
pub struct Enumerator {
    pub name_off: u32,
    pub value: i64,
}

/// One type record.
#[derive(Debug, Clone)]
pub struct Type {
    pub id: u32,
    pub name_off: u32,
    pub kind: u32,
    pub kind_flag: bool,
    pub vlen: u32,
    /// `size` for INT/STRUCT/UNION/ENUM/ENUM64/FLOAT/DATASEC, `type` for the others.
    pub size_or_type: u32,
    pub members: Vec<Member>,
    pub enumerators: Vec<Enumerator>,
    /// ARRAY: (element type, number of elements).
    pub array: Option<(u32, u32)>,
    /// INT: the encoding word (bit 0: signed).
    pub int_encoding: u32,
    /// Position of the record in the raw bytes, and its length.
    pos: usize,
    len: usize,
}

/// A parsed BTF blob. `types[id]`; id 0 is `void` (a placeholder record).
pub struct Btf {
    pub raw: Vec<u8>,
    pub types: Vec<Type>,
    str_start: usize,
    str_len: usize,
    by_name: HashMap<String, Vec<u32>>,
}

/// Where a member was found by [`Btf::find_member`].
#[derive(Debug, Clone)]
pub struct Found {
    /// Bit offset from the start of the outer struct.
    pub bit_offset: u64,
    pub typ: u32,
    pub bitfield_size: u32,
    /// The structs/unions whose member list was used, outermost first (anonymous members
    /// are searched like the kernel's CO-RE does: as if their members were the parent's).
    pub via: Vec<u32>,
}

fn u32_at(b: &[u8], pos: usize) -> Result<u32, String> {
    b.get(pos..pos + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("BTF truncated at byte {pos}"))
}

fn put_u32(b: &mut [u8], pos: usize, v: u32) {
    b[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
}

impl Btf {
    pub fn parse(raw: &[u8]) -> Result<Btf, String> {
        if raw.len() < 24 {
            return Err(format!("BTF too short: {} bytes", raw.len()));
        }
        let magic = u16::from_le_bytes([raw[0], raw[1]]);
        if magic != MAGIC {
            return Err(format!(
                "bad BTF magic {magic:#06x} (big-endian BTF is not supported here)"
            ));
        }
        let hdr_len = u32_at(raw, 4)? as usize;
        let type_off = u32_at(raw, 8)? as usize;
        let type_len = u32_at(raw, 12)? as usize;
        let str_off = u32_at(raw, 16)? as usize;
        let str_len = u32_at(raw, 20)? as usize;
        let type_start = hdr_len + type_off;
        let type_end = type_start + type_len;
        let str_start = hdr_len + str_off;
        if type_end > raw.len() || str_start + str_len > raw.len() {
            return Err(format!(
                "BTF sections out of bounds (types {type_start}..{type_end}, strings {str_start}+{str_len}, blob {})",
                raw.len()
            ));
        }
        let mut types = vec![Type {
            id: 0,
            name_off: 0,
            kind: 0,
            kind_flag: false,
            vlen: 0,
            size_or_type: 0,
            members: Vec::new(),
            enumerators: Vec::new(),
            array: None,
            int_encoding: 0,
            pos: 0,
            len: 0,
        }];
        let mut pos = type_start;
        while pos < type_end {
            let id = types.len() as u32;
            let name_off = u32_at(raw, pos)?;
            let info = u32_at(raw, pos + 4)?;
            let size_or_type = u32_at(raw, pos + 8)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = info & 0xffff;
            let kind_flag = info >> 31 == 1;
            let data = pos + TYPE_HEADER;
            let mut t = Type {
                id,
                name_off,
                kind,
                kind_flag,
                vlen,
                size_or_type,
                members: Vec::new(),
                enumerators: Vec::new(),
                array: None,
                int_encoding: 0,
                pos,
                len: 0,
            };
            let extra = match kind {
                KIND_INT => {
                    t.int_encoding = u32_at(raw, data)?;
                    4
                }
                KIND_ARRAY => {
                    t.array = Some((u32_at(raw, data)?, u32_at(raw, data + 8)?));
                    12
                }
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen as usize {
                        let m = data + i * 12;
                        let off = u32_at(raw, m + 8)?;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (off & 0x00ff_ffff, off >> 24)
                        } else {
                            (off, 0)
                        };
                        t.members.push(Member {
                            name_off: u32_at(raw, m)?,
                            typ: u32_at(raw, m + 4)?,
                            bit_offset,
                            bitfield_size,
                            offset_pos: m + 8,
                        });
                    }
                    vlen as usize * 12
                }
                KIND_ENUM => {
                    for i in 0..vlen as usize {
                        let e = data + i * 8;
                        let v = u32_at(raw, e + 4)?;
                        // kind_flag: signed values.
                        let value = if kind_flag {
                            i64::from(v as i32)
                        } else {
                            i64::from(v)
                        };
                        t.enumerators.push(Enumerator {
                            name_off: u32_at(raw, e)?,
                            value,
                        });
                    }
                    vlen as usize * 8
                }
                KIND_ENUM64 => {
                    for i in 0..vlen as usize {
                        let e = data + i * 12;
                        let lo = u64::from(u32_at(raw, e + 4)?);
                        let hi = u64::from(u32_at(raw, e + 8)?);
                        t.enumerators.push(Enumerator {
                            name_off: u32_at(raw, e)?,
                            value: ((hi << 32) | lo) as i64,
                        });
                    }
                    vlen as usize * 12
                }
                KIND_FUNC_PROTO => vlen as usize * 8,
                KIND_VAR | KIND_DECL_TAG => 4,
                KIND_DATASEC => vlen as usize * 12,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                other => {
                    return Err(format!(
                        "BTF type [{id}] at byte {pos}: unknown kind {other}"
                    ))
                }
            };
            t.len = TYPE_HEADER + extra;
            pos += t.len;
            types.push(t);
        }
        if pos != type_end {
            return Err(format!(
                "BTF type section overruns its length ({pos} != {type_end})"
            ));
        }
        let mut btf = Btf {
            raw: raw.to_vec(),
            types,
            str_start,
            str_len,
            by_name: HashMap::new(),
        };
        let mut by_name: HashMap<String, Vec<u32>> = HashMap::new();
        for t in &btf.types[1..] {
            let name = btf.name(t.name_off)?;
            if !name.is_empty() {
                by_name.entry(name.to_string()).or_default().push(t.id);
            }
        }
        btf.by_name = by_name;
        Ok(btf)
    }

    /// The string at `off` in the string section.
    pub fn name(&self, off: u32) -> Result<&str, String> {
        let off = off as usize;
        if off >= self.str_len {
            return Err(format!(
                "BTF string offset {off} out of bounds ({})",
                self.str_len
            ));
        }
        let s = &self.raw[self.str_start + off..self.str_start + self.str_len];
        let end = s
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("BTF string at {off} is not NUL-terminated"))?;
        std::str::from_utf8(&s[..end]).map_err(|e| format!("BTF string at {off}: {e}"))
    }

    /// The type's name, `""` for anonymous types.
    pub fn type_name(&self, id: u32) -> &str {
        self.name(self.types[id as usize].name_off)
            .unwrap_or("<bad name>")
    }

    pub fn get(&self, id: u32) -> Result<&Type, String> {
        self.types
            .get(id as usize)
            .ok_or_else(|| format!("BTF type id {id} out of range ({})", self.types.len()))
    }

    /// Follows typedefs and qualifiers (const, volatile, restrict, type tags).
    pub fn resolve(&self, mut id: u32) -> Result<&Type, String> {
        for _ in 0..64 {
            let t = self.get(id)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Ok(t),
            }
        }
        Err(format!("BTF type {id}: typedef/qualifier chain too long"))
    }

    /// Size in bytes, as the kernel computes it.
    pub fn size_of(&self, id: u32) -> Result<u64, String> {
        let t = self.resolve(id)?;
        match t.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT
            | KIND_DATASEC => Ok(u64::from(t.size_or_type)),
            KIND_PTR => Ok(8),
            KIND_ARRAY => {
                let (elem, n) = t.array.expect("array record has array data");
                Ok(u64::from(n) * self.size_of(elem)?)
            }
            k => Err(format!("BTF type {} (kind {k}) has no size", t.id)),
        }
    }

    /// Every type with this exact name (any kind).
    pub fn named(&self, name: &str) -> Vec<&Type> {
        self.by_name
            .get(name)
            .map(|ids| ids.iter().map(|&id| &self.types[id as usize]).collect())
            .unwrap_or_default()
    }

    /// The struct named `name`, which must be unique.
    pub fn unique_struct(&self, name: &str) -> Result<&Type, String> {
        let found: Vec<&Type> = self
            .named(name)
            .into_iter()
            .filter(|t| t.kind == KIND_STRUCT)
            .collect();
        match found.as_slice() {
            [t] => Ok(t),
            [] => Err(format!("no struct `{name}` in the BTF")),
            many => Err(format!(
                "{} structs named `{name}` in the BTF (ids {:?})",
                many.len(),
                many.iter().map(|t| t.id).collect::<Vec<_>>()
            )),
        }
    }

    /// Looks a member up by name in a struct/union, descending into anonymous struct/union
    /// members as CO-RE does.
    pub fn find_member(&self, container: u32, name: &str) -> Result<Option<Found>, String> {
        let t = self.resolve(container)?;
        if t.kind != KIND_STRUCT && t.kind != KIND_UNION {
            return Ok(None);
        }
        for m in &t.members {
            let mname = self.name(m.name_off)?;
            if mname == name {
                return Ok(Some(Found {
                    bit_offset: u64::from(m.bit_offset),
                    typ: m.typ,
                    bitfield_size: m.bitfield_size,
                    via: vec![t.id],
                }));
            }
            if mname.is_empty() {
                let inner = self.resolve(m.typ)?;
                if inner.kind == KIND_STRUCT || inner.kind == KIND_UNION {
                    if let Some(mut f) = self.find_member(inner.id, name)? {
                        f.bit_offset += u64::from(m.bit_offset);
                        f.via.insert(0, t.id);
                        return Ok(Some(f));
                    }
                }
            }
        }
        Ok(None)
    }

    /// A copy of this BTF in which every member of each named struct sits `shift` bytes
    /// further (the first member included) and the struct is `shift` bytes larger. Every
    /// struct of that name is edited; nothing else changes, so type ids and strings stay valid.
    pub fn with_struct_shifts(&self, shifts: &[(&str, u32)]) -> Result<Vec<u8>, String> {
        let mut out = self.raw.clone();
        for &(name, shift) in shifts {
            let structs: Vec<&Type> = self
                .named(name)
                .into_iter()
                .filter(|t| t.kind == KIND_STRUCT)
                .collect();
            if structs.is_empty() {
                return Err(format!("no struct `{name}` to shift"));
            }
            let bits = shift * 8;
            for t in structs {
                put_u32(&mut out, t.pos + 8, t.size_or_type + shift);
                for m in &t.members {
                    let moved = m.bit_offset + bits;
                    let word = if t.kind_flag {
                        if moved > 0x00ff_ffff {
                            return Err(format!(
                                "struct {name}: bit offset {moved} does not fit a bitfield offset"
                            ));
                        }
                        (m.bitfield_size << 24) | moved
                    } else {
                        moved
                    };
                    put_u32(&mut out, m.offset_pos, word);
                }
            }
        }
        Ok(out)
    }

    /// The raw bytes of one type record (for comparing two BTFs record by record).
    pub fn record(&self, id: u32) -> &[u8] {
        let t = &self.types[id as usize];
        &self.raw[t.pos..t.pos + t.len]
    }
}

/// `task_struct___old` → `task_struct`: CO-RE ignores everything from a triple underscore.
pub fn flavorless(name: &str) -> &str {
    name.split_once("___").map_or(name, |(base, _)| base)
}

/// Outside CI a missing prerequisite skips the test with a loud line; in CI (`CI` set) it
/// fails, so a test that proves nothing can never pass silently there.
pub fn skip_unless_ci(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but {what}: this test must run in CI");
    }
    eprintln!("\n!!!!! SKIPPED: {what} !!!!!\n");
}

/// The compiled probe object.
pub fn probe_object() -> &'static [u8] {
    falco_learn_probe::PROBE_OBJECT
}

/// The bytes of an ELF section of `obj`.
pub fn elf_section<'a>(obj: &'a [u8], name: &str) -> Result<&'a [u8], String> {
    use object::{Object as _, ObjectSection as _};
    let file = object::File::parse(obj).map_err(|e| format!("probe object is not ELF: {e}"))?;
    let section = file
        .section_by_name(name)
        .ok_or_else(|| format!("probe object has no {name} section"))?;
    section
        .data()
        .map_err(|e| format!("probe object: cannot read {name}: {e}"))
}
