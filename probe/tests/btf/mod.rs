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
    hdr_len: usize,
    type_start: usize,
    type_end: usize,
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
            hdr_len,
            type_start,
            type_end,
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

    /// The id the first type appended by [`Btf::with_changes`] gets.
    pub fn next_id(&self) -> u32 {
        self.types.len() as u32
    }

    /// The direct (not anonymous-nested) member `name` of the struct/union `container`, with
    /// its index; an error when there is none or more than one.
    pub fn direct_member(&self, container: u32, name: &str) -> Result<(usize, &Member), String> {
        let t = self.get(container)?;
        if t.kind != KIND_STRUCT && t.kind != KIND_UNION {
            return Err(format!(
                "BTF type [{container}] {} is not a struct or union (kind {})",
                self.type_name(container),
                t.kind
            ));
        }
        let mut found = None;
        for (i, m) in t.members.iter().enumerate() {
            if self.name(m.name_off)? == name {
                if found.is_some() {
                    return Err(format!(
                        "BTF type [{container}] {} has two members named `{name}`",
                        self.type_name(container)
                    ));
                }
                found = Some((i, m));
            }
        }
        found.ok_or_else(|| {
            format!(
                "BTF type [{container}] {} has no direct member `{name}`",
                self.type_name(container)
            )
        })
    }

    /// A copy of this BTF in which members of the struct/union `container` get new names and
    /// types, offsets kept: `(old member, new name, new type id)`. See [`Btf::with_changes`].
    pub fn with_members_replaced(
        &self,
        container: u32,
        replacements: &[(&str, &str, u32)],
    ) -> Result<Vec<u8>, String> {
        let changes: Vec<Change> = replacements
            .iter()
            .map(|&(member, name, typ)| Change::ReplaceMember {
                container,
                member,
                name,
                typ,
            })
            .collect();
        self.with_changes(&changes)
    }

    /// A copy of this BTF with `changes` applied, for synthesizing another kernel's layout.
    ///
    /// Every type keeps its id (records are edited in place, members removed from their own
    /// record, new types appended after the last one, numbered from [`Btf::next_id`] in the
    /// order given); new names are appended to the string section, so every existing string
    /// offset stays valid; the header's section offsets and lengths are rewritten to match.
    /// A member may be changed once; a change that names a missing type or member, a type id
    /// out of range (appended ones included) or a bitfield member is an error.
    pub fn with_changes(&self, changes: &[Change]) -> Result<Vec<u8>, String> {
        let appended = changes
            .iter()
            .filter(|c| matches!(c, Change::AppendArray { .. }))
            .count() as u32;
        let known = |id: u32, what: &str| -> Result<(), String> {
            if id == 0 || id >= self.next_id() + appended {
                Err(format!(
                    "{what}: type id {id} is neither in the BTF (1..{}) nor appended",
                    self.next_id()
                ))
            } else {
                Ok(())
            }
        };
        let mut strings: Vec<u8> = Vec::new();
        let mut add_string = |s: &str| -> Result<u32, String> {
            if s.is_empty() || s.contains('\0') {
                return Err(format!("new BTF name {s:?} is empty or contains NUL"));
            }
            let off = u32::try_from(self.str_len + strings.len())
                .map_err(|_| "BTF string section too large".to_string())?;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            Ok(off)
        };
        // (position in raw, bytes replaced, new bytes), applied to the type section.
        let mut patches: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        let mut touched: Vec<(u32, usize)> = Vec::new();
        let mut removed: HashMap<u32, u32> = HashMap::new();
        let mut member = |container: u32, name: &str| -> Result<(usize, Member), String> {
            let (i, m) = self.direct_member(container, name)?;
            if m.bitfield_size != 0 {
                return Err(format!(
                    "{}.{name} is a bitfield: not supported",
                    self.type_name(container)
                ));
            }
            if touched.contains(&(container, i)) {
                return Err(format!(
                    "{}.{name} is changed twice",
                    self.type_name(container)
                ));
            }
            touched.push((container, i));
            Ok((i, m.clone()))
        };
        for change in changes {
            match *change {
                Change::ReplaceMember {
                    container,
                    member: old,
                    name,
                    typ,
                } => {
                    let (_, m) = member(container, old)?;
                    known(
                        typ,
                        &format!("new type of {}.{old}", self.type_name(container)),
                    )?;
                    let offset_word = u32_at(&self.raw, m.offset_pos)?;
                    let mut record = Vec::with_capacity(12);
                    record.extend_from_slice(&add_string(name)?.to_le_bytes());
                    record.extend_from_slice(&typ.to_le_bytes());
                    record.extend_from_slice(&offset_word.to_le_bytes());
                    patches.push((m.offset_pos - 8, 12, record));
                }
                Change::RemoveMember {
                    container,
                    member: old,
                } => {
                    let (_, m) = member(container, old)?;
                    patches.push((m.offset_pos - 8, 12, Vec::new()));
                    *removed.entry(container).or_default() += 1;
                }
                Change::Rename { id, name } => {
                    known(id, "renamed type")?;
                    let t = self.get(id)?;
                    patches.push((t.pos, 4, add_string(name)?.to_le_bytes().to_vec()));
                }
                Change::AppendArray { elem, index, n } => {
                    known(elem, "array element")?;
                    known(index, "array index")?;
                    let mut record = Vec::with_capacity(TYPE_HEADER + 12);
                    for word in [0, KIND_ARRAY << 24, 0, elem, index, n] {
                        record.extend_from_slice(&word.to_le_bytes());
                    }
                    patches.push((self.type_end, 0, record));
                }
            }
        }
        for (&id, &n) in &removed {
            let t = self.get(id)?;
            let info = u32_at(&self.raw, t.pos + 4)?;
            let vlen = (info & 0xffff) - n;
            patches.push((
                t.pos + 4,
                4,
                ((info & !0xffff) | vlen).to_le_bytes().to_vec(),
            ));
        }
        // Stable: appended records keep their order.
        patches.sort_by_key(|p| p.0);
        let mut types = Vec::with_capacity(self.type_end - self.type_start + 64);
        let mut cursor = self.type_start;
        for (pos, len, bytes) in &patches {
            if *pos < cursor {
                return Err(format!("two changes overlap at byte {pos} of the BTF"));
            }
            types.extend_from_slice(&self.raw[cursor..*pos]);
            types.extend_from_slice(bytes);
            cursor = pos + len;
        }
        types.extend_from_slice(&self.raw[cursor..self.type_end]);
        let mut string_section = self.raw[self.str_start..self.str_start + self.str_len].to_vec();
        string_section.extend_from_slice(&strings);
        self.with_sections(types, string_section)
    }

    /// The blob with its type and string sections replaced (same order in the file, anything
    /// else kept), the header's offsets and lengths fixed.
    fn with_sections(&self, types: Vec<u8>, strings: Vec<u8>) -> Result<Vec<u8>, String> {
        // (start, end, new bytes, header field of the offset; the length follows it)
        let mut sections = [
            (self.type_start, self.type_end, types, 8),
            (self.str_start, self.str_start + self.str_len, strings, 16),
        ];
        sections.sort_by_key(|s| s.0);
        let mut out = self.raw[..self.hdr_len].to_vec();
        let mut cursor = self.hdr_len;
        for (start, end, bytes, field) in sections {
            if start < cursor {
                return Err("the BTF's type and string sections overlap".to_string());
            }
            out.extend_from_slice(&self.raw[cursor..start]);
            let off =
                u32::try_from(out.len() - self.hdr_len).map_err(|_| "BTF too large".to_string())?;
            let len =
                u32::try_from(bytes.len()).map_err(|_| "BTF section too large".to_string())?;
            put_u32(&mut out, field, off);
            put_u32(&mut out, field + 4, len);
            out.extend_from_slice(&bytes);
            cursor = end;
        }
        out.extend_from_slice(&self.raw[cursor..]);
        Ok(out)
    }

    /// The raw bytes of one type record (for comparing two BTFs record by record).
    pub fn record(&self, id: u32) -> &[u8] {
        let t = &self.types[id as usize];
        &self.raw[t.pos..t.pos + t.len]
    }
}

