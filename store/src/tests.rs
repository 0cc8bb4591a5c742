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
        },
        ..Event::default()
    }
}

fn exec(path: &str, ts: u64) -> Event {
    let mut e = ev(EventType::Execve, ts);
    e.process.exepath = path.into();
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
    assert_eq!(
        store.window("learn nginx from t.jsonl").expect("w"),
        Some(window(6))
    );
    drop(store);
    // reopen: same content
    let store = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        store.profile(&img()).expect("read").as_ref(),
        l.profile(&img())
    );
}

#[test]
fn put_replace_and_remove() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let l = Limits::default();
    let mut p = Profile::new(img());
    p.learn_exec("/usr/sbin/nginx", false, 1);
    p.learn_write("/var/log/nginx/error.log", 1, &l);
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
