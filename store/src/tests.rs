use super::*;
use falco_learn_event::{Container, Event, EventType, EventTypeField, Fd, FdType, L4Proto};
use falco_learn_profiler::{Learner, Limits};

fn img() -> ImageRef {
    ImageRef::new("docker.io/library/nginx", "1.27")
}

fn ev(t: EventType, ts: u64) -> Event {
    Event {
        ts,
        typ: EventTypeField(t),
        container: Container {
            id: "c1".into(),
            image_repository: "docker.io/library/nginx".into(),
            image_tag: "1.27".into(),
            ..Container::default()
        }
        .into(),
        ..Event::default()
    }
}

fn exec(path: &str, ts: u64) -> Event {
    let mut e = ev(EventType::Execve, ts);
    std::sync::Arc::make_mut(&mut e.process).exepath = path.into();
    e
}

fn write(path: &str, ts: u64) -> Event {
    let mut e = ev(EventType::Openat, ts);
    e.res = 3;
    e.fd = Some(Fd {
        num: 3,
        name: path.into(),
        ..Fd::default()
    });
    e.args = falco_learn_event::Args::Open {
        name: path.into(),
        flags: 0o101,
        mode: 0o644,
        dirfd: -100,
    };
    e
}

fn connect(ip: &str, port: u16, ts: u64) -> Event {
    let mut e = ev(EventType::Connect, ts);
    e.fd = Some(Fd {
        typ: FdType::Ipv4,
        l4proto: L4Proto::Tcp,
        sip: Some(ip.parse().expect("ip")),
        sport: Some(port),
        ..Fd::default()
    });
    e
}

/// An accepted connection on `port` (the server's side).
fn accept(port: u16, ts: u64) -> Event {
    let mut e = ev(EventType::Accept4, ts);
    e.res = 5;
    e.fd = Some(Fd {
        typ: FdType::Ipv4,
        l4proto: L4Proto::Tcp,
        cip: Some("198.51.100.20".parse().expect("ip")),
        cport: Some(40000 + port),
        sip: Some("192.0.2.10".parse().expect("ip")),
        sport: Some(port),
        is_client: false,
        bound: Some(true),
        ..Fd::default()
    });
    e
}

fn window(consumed: u64) -> WindowState {
    WindowState {
        id: "learn nginx from t.jsonl".into(),
        image: "nginx".into(),
        source: "t.jsonl".into(),
        consumed,
        ..WindowState::default()
    }
}

#[test]
fn checkpoints_reassemble_the_learned_profile() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let limits = Limits {
        file_dir_threshold: 2,
        ..Limits::default()
    };
    let mut l = Learner::new(limits, None).expect("limits");
    let evs = [
        exec("/usr/sbin/nginx", 1),
        write("/var/cache/nginx/a", 2),
        write("/var/cache/nginx/b", 3),
        connect("10.96.0.10", 53, 4),
        write("/var/cache/nginx/c", 5), // collapses a, b, c into /var/cache/nginx/**
        write("/var/log/nginx/access.log", 6),
        // globs: a volatile name and a /proc/<pid> write
        write("/etc/nginx/conf.d/sedAbC123", 7),
        write("/etc/nginx/conf.d/sedXyZ789", 8),
        write("/proc/42/oom_score_adj", 9),
        // inbound (the dims tree)
        accept(80, 10),
        accept(443, 11),
        accept(80, 12),
    ];
    for (i, e) in evs.iter().enumerate() {
        l.observe(e);
        // checkpoint after every event: incremental writes and removals
        let ch = l.take_changes();
        store
            .checkpoint(l.profiles(), &ch, Some(&window(i as u64 + 1)))
            .expect("checkpoint");
        assert_eq!(
            store.profile(&img()).expect("read").as_ref(),
            l.profile(&img()),
            "after event {i}"
        );
    }
    store.flush().expect("flush");
    let p = store.profile(&img()).expect("read").expect("present");
    assert_eq!(
        p.write_dirs.keys().collect::<Vec<_>>(),
        vec!["/var/cache/nginx"]
    );
    assert_eq!(store.images().expect("images"), vec![img()]);
    assert_eq!(
        store.containers().expect("containers"),
        vec![(img(), "c1".to_string())]
    );
    assert_eq!(p.write_globs.len(), 2, "{:?}", p.write_globs);
    assert_eq!(
        store.window("learn nginx from t.jsonl").expect("w"),
        Some(window(12))
    );
    assert_eq!(
        p.inbound.as_ref().map(|m| m.len()),
        Some(2),
        "{:?}",
        p.inbound
    );
    drop(store);
    // reopen: same content
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.profile(&img()).expect("read").as_ref(),
        l.profile(&img())
    );
}

