//! Container id from a cgroup path.
//!
//! Only the exact forms container runtimes create are recognised; anything else
//! (including this kind of VM's `/process_api/<hex>` memory cgroups) is the host. A path is
//! the container of its innermost component that names one: cgroups below a container's
//! (`…/docker-<id>.scope/sub`, podman's `…/libpod-<id>.scope/container`) are the container's.
//!
//! | runtime | cgroup path (naming component) | id |
//! |---|---|---|
//! | containerd / CRI (systemd driver) | `…/cri-containerd-<64hex>.scope` | hex |
//! | containerd (cgroupfs, `ctr`) | `/<namespace>/<id>` with a known containerd namespace | id |
//! | Kubernetes cgroupfs driver | `…/kubepods[/<qos>]/pod<uid>/<64hex>` | hex |
//! | CRI-O | `…/crio-<64hex>[.scope]` (not `crio-conmon-`) | hex |
//! | Docker | `…/docker-<64hex>.scope` or `/docker/<64hex>` | hex |
//! | Podman | `…/libpod-[payload-]<64hex>[.scope]` (not `libpod-conmon-`) | hex |

/// Which runtime's naming a cgroup path matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    Containerd,
    Crio,
    Docker,
    Podman,
    Kubernetes,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Containerd => "containerd",
            RuntimeKind::Crio => "cri-o",
            RuntimeKind::Docker => "docker",
            RuntimeKind::Podman => "podman",
            RuntimeKind::Kubernetes => "kubernetes",
        }
    }
}

/// A container recognised from its cgroup path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CgroupContainer {
    /// Full id as the runtime knows it (64 hex, or a `ctr` name).
    pub full_id: String,
    /// containerd namespace, for the `/<ns>/<id>` form.
    pub namespace: Option<String>,
    pub runtime: RuntimeKind,
}

impl CgroupContainer {
    /// Falco's `container.id`: the first 12 characters of a 64-hex id, other ids whole.
    pub fn short_id(&self) -> String {
        if is_hex64(&self.full_id) {
            self.full_id[..12].to_string()
        } else {
            self.full_id.clone()
        }
    }
}

/// containerd namespaces recognised in the `/<namespace>/<id>` form by default.
pub const DEFAULT_CONTAINERD_NAMESPACES: &[&str] = &["default", "k8s.io", "moby", "buildkit"];

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn strip_prefixed<'a>(leaf: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = leaf.strip_prefix(prefix)?;
    let rest = rest.strip_suffix(".scope").unwrap_or(rest);
    is_hex64(rest).then_some(rest)
}

/// Recognise a container from a cgroup path such as `/default/web` or
/// `/system.slice/docker-<64hex>.scope`. `containerd_namespaces` lists the
/// namespaces accepted in the bare `/<namespace>/<id>` form.
///
/// A cgroup below a container's (`…/docker-<id>.scope/sub`: made by the runtime, by systemd
/// in the container, or by the workload itself where its cgroup tree is writable) is that
/// container's: the innermost component that names a container decides, so a process
/// cannot leave its container's attribution (and its profile, and enforce-kill) by moving
/// into a cgroup of its own making. Where the leaf names a container this is the leaf,
/// as libsinsp matches it; nested containers (Docker in Docker, kind) are the inner ones.
pub fn container_from_cgroup(
    path: &str,
    containerd_namespaces: &[String],
) -> Option<CgroupContainer> {
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != "..")
        .collect();
    (1..=comps.len())
        .rev()
        .find_map(|n| container_of_leaf(&comps[..n], containerd_namespaces))
}

