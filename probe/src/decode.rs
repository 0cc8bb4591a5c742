//! Decoding of ring-buffer records into typed [`Raw`] values.
//!
//! Which struct a record is comes from the table of event kinds (`Kind::record`,
//! `probe/common/src/kind_table.rs`): one [`Raw`] variant per [`abi::Record`].
//!
//! Every malformed record yields a [`DecodeError`] naming what was wrong; the
//! decoder never panics on kernel data.

use bytemuck::Pod;
use falco_learn_probe_common as abi;

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {got} bytes is shorter than the {need}-byte {what}")]
    Short {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("record header says {declared} bytes but {got} arrived")]
    SizeMismatch { declared: u32, got: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("{what}: string lengths ({total} bytes) run past the record end ({avail} bytes left)")]
    StringsOverrun {
        what: &'static str,
        total: usize,
        avail: usize,
    },
}

/// A decoded record: the fixed struct plus its strings.
#[derive(Debug, Clone)]
pub enum Raw {
    Exec {
        e: abi::Exec,
        exepath: Vec<u8>,
        args: Vec<u8>,
        cwd: Vec<u8>,
        cgroup: Vec<u8>,
        filename: Vec<u8>,
    },
    Fork(abi::Fork),
    Exit(abi::Exit),
    Net(abi::Net),
    Open {
        e: abi::Open,
        path: Vec<u8>,
        resolved: Vec<u8>,
    },
    Socket(abi::Socket),
    Dup(abi::Dup),
    Link {
        e: abi::Link,
        p1: Vec<u8>,
        p2: Vec<u8>,
    },
    Ptrace(abi::Ptrace),
    Ia32(abi::Ia32),
    Module {
        e: abi::Module,
        uargs: Vec<u8>,
    },
}

impl Raw {
    pub fn hdr(&self) -> &abi::Hdr {
        match self {
            Raw::Exec { e, .. } => &e.h,
            Raw::Fork(e) => &e.h,
            Raw::Exit(e) => &e.h,
            Raw::Net(e) => &e.h,
            Raw::Open { e, .. } => &e.h,
            Raw::Socket(e) => &e.h,
            Raw::Dup(e) => &e.h,
            Raw::Link { e, .. } => &e.h,
            Raw::Ptrace(e) => &e.h,
            Raw::Ia32(e) => &e.h,
            Raw::Module { e, .. } => &e.h,
        }
    }

    pub fn kind(&self) -> abi::Kind {
        abi::Kind::from_u32(self.hdr().kind).unwrap_or(abi::Kind::Exec)
    }

    /// The ABI struct this record was decoded as.
    pub fn record(&self) -> abi::Record {
        match self {
            Raw::Exec { .. } => abi::Record::Exec,
            Raw::Fork(_) => abi::Record::Fork,
            Raw::Exit(_) => abi::Record::Exit,
            Raw::Net(_) => abi::Record::Net,
            Raw::Open { .. } => abi::Record::Open,
            Raw::Socket(_) => abi::Record::Socket,
            Raw::Dup(_) => abi::Record::Dup,
            Raw::Link { .. } => abi::Record::Link,
            Raw::Ptrace(_) => abi::Record::Ptrace,
            Raw::Ia32(_) => abi::Record::Ia32,
            Raw::Module { .. } => abi::Record::Module,
        }
    }
}

fn fixed<T: Pod>(buf: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    if buf.len() < need {
        return Err(DecodeError::Short {
            what,
            need,
            got: buf.len(),
        });
    }
    Ok(bytemuck::pod_read_unaligned(&buf[..need]))
}

fn strings<const N: usize>(
    buf: &[u8],
    start: usize,
    lens: [u16; N],
    what: &'static str,
) -> Result<[Vec<u8>; N], DecodeError> {
    let avail = buf.len().saturating_sub(start);
    let total: usize = lens.iter().map(|l| *l as usize).sum();
    if total > avail {
        return Err(DecodeError::StringsOverrun { what, total, avail });
    }
    let mut off = start;
    Ok(lens.map(|l| {
        let s = buf[off..off + l as usize].to_vec();
        off += l as usize;
        s
    }))
}