/// One edit for [`Btf::with_changes`].
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// The direct member `member` of the struct/union `container` is renamed `name` and
    /// retyped `typ`, at the same offset.
    ReplaceMember {
        container: u32,
        member: &'a str,
        name: &'a str,
        typ: u32,
    },
    /// The direct member `member` of `container` is dropped (the others keep their offsets,
    /// the struct its size).
    RemoveMember { container: u32, member: &'a str },
    /// Type `id` is named `name` (an anonymous struct gets a tag, say).
    Rename { id: u32, name: &'a str },
    /// A new anonymous ARRAY type `elem[n]` with index type `index` is appended.
    AppendArray { elem: u32, index: u32, n: u32 },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian BTF blob of `records` (words; type ids from 1) and `strings`.
    fn blob(records: &[&[u32]], strings: &[u8]) -> Vec<u8> {
        let types: Vec<u8> = records
            .iter()
            .flat_map(|r| r.iter().flat_map(|w| w.to_le_bytes()))
            .collect();
        let mut out = vec![0x9f, 0xeb, 1, 0];
        for word in [
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&types);
        out.extend_from_slice(strings);
        out
    }

    /// `[1] int` (4 bytes) and `[2] struct s { int a; int b; int c; }`.
    fn sample() -> Btf {
        let strings = b"\0int\0s\0a\0b\0c\0";
        let int: &[u32] = &[1, KIND_INT << 24, 4, 32];
        let s: &[u32] = &[5, (KIND_STRUCT << 24) | 3, 12, 7, 1, 0, 9, 1, 32, 11, 1, 64];
        Btf::parse(&blob(&[int, s], strings)).expect("the sample BTF parses")
    }

    #[test]
    fn the_editor_renames_retypes_removes_and_appends() {
        let btf = sample();
        let array = btf.next_id();
        let out = btf
            .with_changes(&[
                Change::ReplaceMember {
                    container: 2,
                    member: "a",
                    name: "x",
                    typ: array,
                },
                Change::RemoveMember {
                    container: 2,
                    member: "c",
                },
                Change::Rename { id: 2, name: "s2" },
                Change::AppendArray {
                    elem: 1,
                    index: 1,
                    n: 2,
                },
            ])
            .expect("the changes apply");
        let edited = Btf::parse(&out).expect("the edited BTF parses back");
        assert_eq!(edited.types.len(), 4, "one type appended");
        assert_eq!(edited.type_name(1), "int", "old names keep their offsets");
        assert_eq!(edited.type_name(2), "s2");
        assert_eq!(edited.types[2].vlen, 2, "one member removed");
        assert_eq!(edited.size_of(2), Ok(12), "the struct keeps its size");
        let (i, x) = edited.direct_member(2, "x").expect("the renamed member");
        assert_eq!((i, x.typ, x.bit_offset), (0, array, 0));
        assert_eq!(edited.size_of(array), Ok(8), "int[2]");
        let b = edited
            .find_member(2, "b")
            .expect("lookup")
            .expect("b is kept");
        assert_eq!(b.bit_offset, 32);
        assert!(edited.direct_member(2, "a").is_err(), "a is renamed");
        assert!(edited.direct_member(2, "c").is_err(), "c is removed");
        assert_eq!(
            edited.str_len,
            btf.str_len + "x\0s2\0".len(),
            "the header's string length"
        );

        let out = btf
            .with_members_replaced(2, &[("b", "y", 1)])
            .expect("the replacement applies");
        let edited = Btf::parse(&out).expect("the edited BTF parses back");
        let y = edited.find_member(2, "y").expect("lookup").expect("y");
        assert_eq!((y.bit_offset, y.typ), (32, 1));
        assert!(edited.find_member(2, "b").expect("lookup").is_none());
    }

    #[test]
    fn the_editor_refuses_what_it_cannot_do() {
        let btf = sample();
        let err = |changes: &[Change]| btf.with_changes(changes).expect_err("an error");
        assert!(err(&[Change::RemoveMember {
            container: 2,
            member: "z"
        }])
        .contains("no direct member `z`"));
        assert!(err(&[
            Change::RemoveMember {
                container: 2,
                member: "a"
            },
            Change::RemoveMember {
                container: 2,
                member: "a"
            }
        ])
        .contains("changed twice"));
        assert!(err(&[Change::ReplaceMember {
            container: 2,
            member: "a",
            name: "x",
            typ: 3
        }])
        .contains("neither in the BTF"));
        assert!(err(&[Change::RemoveMember {
            container: 1,
            member: "a"
        }])
        .contains("not a struct or union"));
    }
}