/// The container the last of `comps` (a cgroup path's components, from the top) names.
fn container_of_leaf(comps: &[&str], containerd_namespaces: &[String]) -> Option<CgroupContainer> {
    let leaf = *comps.last()?;
    let mk = |id: &str, runtime| {
        Some(CgroupContainer {
            full_id: id.to_string(),
            namespace: None,
            runtime,
        })
    };
    if let Some(id) = strip_prefixed(leaf, "cri-containerd-") {
        return mk(id, RuntimeKind::Containerd);
    }
    if !leaf.starts_with("crio-conmon-") {
        if let Some(id) = strip_prefixed(leaf, "crio-") {
            return mk(id, RuntimeKind::Crio);
        }
    }
    if let Some(id) = strip_prefixed(leaf, "docker-") {
        return mk(id, RuntimeKind::Docker);
    }
    // podman: `libpod-<id>[.scope]`, `libpod-payload-<id>[.scope]` (cgroups = split), as
    // libsinsp matches them (`/container` below either is found by the caller's walk up)
    fn podman(c: &str) -> Option<&str> {
        if c.starts_with("libpod-conmon-") {
            return None;
        }
        strip_prefixed(c, "libpod-payload-").or_else(|| strip_prefixed(c, "libpod-"))
    }
    if let Some(id) = podman(leaf) {
        return mk(id, RuntimeKind::Podman);
    }
    if comps.len() == 2 && comps[0] == "docker" && is_hex64(leaf) {
        return mk(leaf, RuntimeKind::Docker);
    }
    // Kubernetes cgroupfs driver: /kubepods[/besteffort|burstable]/pod<uid>/<64hex> (below a
    // node container's cgroup too, as kind runs it)
    if comps.len() >= 3
        && comps[..comps.len() - 2].contains(&"kubepods")
        && comps[comps.len() - 2].starts_with("pod")
        && is_hex64(leaf)
    {
        return mk(leaf, RuntimeKind::Kubernetes);
    }
    if comps.len() == 2 && containerd_namespaces.iter().any(|n| n == comps[0]) && valid_ctr_id(leaf)
    {
        return Some(CgroupContainer {
            full_id: leaf.to_string(),
            namespace: Some(comps[0].to_string()),
            runtime: RuntimeKind::Containerd,
        });
    }
    None
}

/// containerd's identifier rule: alphanumerics, `.`, `_`, `-`, starting alphanumeric, ≤ 76.
fn valid_ctr_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 76
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// Container of a process from `/proc/<pid>/cgroup` text (every hierarchy is tried).
pub fn container_from_proc_cgroup(
    text: &str,
    containerd_namespaces: &[String],
) -> Option<CgroupContainer> {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .find_map(|p| container_from_cgroup(p, containerd_namespaces))
}

/// Whether a cgroup path is container `id`'s (Falco's short id, as in `container.id`) own
/// cgroup or one below it: walking the path from the top, the first prefix that
/// [`container_from_cgroup`] recognises as a container (with `containerd_namespaces` for
/// the `/<namespace>/<id>` form) is this container. A path that names no container (a
/// service's, a slice, `/`) or names another container first (a cgroup made below another
/// container's and named like this one) is not. Components outside the reader's cgroup
/// namespace (`..`) are skipped. A shared cgroup (`/system.slice/containerd.service`, where
/// a runtime without cgroup v2 support leaves its containers on a hybrid host) is no
/// container's.
pub fn cgroup_path_is_containers(path: &str, id: &str, containerd_namespaces: &[String]) -> bool {
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != "..")
        .collect();
    first_named(&comps, id, containerd_namespaces).is_some()
}

/// The path of the cgroup that names container `id` first (walking `path` from the top, as
/// [`cgroup_path_is_containers`] decides): the container's own cgroup, `path` itself or
/// one of its ancestors. `None` when the path does not name `id` first, or reaches outside
/// the reader's cgroup namespace (`..`).
pub fn containers_own_cgroup(
    path: &str,
    id: &str,
    containerd_namespaces: &[String],
) -> Option<String> {
    if path.split('/').any(|c| c == "..") {
        return None;
    }
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let n = first_named(&comps, id, containerd_namespaces)?;
    Some(format!("/{}", comps[..n].join("/")))
}