/// A profile header written before the dims tree existed (no `dims`): the
/// profile was learned without inbound, which stays not learned.
#[test]
fn headers_without_dims_read_inbound_as_not_learned() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let mut p = Profile::new(img());
    p.learn_exec("/usr/sbin/nginx", false, 1);
    store.put_profile(&p).expect("put");
    let back = store.profile(&img()).expect("read").expect("present");
    assert_eq!(back.inbound, Some(Default::default()));
    // the same header as an older falco-learn wrote it
    let mut h = header_of(&p);
    h.dims.clear();
    let mut json = serde_json::to_value(&h).expect("json");
    if let Some(o) = json.as_object_mut() {
        o.remove("dims");
    }
    store
        .profiles
        .insert(
            &image_prefix(&img()),
            &serde_json::from_value::<HeaderV1>(json).expect("reads"),
        )
        .expect("insert");
    let old = store.profile(&img()).expect("read").expect("present");
    assert_eq!(old.inbound, None);
    assert_eq!(old.exec, p.exec);
}

#[test]
fn put_replace_and_remove() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let l = Limits::default();
    let mut p = Profile::new(img());
    p.learn_exec("/usr/sbin/nginx", false, 1);
    p.learn_write("/var/log/nginx/error.log", 1, &l);
    p.learn_write("/tmp/hsperfdata_root/12345", 1, &l);
    assert_eq!(p.write_globs.len(), 1);
    store.put_profile(&p).expect("put");
    assert_eq!(store.profile(&img()).expect("r"), Some(p.clone()));
    let mut q = Profile::new(img());
    q.learn_exec("/usr/bin/dash", false, 2);
    store.put_profile(&q).expect("replace");
    assert_eq!(store.profile(&img()).expect("r"), Some(q));
    assert!(store.remove_profile(&img()).expect("rm"));
    assert_eq!(store.profile(&img()).expect("r"), None);
    assert!(!store.remove_profile(&img()).expect("rm again"));
}

/// Where an exec ran from (`other_root`, `host_root`) is kept, and a record with neither
/// does not carry the keys. Whether it lived on another filesystem than the root's is
/// always written (it must tell a new record from an earlier falco-learn's): a record
/// without the key is read as allowed from either, as it ran before.
#[test]
fn exec_roots_are_kept_and_absent_when_false() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let mut p = Profile::new(img());
    for (path, other, host) in [
        ("/usr/sbin/nginx", false, false),
        ("/usr/bin/env", true, false),
        ("/usr/bin/nsenter", false, true),
    ] {
        p.learn_exec(path, false, 1);
        if let Some(e) = p.exec.get_mut(path) {
            e.other_root = other;
            e.host_root = host;
        }
    }
    store.put_profile(&p).expect("put");
    assert_eq!(store.profile(&img()).expect("r"), Some(p.clone()));
    let plain = serde_json::to_string(&ExecV1::from(&p.exec["/usr/sbin/nginx"])).expect("json");
    assert!(
        !plain.contains("other_root") && !plain.contains("host_root"),
        "{plain}"
    );
    let host = serde_json::to_string(&ExecV1::from(&p.exec["/usr/bin/nsenter"])).expect("json");
    assert!(
        host.contains("\"host_root\":true") && !host.contains("other_root"),
        "{host}"
    );
    assert!(plain.contains("\"other_fs\":false"), "{plain}");
    let old = plain.replace(",\"other_fs\":false", "");
    assert!(!old.contains("other_fs"), "{old}");
    let read: ExecV1 = serde_json::from_str(&old).expect("an earlier record");
    assert!(ExecEntry::from(read).other_fs);
}

