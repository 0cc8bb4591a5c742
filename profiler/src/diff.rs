//! Behaviour differences between two profiles (`falco-learn profiles diff`).
//! Counts and times are not behaviour and are not compared; images may
//! differ (comparing two tags is a common review).

pub use crate::dimension::{Change, Sign};
use crate::model::{dir_key, Dimension, Profile};
use std::collections::BTreeSet;

fn set_diff(dim: Dimension, a: BTreeSet<String>, b: BTreeSet<String>, out: &mut Vec<Change>) {
    for v in a.difference(&b) {
        out.push(Change {
            dimension: dim,
            sign: Sign::Removed,
            value: v.clone(),
        });
    }
    for v in b.difference(&a) {
        out.push(Change {
            dimension: dim,
            sign: Sign::Added,
            value: v.clone(),
        });
    }
}

/// Differences from `a` to `b`, sorted by dimension, then sign, then value.
pub fn diff(a: &Profile, b: &Profile) -> Vec<Change> {
    let mut out = Vec::new();
    let ex = |p: &Profile| p.exec.keys().cloned().collect::<BTreeSet<_>>();
    set_diff(Dimension::Exec, ex(a), ex(b), &mut out);
    for (path, ea) in &a.exec {
        if let Some(eb) = b.exec.get(path) {
            // where the file lives and which root it ran from (what enforce-kill tells
            // apart)
            for (key, x, y) in [
                ("tmpfs", ea.tmpfs, eb.tmpfs),
                ("memfd", ea.memfd, eb.memfd),
                ("upper_layer", ea.upper_layer, eb.upper_layer),
                ("other_fs", ea.other_fs, eb.other_fs),
                ("other_root", ea.other_root, eb.other_root),
                ("host_root", ea.host_root, eb.host_root),
            ] {
                if x != y {
                    out.push(Change {
                        dimension: Dimension::Exec,
                        sign: Sign::Changed,
                        value: format!("{path} {key} {x} -> {y}"),
                    });
                }
            }
            // lineage: parents added or removed
            for (sign, x, y) in [
                (Sign::Removed, &ea.parents, &eb.parents),
                (Sign::Added, &eb.parents, &ea.parents),
            ] {
                for parent in x.difference(y) {
                    out.push(Change {
                        dimension: Dimension::Exec,
                        sign,
                        value: format!("{path} from {parent}"),
                    });
                }
            }
        }
    }
    let peers = |e: &crate::model::OutboundEntry| {
        let v: Vec<String> = e.peers.iter().map(|n| n.to_string()).collect();
        format!("[{}]", v.join(", "))
    };
    let ports = |p: &Profile| {
        p.outbound
            .iter()
            .map(|((pr, po), e)| format!("{pr}/{po} {}", peers(e)))
            .collect::<BTreeSet<_>>()
    };
    let only_ports = |p: &Profile| {
        p.outbound
            .keys()
            .map(|(pr, po)| format!("{pr}/{po}"))
            .collect::<BTreeSet<_>>()
    };
    let (pa, pb) = (only_ports(a), only_ports(b));
    let added_removed: BTreeSet<String> = pa.symmetric_difference(&pb).cloned().collect();
    let keep = |s: BTreeSet<String>| {
        s.into_iter()
            .filter(|v| {
                added_removed
                    .iter()
                    .any(|k| v.starts_with(&format!("{k} ")))
            })
            .collect::<BTreeSet<_>>()
    };
    set_diff(
        Dimension::Outbound,
        keep(ports(a)),
        keep(ports(b)),
        &mut out,
    );
    for (k, ea) in &a.outbound {
        if let Some(eb) = b.outbound.get(k) {
            if ea.peers != eb.peers {
                out.push(Change {
                    dimension: Dimension::Outbound,
                    sign: Sign::Changed,
                    value: format!("{}/{} {} -> {}", k.0, k.1, peers(ea), peers(eb)),
                });
            }
        }
    }
    let wr = |p: &Profile| {
        p.write_files
            .keys()
            .cloned()
            .chain(p.write_dirs.keys().map(|d| dir_key(d)))
            .chain(p.write_globs.keys().map(|g| format!("{g} (glob)")))
            .collect::<BTreeSet<_>>()
    };
    set_diff(Dimension::FileWrite, wr(a), wr(b), &mut out);
    for d in crate::dimension::DIMS {
        d.diff(a, b, &mut out);
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImageRef, Limits, Proto};

    #[test]
    fn behaviour_differences_only() {
        let l = Limits::default();
        let img = ImageRef::new("nginx", "");
        let mut a = Profile::new(img.clone());
        a.learn_exec("/usr/sbin/nginx", false, 1);
        a.learn_exec("/bin/sh", false, 1);
        a.learn_outbound(Proto::Udp, 53, "10.0.0.1".parse().expect("ip"), 1, &l);
        a.learn_write("/var/log/nginx/error.log", 1, &l);
        let mut b = a.clone();
        b.exec.remove("/bin/sh");
        b.learn_exec("/usr/sbin/nginx", false, 9); // count only: no change
        b.learn_exec("/dev/vi", true, 2);
        b.learn_parent("/usr/sbin/nginx", "/bin/sh", false);
        // where it lives and which root it ran from are behaviour: enforce-kill tells them
        if let Some(e) = b.exec.get_mut("/usr/sbin/nginx") {
            e.other_fs = true;
            e.host_root = true;
        }
        b.learn_outbound(Proto::Udp, 53, "10.0.0.2".parse().expect("ip"), 2, &l);
        b.learn_outbound(
            Proto::Tcp,
            2222,
            "198.51.100.10".parse().expect("ip"),
            2,
            &l,
        );
        b.learn_write("/etc/passwd", 2, &l);
        let d: Vec<String> = diff(&a, &b).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            d,
            vec![
                "+ exec /dev/vi",
                "+ exec /usr/sbin/nginx from /bin/sh",
                "- exec /bin/sh",
                "~ exec /usr/sbin/nginx host_root false -> true",
                "~ exec /usr/sbin/nginx other_fs false -> true",
                "+ outbound tcp/2222 [198.51.100.10/32]",
                "~ outbound udp/53 [10.0.0.1/32] -> [10.0.0.1/32, 10.0.0.2/32]",
                "+ file_write /etc/passwd",
            ]
        );
        assert!(diff(&a, &a).is_empty());
    }
}
