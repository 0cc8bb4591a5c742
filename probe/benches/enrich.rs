//! Userspace cost of the probe: decode + enrich of ring-buffer records, no kernel
//! involved (`cargo bench -p falco-learn-probe`). Prints records/s for the record
//! kinds that dominate real traffic.

use bytemuck::Zeroable;
use falco_learn_probe::decode::decode;
use falco_learn_probe::enrich::Enricher;
use falco_learn_probe::proctable::{ProcInfo, ProcessTable};
use falco_learn_probe_common as abi;
use std::time::Instant;

fn hdr(kind: abi::Kind, size: usize, pid: u32) -> abi::Hdr {
    let mut h = abi::Hdr::zeroed();
    h.kind = kind as u32;
    h.size = size as u32;
    h.pid = pid;
    h.tid = pid;
    h.ppid = pid - 1;
    h.res = 3;
    h.comm[..6].copy_from_slice(b"worker");
    h
}

fn table() -> ProcessTable {
    let mut t = ProcessTable::new(vec![], 0);
    // a 12-deep chain with realistic command lines
    for i in 0..12u32 {
        t.insert(ProcInfo {
            pid: 1000 + i,
            ppid: if i == 0 { 1 } else { 999 + i },
            comm: format!("proc{i}"),
            exe: format!("/usr/bin/proc{i}"),
            exepath: format!("/usr/bin/proc{i}"),
            args: vec!["--flag".into(), "value".into(), format!("arg{i}")],
            cwd: "/srv".into(),
            ..Default::default()
        });
    }
    t
}

fn open_record(pid: u32) -> Vec<u8> {
    let path = b"/var/log/nginx/access.log";
    let mut e = abi::Open::zeroed();
    e.lens = [path.len() as u16, 0];
    e.flags = 0o1101;
    e.h = hdr(
        abi::Kind::Openat,
        std::mem::size_of::<abi::Open>() + path.len(),
        pid,
    );
    let mut v = bytemuck::bytes_of(&e).to_vec();
    v.extend_from_slice(path);
    v
}

fn connect_record(pid: u32) -> Vec<u8> {
    let mut n = abi::Net::zeroed();
    n.h = hdr(abi::Kind::Connect, std::mem::size_of::<abi::Net>(), pid);
    n.addr.family = 2;
    n.addr.port = 443;
    n.addr.addr[..4].copy_from_slice(&[198, 51, 100, 10]);
    n.sock.family = 2;
    n.sock.protocol = 6;
    bytemuck::bytes_of(&n).to_vec()
}

fn main() {
    let n = 1_000_000u64;
    for (name, rec) in [
        ("openat (write)", open_record(1011)),
        ("connect", connect_record(1011)),
    ] {
        let mut en = Enricher::new(table(), 1_700_000_000_000_000_000);
        let t0 = Instant::now();
        let mut bytes = 0usize;
        for _ in 0..n {
            let raw = decode(&rec).expect("valid record");
            if let Some(ev) = en.enrich(&raw) {
                bytes += ev.ancestors.len();
                std::hint::black_box(ev);
            }
        }
        let el = t0.elapsed().as_secs_f64();
        println!(
            "decode+enrich {name:<16} {:>10.0} records/s ({:.0} ns/record, {} ancestors per event)",
            n as f64 / el,
            el * 1e9 / n as f64,
            bytes as u64 / n
        );
    }
}