/// How many of `comps` (a cgroup path's components, from the top) the first prefix that
/// names a container has, when that container is `id` (never the host's or no one's).
fn first_named(comps: &[&str], id: &str, containerd_namespaces: &[String]) -> Option<usize> {
    if id.is_empty() || id == "host" {
        return None;
    }
    (1..=comps.len())
        .find_map(|n| Some((n, container_of_leaf(&comps[..n], containerd_namespaces)?)))
        .filter(|(_, k)| k.short_id() == id)
        .map(|(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_containers_own_cgroup_is_the_first_that_names_it() {
        let ns = ns();
        let sys = format!("/system.slice/docker-{H}.scope");
        let id = &H[..12];
        assert_eq!(
            containers_own_cgroup(&sys, id, &ns).as_deref(),
            Some(sys.as_str())
        );
        for below in ["init.scope", &format!("docker-{}.scope", "ab".repeat(32))] {
            assert_eq!(
                containers_own_cgroup(&format!("{sys}/{below}"), id, &ns).as_deref(),
                Some(sys.as_str())
            );
        }
        assert_eq!(
            containers_own_cgroup("/default/web/sub", "web", &ns).as_deref(),
            Some("/default/web")
        );
        // another container first, no container, outside the namespace
        assert_eq!(
            containers_own_cgroup(&format!("{sys}/x"), "abababababab", &ns),
            None
        );
        assert_eq!(
            containers_own_cgroup("/system.slice/cron.service", id, &ns),
            None
        );
        assert_eq!(
            containers_own_cgroup(&format!("/../..{sys}"), id, &ns),
            None
        );
    }

    const H: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn ns() -> Vec<String> {
        DEFAULT_CONTAINERD_NAMESPACES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn runtime_forms() {
        let cases = [
            (
                format!("/kubepods.slice/kubepods-burstable.slice/cri-containerd-{H}.scope"),
                RuntimeKind::Containerd,
            ),
            (format!("/kubepods.slice/crio-{H}.scope"), RuntimeKind::Crio),
            (format!("/machine.slice/crio-{H}"), RuntimeKind::Crio),
            (
                format!("/system.slice/docker-{H}.scope"),
                RuntimeKind::Docker,
            ),
            (format!("/docker/{H}"), RuntimeKind::Docker),
            (format!("/libpod_parent/libpod-{H}"), RuntimeKind::Podman),
            (
                format!("/machine.slice/libpod-{H}.scope"),
                RuntimeKind::Podman,
            ),
            (
                format!("/machine.slice/libpod-{H}.scope/container"),
                RuntimeKind::Podman,
            ),
            (
                format!("/machine.slice/libpod-payload-{H}.scope"),
                RuntimeKind::Podman,
            ),
            (
                format!("/machine.slice/libpod-payload-{H}.scope/container"),
                RuntimeKind::Podman,
            ),
            (
                format!("/libpod_parent/libpod-payload-{H}"),
                RuntimeKind::Podman,
            ),
            (
                format!("/kubepods/besteffort/pod1234-5678/{H}"),
                RuntimeKind::Kubernetes,
            ),
        ];
        for (path, rt) in cases {
            let c = container_from_cgroup(&path, &ns()).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(c.full_id, H, "{path}");
            assert_eq!(c.runtime, rt, "{path}");
            assert_eq!(c.short_id(), &H[..12]);
        }
    }

    /// A cgroup below a container's is the container's, however it was made; nested
    /// containers are the inner ones.
    #[test]
    fn cgroups_below_a_container_are_its() {
        let other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
        for (path, id) in [
            (format!("/system.slice/docker-{H}.scope/sub"), H),
            (format!("/system.slice/docker-{H}.scope/a/b/c"), H),
            (
                format!("/machine.slice/libpod-{H}.scope/container/system.slice/x.service"),
                H,
            ),
            (format!("/kubepods/burstable/pod1/{H}/sub"), H),
            (format!("/docker/{H}/sub"), H),
            ("/default/web/sub".to_string(), "web"),
            (
                format!("/system.slice/docker-{other}.scope/docker-{H}.scope"),
                H,
            ),
            (
                format!("/system.slice/docker-{other}.scope/kubepods/pod1/{H}"),
                H,
            ),
        ] {
            let c = container_from_cgroup(&path, &ns()).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(c.full_id, id, "{path}");
        }
    }

    #[test]
    fn containerd_namespace_form() {
        let c = container_from_cgroup("/default/web", &ns()).unwrap();
        assert_eq!(c.full_id, "web");
        assert_eq!(c.namespace.as_deref(), Some("default"));
        assert_eq!(c.short_id(), "web");
    }

    #[test]
    fn not_containers() {
        for p in [
            "/",
            "/process_api/0123456789abcdef0123456789abcdef",
            "/user.slice/user-0.slice/session-1.scope",
            &format!("/machine.slice/libpod-conmon-{H}.scope"),
            &format!("/crio-conmon-{H}.scope"),
            "/system.slice/docker-abc.scope",
            "/default/",
            &format!("/machine.slice/libpod-conmon-{H}.scope/container"),
            "/container",
            "/a/default/web",
        ] {
            assert_eq!(container_from_cgroup(p, &ns()), None, "{p}");
        }
    }

    #[test]
    fn proc_cgroup_file() {
        let text =
            format!("12:memory:/process_api/00ff\n11:pids:/libpod_parent/libpod-{H}\n0::/\n");
        let c = container_from_proc_cgroup(&text, &ns()).unwrap();
        assert_eq!(c.runtime, RuntimeKind::Podman);
        assert_eq!(
            container_from_proc_cgroup("12:memory:/process_api/00ff\n0::/\n", &ns()),
            None
        );
    }
    #[test]
    fn a_cgroup_path_is_a_containers_only_when_it_names_it_first() {
        let short = &H[..12];
        let ns = ns();
        let is = |path: &str, id: &str| cgroup_path_is_containers(path, id, &ns);
        for path in [
            format!("/system.slice/docker-{H}.scope"),
            format!("/kubepods.slice/kubepods-burstable.slice/cri-containerd-{H}.scope"),
            format!("/machine.slice/libpod-{H}.scope"),
            format!("/machine.slice/libpod-{H}.scope/container"),
            format!("/kubepods.slice/crio-{H}.scope"),
            format!("/docker/{H}"),
            format!("/kubepods/burstable/pod1234/{H}"),
            format!("/../../kubepods.slice/cri-containerd-{H}.scope"),
        ] {
            assert!(is(&path, short), "{path}");
            assert!(!is(&path, "0123456789ab0"), "{path}");
        }
        assert!(is("/default/web", "web"));
        assert!(is("/k8s.io/web/sub", "web"));
        for (path, id) in [
            // a namespace that is not configured
            ("/custom-ns/web", "web"),
            ("/system.slice/containerd.service", "web"),
            // container names that are the names of host units, slices, namespaces
            ("/system.slice/containerd.service", "containerd.service"),
            ("/system.slice/containerd.service", "system.slice"),
            ("/default/web", "default"),
            ("/default/webserver", "web"),
            ("/", "web"),
            ("/user.slice", "host"),
            ("/default/web", ""),
        ] {
            assert!(!is(path, id), "{path} {id}");
        }
        // named below another container: the outer one decides
        let other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
        let nested = format!("/system.slice/docker-{other}.scope/docker-{H}.scope");
        assert!(!is(&nested, short));
        assert!(is(&nested, &other[..12]));
        // conmon's cgroup is podman's monitor, not the container
        assert!(!is(
            &format!("/machine.slice/libpod-conmon-{H}.scope"),
            short
        ));
        assert!(!is(
            &format!("/kubepods.slice/crio-conmon-{H}.scope"),
            short
        ));
    }
}