/// Decode one ring-buffer record.
pub fn decode(buf: &[u8]) -> Result<Raw, DecodeError> {
    let h: abi::Hdr = fixed(buf, "header")?;
    if h.size as usize != buf.len() {
        // The ring buffer rounds sizes up to 8 bytes; anything else is corruption.
        if (h.size as usize) > buf.len() || buf.len() - (h.size as usize) >= 8 {
            return Err(DecodeError::SizeMismatch {
                declared: h.size,
                got: buf.len(),
            });
        }
    }
    let buf = &buf[..(h.size as usize).min(buf.len())];
    let kind = abi::Kind::from_u32(h.kind).ok_or(DecodeError::UnknownKind(h.kind))?;
    // the table of event kinds says which ABI struct each kind is written as
    use abi::Record as R;
    Ok(match kind.record() {
        R::Exec => {
            let e: abi::Exec = fixed(buf, "exec record")?;
            let [exepath, args, cwd, cgroup, filename] =
                strings(buf, std::mem::size_of::<abi::Exec>(), e.lens, "exec record")?;
            Raw::Exec {
                e,
                exepath,
                args,
                cwd,
                cgroup,
                filename,
            }
        }
        R::Fork => Raw::Fork(fixed(buf, "fork record")?),
        R::Exit => Raw::Exit(fixed(buf, "exit record")?),
        R::Net => Raw::Net(fixed(buf, "network record")?),
        R::Open => {
            let e: abi::Open = fixed(buf, "open record")?;
            // the resolved path, when present, follows the passed path and its NUL
            let l0 = e.lens[0] as usize;
            let l1 = e.lens[1] as usize;
            let start = std::mem::size_of::<abi::Open>();
            let [path] = strings(buf, start, [e.lens[0]], "open record")?;
            let resolved = if l1 > 0 {
                let [r] = strings(buf, start + l0 + 1, [e.lens[1]], "open record")?;
                r
            } else {
                Vec::new()
            };
            Raw::Open { e, path, resolved }
        }
        R::Socket => Raw::Socket(fixed(buf, "socket record")?),
        R::Dup => Raw::Dup(fixed(buf, "dup record")?),
        R::Link => {
            let e: abi::Link = fixed(buf, "link record")?;
            let [p1, p2] = strings(buf, std::mem::size_of::<abi::Link>(), e.lens, "link record")?;
            Raw::Link { e, p1, p2 }
        }
        R::Ptrace => Raw::Ptrace(fixed(buf, "ptrace record")?),
        R::Ia32 => Raw::Ia32(fixed(buf, "ia32 syscall record")?),
        R::Module => {
            let e: abi::Module = fixed(buf, "module record")?;
            let [uargs] = strings(
                buf,
                std::mem::size_of::<abi::Module>(),
                e.lens,
                "module record",
            )?;
            Raw::Module { e, uargs }
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytemuck::Zeroable;

    pub fn hdr(kind: abi::Kind, size: usize) -> abi::Hdr {
        let mut h = abi::Hdr::zeroed();
        h.kind = kind as u32;
        h.size = size as u32;
        h.pid = 42;
        h.tid = 42;
        h.comm[..4].copy_from_slice(b"test");
        h
    }

    fn with_strings<T: Pod>(t: &T, strs: &[&[u8]]) -> Vec<u8> {
        let mut v = bytemuck::bytes_of(t).to_vec();
        for s in strs {
            v.extend_from_slice(s);
        }
        v
    }

    #[test]
    fn exec_with_strings() {
        let mut e = abi::Exec::zeroed();
        let strs: [&[u8]; 5] = [
            b"/usr/bin/true",
            b"true\0-x",
            b"/tmp",
            b"/default/web",
            b"./true",
        ];
        e.lens = strs.map(|s| s.len() as u16);
        e.h = hdr(
            abi::Kind::Exec,
            std::mem::size_of::<abi::Exec>() + strs.iter().map(|s| s.len()).sum::<usize>(),
        );
        let buf = with_strings(&e, &strs);
        match decode(&buf).unwrap() {
            Raw::Exec {
                exepath,
                args,
                cwd,
                cgroup,
                filename,
                ..
            } => {
                assert_eq!(exepath, b"/usr/bin/true");
                assert_eq!(args, b"true\0-x");
                assert_eq!(cwd, b"/tmp");
                assert_eq!(cgroup, b"/default/web");
                assert_eq!(filename, b"./true");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exec_lengths_past_end_are_an_error() {
        let mut e = abi::Exec::zeroed();
        e.lens = [100, 0, 0, 0, 0];
        e.h = hdr(abi::Kind::Exec, std::mem::size_of::<abi::Exec>() + 4);
        let buf = with_strings(&e, &[b"/bin"]);
        assert_eq!(
            decode(&buf).unwrap_err(),
            DecodeError::StringsOverrun {
                what: "exec record",
                total: 100,
                avail: 4
            }
        );
    }

    #[test]
    fn open_with_resolved_path() {
        let mut e = abi::Open::zeroed();
        e.lens = [5, 9];
        e.h = hdr(
            abi::Kind::Openat,
            std::mem::size_of::<abi::Open>() + 5 + 1 + 9,
        );
        let buf = with_strings(&e, &[b"x/../", b"\0", b"/tmp/file"]);
        match decode(&buf).unwrap() {
            Raw::Open { path, resolved, .. } => {
                assert_eq!(path, b"x/../");
                assert_eq!(resolved, b"/tmp/file");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fixed_kinds_and_errors() {
        for (kind, size) in [
            (abi::Kind::Fork, std::mem::size_of::<abi::Fork>()),
            (abi::Kind::Exit, std::mem::size_of::<abi::Exit>()),
            (abi::Kind::Connect, std::mem::size_of::<abi::Net>()),
            (abi::Kind::Socket, std::mem::size_of::<abi::Socket>()),
            (abi::Kind::Dup2, std::mem::size_of::<abi::Dup>()),
            (abi::Kind::Ptrace, std::mem::size_of::<abi::Ptrace>()),
            (abi::Kind::Ia32Syscall, std::mem::size_of::<abi::Ia32>()),
        ] {
            let mut buf = vec![0u8; size];
            buf[..std::mem::size_of::<abi::Hdr>()]
                .copy_from_slice(bytemuck::bytes_of(&hdr(kind, size)));
            let raw = decode(&buf).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(raw.kind(), kind);
            // one byte short of the struct
            let mut short = buf[..size - 1].to_vec();
            short[..std::mem::size_of::<abi::Hdr>()]
                .copy_from_slice(bytemuck::bytes_of(&hdr(kind, size - 1)));
            assert!(
                matches!(decode(&short), Err(DecodeError::Short { .. })),
                "{kind:?}"
            );
        }
        assert!(matches!(
            decode(&[0u8; 10]),
            Err(DecodeError::Short { what: "header", .. })
        ));
        let mut buf = vec![0u8; 80];
        buf[..72].copy_from_slice(bytemuck::bytes_of(&hdr(abi::Kind::Exit, 80)));
        buf[16..20].copy_from_slice(&77u32.to_ne_bytes());
        assert_eq!(decode(&buf).unwrap_err(), DecodeError::UnknownKind(77));
        buf[16..20].copy_from_slice(&3u32.to_ne_bytes());
        buf[20..24].copy_from_slice(&400u32.to_ne_bytes());
        assert!(matches!(
            decode(&buf),
            Err(DecodeError::SizeMismatch {
                declared: 400,
                got: 80
            })
        ));
    }

    #[test]
    fn link_and_module() {
        let mut e = abi::Link::zeroed();
        e.lens = [3, 4];
        e.h = hdr(abi::Kind::Symlinkat, std::mem::size_of::<abi::Link>() + 7);
        let buf = with_strings(&e, &[b"/a1", b"/b22"]);
        match decode(&buf).unwrap() {
            Raw::Link { p1, p2, .. } => {
                assert_eq!(p1, b"/a1");
                assert_eq!(p2, b"/b22");
            }
            other => panic!("{other:?}"),
        }
        let mut m = abi::Module::zeroed();
        m.lens = [3];
        m.h = hdr(
            abi::Kind::FinitModule,
            std::mem::size_of::<abi::Module>() + 3,
        );
        let buf = with_strings(&m, &[b"x=1"]);
        assert!(matches!(decode(&buf).unwrap(), Raw::Module { uargs, .. } if uargs == b"x=1"));
    }

    /// Every kind of the table has a decoder: a record of its struct's size (no strings)
    /// decodes to the `Raw` of its `Record`, keeping its kind; one byte short is refused.
    #[test]
    fn every_kind_decodes_as_its_record() {
        for k in abi::Kind::ALL {
            let size = k.record().size();
            let mut buf = vec![0u8; size];
            buf[..std::mem::size_of::<abi::Hdr>()]
                .copy_from_slice(bytemuck::bytes_of(&hdr(k, size)));
            let raw = decode(&buf).unwrap_or_else(|e| panic!("{k:?}: {e}"));
            assert_eq!(raw.record(), k.record(), "{k:?}");
            assert_eq!(raw.kind(), k);
            let short = &mut buf[..size - 1];
            short[20..24].copy_from_slice(&((size - 1) as u32).to_ne_bytes());
            assert!(
                matches!(decode(short), Err(DecodeError::Short { .. })),
                "{k:?}"
            );
        }
    }
}