#[test]
fn errors_name_tree_and_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let mut p = Profile::new(img());
    p.learn_exec("/usr/sbin/nginx", false, 1);
    store.put_profile(&p).expect("put");
    // a value written by a future schema
    store
        .exec
        .tree()
        .insert(entry_key(&img(), b"/usr/sbin/nginx"), vec![9u8, b'{', b'}'])
        .expect("raw insert");
    let err = store.profile(&img()).expect_err("schema").to_string();
    assert_eq!(
        err,
        "store tree 'exec', key 'docker.io/library/nginx|1.27|/usr/sbin/nginx': schema version 9 is not supported (this falco-learn reads 1)"
    );
    store
        .exec
        .tree()
        .insert(entry_key(&img(), b"/usr/sbin/nginx"), vec![1u8, b'{'])
        .expect("raw insert");
    let err = store.profile(&img()).expect_err("json").to_string();
    assert!(
        err.starts_with("store tree 'exec', key 'docker.io/library/nginx|1.27|/usr/sbin/nginx': cannot decode value:"),
        "{err}"
    );
    // a second process cannot open a store in use
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    let err = match Store::open(dir.path()) {
        Ok(_) => panic!("second open succeeded"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with(&format!(
            "store {} is in use by another falco-learn process (still locked after ",
            dir.path().display()
        )),
        "{err}"
    );
    drop(store);
}

#[test]
fn export_import_round_trip() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(&dir.path().join("db")).expect("open");
    let mut a = Profile::new(img());
    a.learn_exec("/usr/sbin/nginx", false, 1);
    let mut b = Profile::new(ImageRef::new("localhost/nginx", "latest"));
    b.learn_exec("/usr/sbin/nginx", false, 2);
    let c = Profile::new(ImageRef::new("docker.io/library/redis", ""));
    for p in [&a, &b, &c] {
        store.put_profile(p).expect("put");
    }
    let out = dir.path().join("profiles");
    let files = store.export(&out, None).expect("export");
    let names: Vec<String> = files
        .iter()
        .map(|(_, p)| {
            p.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        names,
        vec!["nginx_1.27.yaml", "redis.yaml", "nginx.yaml"],
        "sorted by image; short names while unique"
    );
    let first: Vec<String> = files
        .iter()
        .map(|(_, p)| std::fs::read_to_string(p).expect("read"))
        .collect();
    // export again: byte-identical
    store.export(&out, None).expect("export again");
    for ((_, p), text) in files.iter().zip(&first) {
        assert_eq!(&std::fs::read_to_string(p).expect("read"), text);
    }
    // import into a fresh store: same profiles
    let store2 = Store::open(&dir.path().join("db2")).expect("open");
    let paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
    store2.import(&paths).expect("import");
    assert_eq!(
        store2.profiles().expect("all"),
        store.profiles().expect("all")
    );
    // a bad file stores nothing and names file, line and key
    std::fs::write(
        out.join("bad.yaml"),
        first[0].replace("  - { path: /usr/sbin/nginx", "  - { pat: /usr/sbin/nginx"),
    )
    .expect("w");
    let store3 = Store::open(&dir.path().join("db3")).expect("open");
    let err = store3
        .import(&[paths[1].clone(), out.join("bad.yaml")])
        .expect_err("bad")
        .to_string();
    let line = first[0]
        .lines()
        .position(|l| l.contains("path: /usr/sbin/nginx"))
        .expect("l")
        + 1;
    assert!(
        err.starts_with(&format!("{}:{line}:", out.join("bad.yaml").display())),
        "{err}"
    );
    assert!(err.contains("unknown field `pat`"), "{err}");
    assert!(
        store3.images().expect("images").is_empty(),
        "nothing stored"
    );
}

#[test]
fn stems_disambiguate_collisions() {
    let a = ImageRef::new("docker.io/library/nginx", "latest");
    let b = ImageRef::new("localhost/nginx", "");
    let c = ImageRef::new("docker.io/library/redis", "7");
    let s = export_stems([&a, &b, &c]);
    assert_eq!(s[&a], "docker.io_library_nginx_latest");
    assert_eq!(s[&b], "localhost_nginx");
    assert_eq!(s[&c], "redis_7");
}

fn stored_nginx(dir: &Path) -> Profile {
    let store = Store::open(dir).expect("open");
    let mut p = Profile::new(img());
    p.learn_exec("/usr/sbin/nginx", false, 1);
    store.put_profile(&p).expect("put");
    store.flush().expect("flush");
    p
}

/// The issue's reproduction, without a full disk: an open that dies before
/// sled renames its snapshot leaves `snap.<lsn>.generating`; sled alone then
/// refuses the store forever ("Read corrupted data"). Opening removes it and
/// says so; everything stored is there.
#[test]
fn an_unfinished_snapshot_is_removed_before_open() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = stored_nginx(dir.path());
    // the 0-byte file ENOSPC or a kill leaves, named after a later log position
    let stale = dir.path().join("snap.00000000FFFFFFFF.generating");
    std::fs::write(&stale, b"").expect("write");
    // the dropped store's flusher thread may hold sled's lock file a moment longer (CI, under
    // load, hit more than 10 s)
    let open_alone = || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match sled::Config::new().path(dir.path()).open() {
                Err(e) if crate::sled_lock_held(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => return r,
            }
        }
    };
    match open_alone() {
        Err(sled::Error::Corruption { .. }) => {}
        Err(e) => panic!("sled alone: unexpected error {e}"),
        Ok(_) => panic!("sled alone opened a store with a 0-byte snapshot"),
    }
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(
        store.notes(),
        [format!(
            "store {}: removed snap.00000000FFFFFFFF.generating: an unfinished snapshot left by \
             an interrupted command (never valid)",
            dir.path().display()
        )]
    );
    assert!(!stale.exists());
    assert_eq!(store.profile(&img()).expect("read"), Some(p));
}

/// A store in use is never cleaned: its `.generating` may be the snapshot
/// its holder is writing right now.
#[test]
fn a_store_in_use_is_not_cleaned() {
    let dir = tempfile::tempdir().expect("tmp");
    stored_nginx(dir.path());
    let holder = Store::open(dir.path()).expect("open");
    let busy = dir.path().join("snap.00000000FFFFFFFF.generating");
    std::fs::write(&busy, b"").expect("write");
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Locked { .. })
    ));
    assert!(busy.exists(), "removed under a live holder");
    drop(holder);
    std::fs::remove_file(&busy).expect("rm");
}

/// sled writes `conf` (twice, no fsync) only when it creates a store, before
/// `db` has anything: a kill in between leaves a torn `conf` that sled
/// refuses. With nothing stored yet, it is removed and written again.
#[test]
fn a_torn_conf_of_a_new_store_is_written_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let store_dir = dir.path().join("store");
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&store_dir)
        .expect("mkdir");
    std::fs::write(
        store_dir.join("conf"),
        "segment_size: 524288\nuse_compression: f",
    )
    .expect("w");
    std::fs::write(store_dir.join("db"), b"").expect("w");
    assert!(
        sled::Config::new().path(&store_dir).open().is_err(),
        "sled alone refuses a torn conf"
    );
    let store = Store::open(&store_dir).expect("open");
    assert_eq!(
        store.notes(),
        [format!(
            "store {}: removed conf: written when the store was created, which was interrupted \
             before anything was stored",
            store_dir.display()
        )]
    );
    let mut p = Profile::new(img());
    p.learn_exec("/usr/sbin/nginx", false, 1);
    store.put_profile(&p).expect("put");
    assert_eq!(store.profile(&img()).expect("read"), Some(p));
}

#[test]
fn modes_and_directories_that_are_not_stores() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
    let dir = tempfile::tempdir().expect("tmp");
    // new: 0700, missing parents made too; files inside 0600
    let new = dir.path().join("a/b/store");
    let store = Store::open(&new).expect("open");
    store.flush().expect("flush");
    assert_eq!(mode(&new), 0o700);
    for e in std::fs::read_dir(&new).expect("ls").flatten() {
        let want = if e.path().is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&e.path()), want, "{}", e.path().display());
    }
    assert!(store.notes().is_empty(), "{:?}", store.notes());
    drop(store);
    // an existing store readable by others is tightened, and says so
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let store = Store::open(&new).expect("open");
    assert_eq!(mode(&new), 0o700);
    assert_eq!(
        store.notes(),
        [format!(
            "store {}: mode was 0755, now 0700 (it holds the behaviour of every container learned)",
            new.display()
        )]
    );
    drop(store);
    // a directory holding other things is not made a store (nor chmod-ed)
    let other = dir.path().join("home");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for f in ["notes.txt", "a.yaml", "b", "c", "d", "e"] {
        std::fs::write(other.join(f), "x").expect("w");
    }
    let err = Store::open(&other).err().expect("refused").to_string();
    assert_eq!(
        err,
        format!(
            "{} cannot be a store: it holds files a store does not (a.yaml, b, c, d, e and 1 \
             more); name a new or empty directory with --store",
            other.display()
        )
    );
    assert_eq!(mode(&other), 0o755);
    assert!(!other.join("db").exists());
    let file = other.join("notes.txt");
    let err = Store::open(&file).err().expect("refused").to_string();
    assert_eq!(
        err,
        format!(
            "{} cannot be a store: it is not a directory; name a new or empty directory with \
             --store",
            file.display()
        )
    );
    // reading a store that does not exist creates nothing
    let missing = dir.path().join("nowhere");
    let err = Store::open_existing(&missing)
        .err()
        .expect("missing")
        .to_string();
    assert_eq!(
        err,
        format!(
            "no store at {} (nothing was learned into it; check --store or FALCO_LEARN_STORE)",
            missing.display()
        )
    );
    assert!(!missing.exists());
}

#[test]
fn a_full_disk_says_so() {
    let enospc = sled::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC));
    assert_eq!(
        sled_error("/var/lib/falco-learn/store", "exec", "k".into(), enospc).to_string(),
        "the store's disk is full (/var/lib/falco-learn/store: no space left while writing tree \
         'exec', key 'k'): free space there and run the command again; nothing stored so far is \
         lost"
    );
    // as sled hands it on from its flusher thread: the kind survives, the code does not
    let cloned = sled::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC)).clone();
    assert!(disk::sled_disk_full(&cloned));
    let other = sled::Error::Io(std::io::Error::from_raw_os_error(libc::EIO));
    assert!(!disk::sled_disk_full(&other));
}

/// Windows written before the recording checksum existed still read.
#[test]
fn windows_without_a_checksum_still_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let old = br#"{"id":"w","image":"nginx","source":"/r.jsonl","duration_ns":0,"elapsed_ns":5,"consumed":3,"offset":99,"first_ts":1,"started_wall":2,"done":true,"flagged_procs":[]}"#;
    let mut v = vec![STORE_SCHEMA];
    v.extend_from_slice(old);
    store.windows.tree().insert(b"w", v).expect("raw insert");
    let w = store.window("w").expect("read").expect("present");
    assert_eq!((w.crc, w.ended_by_duration, w.offset), (None, false, 99));
}
