//! Falco field catalogue: one table (name, type, argument, description) that
//! drives rule parsing, `falco-learn fields` and extraction from an [`Event`].
//!
//! Semantics follow Falco's (libsinsp) definitions: `proc.name` is the task's
//! `comm`, `proc.exe` is argv\[0\], `proc.exepath` the kernel-resolved path,
//! `proc.cmdline` is `name args…`, `proc.aname[N]` the N-th ancestor's name
//! (`proc.aname[0]` is the process itself; without an argument, the field
//! matches if *any* ancestor matches). A value that the event does not carry is
//! missing ([`extract`] returns `None`): every comparison on a missing value is
//! false and outputs render it as `<NA>`, as Falco does.
//!
//! Events are exit events only: `evt.dir` is always `<`.

use crate::glob::glob_match;
use crate::{Args, Event, EventType, Fd, FdType};
use std::borrow::Cow;
use std::net::IpAddr;

/// Type of a field's value; decides which operators a condition may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Text (Falco CHARBUF).
    String,
    /// Filesystem path (Falco FSPATH): text, also usable with `pmatch`.
    Path,
    /// Signed integer.
    Int,
    /// Unsigned integer.
    Uint,
    /// Port number.
    Port,
    /// Boolean.
    Bool,
    /// IP address; compares with addresses or CIDR networks.
    IpAddr,
    /// Network: an address compared for membership in CIDR networks.
    IpNet,
    /// Duration in nanoseconds.
    RelTime,
    /// Absolute time, nanoseconds since the Unix epoch.
    AbsTime,
    /// Raw bytes (Falco BYTEBUF).
    Bytes,
    /// A syscall argument, typed per event kind (text or number).
    Dynamic,
}

impl FieldType {
    /// Falco's name of the type, for `falco-learn fields`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "CHARBUF",
            FieldType::Path => "FSPATH",
            FieldType::Int => "INT64",
            FieldType::Uint => "UINT64",
            FieldType::Port => "PORT",
            FieldType::Bool => "BOOL",
            FieldType::IpAddr => "IPADDR",
            FieldType::IpNet => "IPNET",
            FieldType::RelTime => "RELTIME",
            FieldType::AbsTime => "ABSTIME",
            FieldType::Bytes => "BYTEBUF",
            FieldType::Dynamic => "DYNAMIC",
        }
    }

    /// Whether values of this type are numbers.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Int
                | FieldType::Uint
                | FieldType::Port
                | FieldType::RelTime
                | FieldType::AbsTime
        )
    }

    /// Whether values of this type are text.
    pub fn is_text(self) -> bool {
        matches!(self, FieldType::String | FieldType::Path | FieldType::Bytes)
    }
}

/// Whether (and how) a field takes an argument, as in `proc.aname[2]`,
/// `proc.env[HOME]` or `evt.arg.flags` / `evt.arg[0]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgSpec {
    /// No argument allowed.
    None,
    /// Optional numeric index `[N]`.
    OptIndex,
    /// Required key `[text]` (or `.name` for `evt.arg`).
    Key,
    /// Optional key `[text]`.
    OptKey,
    /// `evt.arg`: required `.name`, `[name]` or `[N]`.
    EvtArg,
}

impl ArgSpec {
    fn describe(self) -> &'static str {
        match self {
            ArgSpec::None => "",
            ArgSpec::OptIndex => "[N] optional",
            ArgSpec::Key => "[key] required",
            ArgSpec::OptKey => "[key] optional",
            ArgSpec::EvtArg => ".NAME or [N] required",
        }
    }
}

/// An argument given to a field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldArg {
    None,
    Index(usize),
    Key(String),
}

/// One row of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct FieldInfo {
    pub id: FieldId,
    pub name: &'static str,
    pub typ: FieldType,
    pub arg: ArgSpec,
    pub desc: &'static str,
}

impl FieldInfo {
    /// Human description of the accepted argument (empty when none).
    pub fn arg_description(&self) -> &'static str {
        self.arg.describe()
    }
}

macro_rules! catalogue {
    ($( $id:ident => $name:literal, $ty:ident, $arg:ident, $desc:literal; )*) => {
        /// Identifier of a catalogue field (dense, for fast dispatch).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FieldId { $($id,)* }

        /// The catalogue: every field falco-learn can evaluate, in display order.
        pub static FIELDS: &[FieldInfo] = &[
            $( FieldInfo { id: FieldId::$id, name: $name, typ: FieldType::$ty, arg: ArgSpec::$arg, desc: $desc }, )*
        ];
    };
}

catalogue! {
    EvtNum => "evt.num", Uint, None, "Event number (1-based position in the stream); missing when the source did not number events.";
    EvtTime => "evt.time", String, None, "Event time as HH:MM:SS.nnnnnnnnn (UTC).";
    EvtRawTime => "evt.rawtime", AbsTime, None, "Event time, nanoseconds since the Unix epoch.";
    EvtType => "evt.type", String, None, "Event type (syscall name), e.g. openat, execve, connect.";
    EvtDir => "evt.dir", String, None, "Event direction: always '<' (falco-learn sees exit events only; rules on '>' never match).";
    EvtHostname => "evt.hostname", String, None, "Host name of the machine the event happened on.";
    EvtRes => "evt.res", String, None, "Result: SUCCESS, or the errno name (e.g. ENOENT) when the syscall failed.";
    EvtRawRes => "evt.rawres", Int, None, "Raw syscall return value (negative errno on failure).";
    EvtFailed => "evt.failed", Bool, None, "true when the syscall returned an error.";
    EvtArgs => "evt.args", String, None, "All event arguments rendered as name=value pairs.";
    EvtArg => "evt.arg", Dynamic, EvtArg, "One event argument by name (evt.arg.flags) or position (evt.arg[0]), rendered as Falco renders it.";
    EvtBuffer => "evt.buffer", Bytes, None, "Data buffer of read/write events (not captured: always missing).";
    EvtIsOpenRead => "evt.is_open_read", Bool, None, "true for open/openat/openat2/creat opened for reading.";
    EvtIsOpenWrite => "evt.is_open_write", Bool, None, "true for open/openat/openat2/creat opened for writing.";
    EvtIsOpenExec => "evt.is_open_exec", Bool, None, "true for opens that create a file with execute permission bits.";
    ProcPid => "proc.pid", Uint, None, "Process id (host namespace).";
    ProcVpid => "proc.vpid", Uint, None, "Process id in its own pid namespace.";
    ProcPpid => "proc.ppid", Uint, None, "Parent process id.";
    ProcName => "proc.name", String, None, "Process name (the task's comm, at most 15 bytes).";
    ProcExe => "proc.exe", String, None, "First command-line argument (argv[0]).";
    ProcExePath => "proc.exepath", Path, None, "Kernel-resolved full path of the executable.";
    ProcArgs => "proc.args", String, None, "Command-line arguments after argv[0], joined with spaces.";
    ProcCmdline => "proc.cmdline", String, None, "proc.name followed by the arguments: 'name arg1 arg2'.";
    ProcCwd => "proc.cwd", Path, None, "Current working directory.";
    ProcTty => "proc.tty", Uint, None, "Controlling terminal (device number); 0 without a terminal.";
    ProcEnv => "proc.env", String, OptKey, "Environment (all variables, or the value of proc.env[NAME]).";
    ProcDuration => "proc.duration", RelTime, None, "Nanoseconds since the process started.";
    ProcSname => "proc.sname", String, None, "Name of the session leader.";
    ProcIsVpgidLeader => "proc.is_vpgid_leader", Bool, None, "true if the process leads its process group (vpid = vpgid).";
    ProcVpgid => "proc.vpgid", Uint, None, "Process group id in the process's pid namespace.";
    ProcVpgidName => "proc.vpgid.name", String, None, "Name of the process group leader.";
    ProcVpgidExe => "proc.vpgid.exe", String, None, "argv[0] of the process group leader.";
    ProcIsExeUpperLayer => "proc.is_exe_upper_layer", Bool, None, "true if the executable lives on an overlayfs upper layer (written after the container started).";
    ProcIsExeFromMemfd => "proc.is_exe_from_memfd", Bool, None, "true if the executable is a memfd.";
    ProcIsExeWritable => "proc.is_exe_writable", Bool, None, "true if the executable is writable by the user running it.";
    ProcExeIno => "proc.exe_ino", Uint, None, "Inode number of the executable.";
    ProcExeInoCtime => "proc.exe_ino.ctime", AbsTime, None, "Executable inode change time (ns since the epoch).";
    ProcExeInoMtime => "proc.exe_ino.mtime", AbsTime, None, "Executable inode modification time (ns since the epoch).";
    ProcExeInoCtimeDurationProcStart => "proc.exe_ino.ctime_duration_proc_start", RelTime, None, "Nanoseconds between the executable's ctime and the process start.";
    ProcPname => "proc.pname", String, None, "Parent process name.";
    ProcPexe => "proc.pexe", String, None, "Parent argv[0].";
    ProcPexePath => "proc.pexepath", Path, None, "Parent executable full path.";
    ProcPcmdline => "proc.pcmdline", String, None, "Parent command line (name and arguments).";
    ProcPpidDuration => "proc.ppid.duration", RelTime, None, "Nanoseconds since the parent started.";
    ProcAname => "proc.aname", String, OptIndex, "Name of the N-th ancestor (0 = this process, 1 = parent); without [N], matches any ancestor.";
    ProcAexe => "proc.aexe", String, OptIndex, "argv[0] of the N-th ancestor; without [N], any ancestor.";
    ProcAexePath => "proc.aexepath", Path, OptIndex, "Executable path of the N-th ancestor; without [N], any ancestor.";
    ProcApid => "proc.apid", Uint, OptIndex, "Pid of the N-th ancestor; without [N], any ancestor.";
    ThreadTid => "thread.tid", Uint, None, "Thread id.";
    ThreadCapEffective => "thread.cap_effective", String, None, "Effective capabilities, as space-separated CAP_* names.";
    ThreadCapPermitted => "thread.cap_permitted", String, None, "Permitted capabilities, as space-separated CAP_* names.";
    UserUid => "user.uid", Uint, None, "User id.";
    UserName => "user.name", String, None, "User name.";
    UserLoginUid => "user.loginuid", Int, None, "Audit login uid (-1 when unset).";
    UserLoginName => "user.loginname", String, None, "Audit login user name.";
    GroupGid => "group.gid", Uint, None, "Group id.";
    GroupName => "group.name", String, None, "Group name.";
    FdNum => "fd.num", Int, None, "File descriptor number (-1 for a failed open).";
    FdType => "fd.type", String, None, "Kind of fd: file, directory, ipv4, ipv6, unix, pipe, …";
    FdTypeChar => "fd.typechar", String, None, "One-character fd kind: f, d, 4, 6, u, p, …";
    FdName => "fd.name", Path, None, "Full path for files; cip:cport->sip:sport for sockets.";
    FdNameRaw => "fd.nameraw", Path, None, "Name as the process passed it (unresolved).";
    FdDirectory => "fd.directory", Path, None, "Directory containing the file.";
    FdFilename => "fd.filename", String, None, "File name without its directory.";
    FdL4Proto => "fd.l4proto", String, None, "Layer-4 protocol: tcp, udp, icmp, raw.";
    FdSockFamily => "fd.sockfamily", String, None, "Socket family: ip or unix.";
    FdIp => "fd.ip", IpAddr, None, "Either endpoint's address (matches if client or server matches).";
    FdCip => "fd.cip", IpAddr, None, "Client address.";
    FdSip => "fd.sip", IpAddr, None, "Server address.";
    FdLip => "fd.lip", IpAddr, None, "Local address.";
    FdRip => "fd.rip", IpAddr, None, "Remote address.";
    FdPort => "fd.port", Port, None, "Either endpoint's port.";
    FdCport => "fd.cport", Port, None, "Client port.";
    FdSport => "fd.sport", Port, None, "Server port.";
    FdLport => "fd.lport", Port, None, "Local port.";
    FdRport => "fd.rport", Port, None, "Remote port.";
    FdNet => "fd.net", IpNet, None, "Either endpoint's address, compared with CIDR networks.";
    FdCnet => "fd.cnet", IpNet, None, "Client address, compared with CIDR networks.";
    FdSnet => "fd.snet", IpNet, None, "Server address, compared with CIDR networks.";
    FdLnet => "fd.lnet", IpNet, None, "Local address, compared with CIDR networks.";
    FdRnet => "fd.rnet", IpNet, None, "Remote address, compared with CIDR networks.";
    FdCipName => "fd.cip.name", String, None, "Domain name of the client address (when known).";
    FdSipName => "fd.sip.name", String, None, "Domain name of the server address (when known).";
    FdLipName => "fd.lip.name", String, None, "Domain name of the local address (when known).";
    FdRipName => "fd.rip.name", String, None, "Domain name of the remote address (when known).";
    FdConnected => "fd.connected", Bool, None, "true for a connected socket.";
    FdNameChanged => "fd.name_changed", Bool, None, "true when the event changed the fd's name (sendto/sendmsg to an explicit address).";
    FdTypes => "fd.types", String, OptIndex, "fd types of the process (falco-learn knows the event's fd only: fd.types without [N] is its type).";
    ContainerId => "container.id", String, None, "Container id; 'host' for host processes.";
    ContainerName => "container.name", String, None, "Container name.";
    ContainerImage => "container.image", String, None, "Image reference repository[:tag].";
    ContainerImageRepository => "container.image.repository", String, None, "Image repository, e.g. docker.io/library/nginx.";
    ContainerImageTag => "container.image.tag", String, None, "Image tag.";
    ContainerImageDigest => "container.image.digest", String, None, "Image digest.";
    ContainerPrivileged => "container.privileged", Bool, None, "true for a privileged container.";
    ContainerStartTs => "container.start_ts", AbsTime, None, "Container start time (ns since the epoch).";
    ContainerRuntime => "container.type", String, None, "Container runtime (containerd, cri-o, docker, podman).";
    ContainerMounts => "container.mounts", String, None, "Mounts as source:dest:mode:rw:propagation, comma-separated.";
    ContainerMountDest => "container.mount.dest", String, Key, "Destination of the mount given by index or source-path glob; N/A when none.";
    ContainerMountSource => "container.mount.source", String, Key, "Source of the mount given by index or destination-path glob; N/A when none.";
    ContainerInfo => "container.info", String, None, "Summary of the container for outputs (id, name, image).";
    K8sNsName => "k8s.ns.name", String, None, "Kubernetes namespace.";
    K8sPodName => "k8s.pod.name", String, None, "Kubernetes pod name.";
    K8sPodUid => "k8s.pod.uid", String, None, "Kubernetes pod uid.";
    K8sPodLabel => "k8s.pod.label", String, Key, "Value of the pod label given as k8s.pod.label[KEY].";
    K8sPodLabels => "k8s.pod.labels", String, None, "Pod labels as key:value, comma-separated.";
}

/// Why falco-learn's probe never gives a value for this field, or `None` when it does.
/// A rule testing such a field is loaded and evaluated as the engine always does on a
/// missing value (every comparison false, `exists` false, `<NA>` in outputs), and
/// `rules check` and the load report name it with a `LOAD_UNAVAILABLE_FIELD` warning.
/// (Recordings from elsewhere may carry a value; the probe never does.)
pub fn unavailable(f: &FieldRef) -> Option<&'static str> {
    match (f.id, &f.arg) {
        (FieldId::EvtBuffer, _) => Some("the probe captures no data buffers"),
        (FieldId::ProcEnv, _) => Some("the probe does not read process environments"),
        (FieldId::FdCipName | FieldId::FdSipName | FieldId::FdLipName | FieldId::FdRipName, _) => {
            Some("falco-learn resolves no domain names")
        }
        (FieldId::FdTypes, FieldArg::Index(_)) => {
            Some("falco-learn knows only the event's own fd, not the process's fd table")
        }
        _ => None,
    }
}

/// Look a field up by exact name (without argument).
pub fn lookup(name: &str) -> Option<&'static FieldInfo> {
    FIELDS.iter().find(|f| f.name == name)
}

/// Catalogue row of an id.
pub fn info(id: FieldId) -> &'static FieldInfo {
    &FIELDS[id as usize]
}

/// A field with its argument, parsed from text such as `proc.aname[2]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRef {
    pub id: FieldId,
    pub arg: FieldArg,
}

impl FieldRef {
    pub fn info(&self) -> &'static FieldInfo {
        info(self.id)
    }

    /// Type of the value this reference yields.
    pub fn typ(&self) -> FieldType {
        self.info().typ
    }
}

impl std::fmt::Display for FieldRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.info().name;
        match (&self.arg, self.id) {
            (FieldArg::None, _) => f.write_str(name),
            (FieldArg::Key(k), FieldId::EvtArg) => write!(f, "{name}.{k}"),
            (FieldArg::Key(k), _) => write!(f, "{name}[{k}]"),
            (FieldArg::Index(i), _) => write!(f, "{name}[{i}]"),
        }
    }
}

/// Why a field reference could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("unknown field '{0}'")]
    Unknown(String),
    #[error("field '{0}' takes no argument")]
    UnexpectedArg(String),
    #[error("field '{0}' requires an argument ({1})")]
    MissingArg(String, &'static str),
    #[error("field '{0}': bad argument '{1}' ({2})")]
    BadArg(String, String, &'static str),
}

/// Resolve a field reference: `name`, `name[arg]`, or `evt.arg.NAME`.
pub fn parse_field_ref(text: &str) -> Result<FieldRef, FieldError> {
    let (name, bracket) = match text.find('[') {
        Some(i) if text.ends_with(']') => (&text[..i], Some(&text[i + 1..text.len() - 1])),
        Some(_) => return Err(FieldError::Unknown(text.to_string())),
        None => (text, None),
    };
    if let Some(key) = name.strip_prefix("evt.arg.") {
        if bracket.is_some() || key.is_empty() {
            return Err(FieldError::Unknown(text.to_string()));
        }
        return Ok(FieldRef {
            id: FieldId::EvtArg,
            arg: FieldArg::Key(key.to_string()),
        });
    }
    let info = lookup(name).ok_or_else(|| FieldError::Unknown(text.to_string()))?;
    let arg = match (info.arg, bracket) {
        (ArgSpec::None, None) => FieldArg::None,
        (ArgSpec::None, Some(_)) => return Err(FieldError::UnexpectedArg(name.to_string())),
        (ArgSpec::OptIndex | ArgSpec::OptKey, None) => FieldArg::None,
        (ArgSpec::Key | ArgSpec::EvtArg, None) => {
            return Err(FieldError::MissingArg(
                name.to_string(),
                info.arg.describe(),
            ))
        }
        (ArgSpec::OptIndex, Some(b)) => match b.trim().parse::<usize>() {
            Ok(n) => FieldArg::Index(n),
            Err(_) => {
                return Err(FieldError::BadArg(
                    name.to_string(),
                    b.to_string(),
                    "a number is expected",
                ))
            }
        },
        (ArgSpec::EvtArg, Some(b)) => match b.trim().parse::<usize>() {
            Ok(n) => FieldArg::Index(n),
            Err(_) if !b.trim().is_empty() => FieldArg::Key(b.trim().to_string()),
            Err(_) => {
                return Err(FieldError::BadArg(
                    name.to_string(),
                    b.to_string(),
                    "an argument name or position is expected",
                ))
            }
        },
        (ArgSpec::Key | ArgSpec::OptKey, Some(b)) => {
            if b.is_empty() {
                return Err(FieldError::BadArg(
                    name.to_string(),
                    b.to_string(),
                    "a key is expected",
                ));
            }
            FieldArg::Key(b.to_string())
        }
    };
    Ok(FieldRef { id: info.id, arg })
}

/// A value extracted from an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Str(Cow<'a, str>),
    Num(i64),
    Bool(bool),
    Ip(IpAddr),
    /// Several values: the comparison matches if any of them does
    /// (`proc.aname` without index, `fd.ip`, `fd.port`, `fd.net`).
    Any(Vec<Value<'a>>),
}

impl Value<'_> {
    /// Falco's text rendering of the value (outputs, string comparisons on numbers).
    pub fn render(&self) -> Cow<'_, str> {
        match self {
            Value::Str(s) => Cow::Borrowed(s.as_ref()),
            Value::Num(n) => Cow::Owned(n.to_string()),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Ip(ip) => Cow::Owned(ip.to_string()),
            Value::Any(vs) => Cow::Owned(
                vs.iter()
                    .map(|v| v.render().into_owned())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }

    /// JSON form for Falco's `output_fields`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Num(n) => serde_json::Value::from(*n),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Ip(ip) => serde_json::Value::String(ip.to_string()),
            Value::Any(_) => serde_json::Value::String(self.render().into_owned()),
        }
    }

    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Num(n) => Value::Num(n),
            Value::Bool(b) => Value::Bool(b),
            Value::Ip(ip) => Value::Ip(ip),
            Value::Any(vs) => Value::Any(vs.into_iter().map(Value::into_owned).collect()),
        }
    }
}

/// The text Falco prints for a missing value.
pub const NA: &str = "<NA>";

fn s(v: &str) -> Option<Value<'_>> {
    if v.is_empty() {
        None
    } else {
        Some(Value::Str(Cow::Borrowed(v)))
    }
}

fn owned(v: String) -> Option<Value<'static>> {
    if v.is_empty() {
        None
    } else {
        Some(Value::Str(Cow::Owned(v)))
    }
}

fn num<T: TryInto<i64>>(v: T) -> Option<Value<'static>> {
    v.try_into().ok().map(Value::Num)
}

fn cmdline(name: &str, args: &[String]) -> String {
    let mut out =
        String::with_capacity(name.len() + args.iter().map(|a| a.len() + 1).sum::<usize>());
    out.push_str(name);
    for a in args {
        out.push(' ');
        out.push_str(a);
    }
    out
}

fn is_open(t: EventType) -> bool {
    matches!(
        t,
        EventType::Open | EventType::Openat | EventType::Openat2 | EventType::Creat
    )
}

fn fd_is_ip(fd: &Fd) -> bool {
    matches!(fd.typ, FdType::Ipv4 | FdType::Ipv6)
}

/// Rendered socket tuple `cip:cport->sip:sport`.
pub fn socket_tuple(fd: &Fd) -> Option<String> {
    let fmt = |ip: Option<IpAddr>, port: Option<u16>| -> String {
        let ip = ip
            .map(|i| i.to_string())
            .unwrap_or_else(|| "0.0.0.0".into());
        match port {
            Some(p) => format!("{ip}:{p}"),
            None => ip,
        }
    };
    if fd.cip.is_none() && fd.sip.is_none() {
        return None;
    }
    Some(format!(
        "{}->{}",
        fmt(fd.cip, fd.cport),
        fmt(fd.sip, fd.sport)
    ))
}

fn fd_name(fd: &Fd) -> Option<Value<'_>> {
    if !fd.name.is_empty() {
        return s(&fd.name);
    }
    if fd_is_ip(fd) {
        return socket_tuple(fd).and_then(owned);
    }
    None
}

/// Local and remote (ip, port) of a socket fd.
/// An endpoint: address and port, each possibly unknown.
type Endpoint = (Option<IpAddr>, Option<u16>);

fn local_remote(fd: &Fd) -> (Endpoint, Endpoint) {
    let c = (fd.cip, fd.cport);
    let srv = (fd.sip, fd.sport);
    if fd.is_client {
        (c, srv)
    } else {
        (srv, c)
    }
}

fn ip_opt(ip: Option<IpAddr>) -> Option<Value<'static>> {
    ip.map(Value::Ip)
}

fn port_opt(p: Option<u16>) -> Option<Value<'static>> {
    p.map(|p| Value::Num(p as i64))
}

fn both(a: Option<Value<'static>>, b: Option<Value<'static>>) -> Option<Value<'static>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Value::Any(vec![a, b])),
        (Some(a), None) | (None, Some(a)) => Some(a),
        (None, None) => None,
    }
}

fn dirname(path: &str) -> Option<&str> {
    let i = path.rfind('/')?;
    if i == 0 {
        Some("/")
    } else {
        Some(&path[..i])
    }
}

fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Linux errno names, indexed by errno.
const ERRNO_NAMES: &[&str] = &[
    "",
    "EPERM",
    "ENOENT",
    "ESRCH",
    "EINTR",
    "EIO",
    "ENXIO",
    "E2BIG",
    "ENOEXEC",
    "EBADF",
    "ECHILD",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EFAULT",
    "ENOTBLK",
    "EBUSY",
    "EEXIST",
    "EXDEV",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "ENFILE",
    "EMFILE",
    "ENOTTY",
    "ETXTBSY",
    "EFBIG",
    "ENOSPC",
    "ESPIPE",
    "EROFS",
    "EMLINK",
    "EPIPE",
    "EDOM",
    "ERANGE",
    "EDEADLK",
    "ENAMETOOLONG",
    "ENOLCK",
    "ENOSYS",
    "ENOTEMPTY",
    "ELOOP",
    "",
    "ENOMSG",
    "EIDRM",
    "ECHRNG",
    "EL2NSYNC",
    "EL3HLT",
    "EL3RST",
    "ELNRNG",
    "EUNATCH",
    "ENOCSI",
    "EL2HLT",
    "EBADE",
    "EBADR",
    "EXFULL",
    "ENOANO",
    "EBADRQC",
    "EBADSLT",
    "",
    "EBFONT",
    "ENOSTR",
    "ENODATA",
    "ETIME",
    "ENOSR",
    "ENONET",
    "ENOPKG",
    "EREMOTE",
    "ENOLINK",
    "EADV",
    "ESRMNT",
    "ECOMM",
    "EPROTO",
    "EMULTIHOP",
    "EDOTDOT",
    "EBADMSG",
    "EOVERFLOW",
    "ENOTUNIQ",
    "EBADFD",
    "EREMCHG",
    "ELIBACC",
    "ELIBBAD",
    "ELIBSCN",
    "ELIBMAX",
    "ELIBEXEC",
    "EILSEQ",
    "ERESTART",
    "ESTRPIPE",
    "EUSERS",
    "ENOTSOCK",
    "EDESTADDRREQ",
    "EMSGSIZE",
    "EPROTOTYPE",
    "ENOPROTOOPT",
    "EPROTONOSUPPORT",
    "ESOCKTNOSUPPORT",
    "EOPNOTSUPP",
    "EPFNOSUPPORT",
    "EAFNOSUPPORT",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "ENETDOWN",
    "ENETUNREACH",
    "ENETRESET",
    "ECONNABORTED",
    "ECONNRESET",
    "ENOBUFS",
    "EISCONN",
    "ENOTCONN",
    "ESHUTDOWN",
    "ETOOMANYREFS",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EALREADY",
    "EINPROGRESS",
    "ESTALE",
    "EUCLEAN",
    "ENOTNAM",
    "ENAVAIL",
    "EISNAM",
    "EREMOTEIO",
    "EDQUOT",
    "ENOMEDIUM",
    "EMEDIUMTYPE",
    "ECANCELED",
    "ENOKEY",
    "EKEYEXPIRED",
    "EKEYREVOKED",
    "EKEYREJECTED",
    "EOWNERDEAD",
    "ENOTRECOVERABLE",
    "ERFKILL",
    "EHWPOISON",
];

/// Falco's `evt.res` text for a return value.
pub fn res_name(res: i64) -> Cow<'static, str> {
    if res >= 0 {
        return Cow::Borrowed("SUCCESS");
    }
    match res.checked_neg().and_then(|e| usize::try_from(e).ok()) {
        Some(e) if e < ERRNO_NAMES.len() && !ERRNO_NAMES[e].is_empty() => {
            Cow::Borrowed(ERRNO_NAMES[e])
        }
        _ => Cow::Owned(res.to_string()),
    }
}

/// Capability names, indexed by capability number.
const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Capability number of a `CAP_*` name (case-insensitive, prefix optional).
pub fn cap_number(name: &str) -> Option<u32> {
    let up = name.to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    CAP_NAMES.iter().position(|c| *c == full).map(|i| i as u32)
}

/// Capability set rendered as Falco renders it: space-separated `CAP_*` names.
pub fn render_caps(caps: u64) -> String {
    let mut out = String::new();
    for (i, name) in CAP_NAMES.iter().enumerate() {
        if caps & (1u64 << i) != 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(name);
        }
    }
    out
}

/// libsinsp's `PPM_O_*` bits of Linux open flags, as the drivers' `open_flags_to_scap`
/// computes them (`driver/ppm_flag_helpers.h`), quirks included: `flags & O_SYNC` and
/// `flags & O_TMPFILE` test *any* of their bits, so `O_DSYNC` alone also sets `PPM_O_SYNC`
/// and `O_DIRECTORY` alone also sets `PPM_O_TMPFILE`.
pub fn open_flags_to_ppm(flags: u32) -> u32 {
    const MAP: &[(u32, u32)] = &[
        (0o100, 1 << 2),       // O_CREAT
        (0o20200000, 1 << 13), // O_TMPFILE (= __O_TMPFILE | O_DIRECTORY)
        (0o2000, 1 << 3),      // O_APPEND
        (0o10000, 1 << 4),     // O_DSYNC
        (0o200, 1 << 5),       // O_EXCL
        (0o4000, 1 << 6),      // O_NONBLOCK
        (0o4010000, 1 << 7),   // O_SYNC (= __O_SYNC | O_DSYNC)
        (0o1000, 1 << 8),      // O_TRUNC
        (0o40000, 1 << 9),     // O_DIRECT
        (0o200000, 1 << 10),   // O_DIRECTORY
        (0o100000, 1 << 11),   // O_LARGEFILE
        (0o2000000, 1 << 12),  // O_CLOEXEC
    ];
    let mut res = match flags & 0o3 {
        1 => 1 << 1, // PPM_O_WRONLY
        2 => 3,      // PPM_O_RDWR
        _ => 1,      // PPM_O_RDONLY (access mode 3 too, as the drivers' `default:`)
    };
    for (linux, ppm) in MAP {
        if flags & linux != 0 {
            res |= ppm;
        }
    }
    res
}

/// Open flags (`evt.arg.flags` of the open family) as libsinsp resolves a `PT_FLAGS32`
/// parameter (`sinsp_evt::get_param_as_str`): the names of `file_flags`
/// (`driver/flags_table.c`) in that table's order, each name's bits taken out once
/// matched, joined with `|`. `O_NOFOLLOW`, `O_NOATIME`, `O_PATH`, `O_NOCTTY` and
/// `O_ASYNC` have no `PPM_O_*` bit and are not shown (as in Falco). `O_F_CREATED` (the
/// open created the file) is not known to our probe and never shown.
pub fn render_open_flags(flags: u32) -> String {
    const TABLE: &[(&str, u32)] = &[
        ("O_LARGEFILE", 1 << 11),
        ("O_DIRECTORY", 1 << 10),
        ("O_DIRECT", 1 << 9),
        ("O_TRUNC", 1 << 8),
        ("O_SYNC", 1 << 7),
        ("O_NONBLOCK", 1 << 6),
        ("O_EXCL", 1 << 5),
        ("O_DSYNC", 1 << 4),
        ("O_APPEND", 1 << 3),
        ("O_CREAT", 1 << 2),
        ("O_RDWR", 3),
        ("O_WRONLY", 1 << 1),
        ("O_RDONLY", 1),
        ("O_CLOEXEC", 1 << 12),
        ("O_TMPFILE", 1 << 13),
    ];
    let initial = open_flags_to_ppm(flags);
    let mut val = initial;
    let mut parts: Vec<&str> = Vec::new();
    for (name, bits) in TABLE {
        if val != 0 && val & bits == *bits {
            parts.push(name);
            val &= !bits;
            if *bits == initial {
                break;
            }
        }
    }
    parts.join("|")
}

/// Exec flags (`evt.arg.flags` of execve) as libsinsp resolves them: `execve_flags`
/// (`driver/flags_table.c`) in that order, set as the modern probe sets them
/// (`execve.bpf.c`: writable; the overlay layer, upper or lower, only on overlayfs; memfd),
/// and the number `0` when none is set (`get_param_as_str` falls back to the number).
fn render_exe_flags(ev: &Event) -> String {
    let f = &ev.process.exe_flags;
    let mut parts = Vec::new();
    if f.writable {
        parts.push("EXE_WRITABLE");
    }
    if f.upper_layer {
        parts.push("EXE_UPPER_LAYER");
    }
    if f.memfd {
        parts.push("EXE_FROM_MEMFD");
    }
    if f.overlay && !f.upper_layer {
        parts.push("EXE_LOWER_LAYER");
    }
    if parts.is_empty() {
        return "0".to_string();
    }
    parts.join("|")
}

/// Socket address family names.
pub fn socket_family_name(domain: u32) -> Cow<'static, str> {
    let n = match domain {
        0 => "AF_UNSPEC",
        1 => "AF_UNIX",
        2 => "AF_INET",
        3 => "AF_AX25",
        4 => "AF_IPX",
        5 => "AF_APPLETALK",
        6 => "AF_NETROM",
        7 => "AF_BRIDGE",
        8 => "AF_ATMPVC",
        9 => "AF_X25",
        10 => "AF_INET6",
        11 => "AF_ROSE",
        12 => "AF_DECnet",
        13 => "AF_NETBEUI",
        14 => "AF_SECURITY",
        15 => "AF_KEY",
        16 => "AF_NETLINK",
        17 => "AF_PACKET",
        18 => "AF_ASH",
        19 => "AF_ECONET",
        20 => "AF_ATMSVC",
        21 => "AF_RDS",
        22 => "AF_SNA",
        23 => "AF_IRDA",
        24 => "AF_PPPOX",
        25 => "AF_WANPIPE",
        26 => "AF_LLC",
        27 => "AF_IB",
        28 => "AF_MPLS",
        29 => "AF_CAN",
        30 => "AF_TIPC",
        31 => "AF_BLUETOOTH",
        38 => "AF_ALG",
        40 => "AF_VSOCK",
        44 => "AF_XDP",
        _ => return Cow::Owned(domain.to_string()),
    };
    Cow::Borrowed(n)
}

/// ptrace request names.
pub fn ptrace_request_name(req: u32) -> Cow<'static, str> {
    let n = match req {
        0 => "PTRACE_TRACEME",
        1 => "PTRACE_PEEKTEXT",
        2 => "PTRACE_PEEKDATA",
        3 => "PTRACE_PEEKUSR",
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSR",
        7 => "PTRACE_CONT",
        8 => "PTRACE_KILL",
        9 => "PTRACE_SINGLESTEP",
        12 => "PTRACE_GETREGS",
        13 => "PTRACE_SETREGS",
        14 => "PTRACE_GETFPREGS",
        15 => "PTRACE_SETFPREGS",
        16 => "PTRACE_ATTACH",
        17 => "PTRACE_DETACH",
        18 => "PTRACE_GETFPXREGS",
        19 => "PTRACE_SETFPXREGS",
        24 => "PTRACE_SYSCALL",
        0x4200 => "PTRACE_SETOPTIONS",
        0x4201 => "PTRACE_GETEVENTMSG",
        0x4202 => "PTRACE_GETSIGINFO",
        0x4203 => "PTRACE_SETSIGINFO",
        0x4204 => "PTRACE_GETREGSET",
        0x4205 => "PTRACE_SETREGSET",
        0x4206 => "PTRACE_SEIZE",
        0x4207 => "PTRACE_INTERRUPT",
        0x4208 => "PTRACE_LISTEN",
        _ => return Cow::Owned(req.to_string()),
    };
    Cow::Borrowed(n)
}

/// An open's `mode` (`PT_UINT32`, `PF_OCT`): C's `%#o`, so `0644`, and `0` for none.
fn render_mode(mode: u32) -> String {
    if mode == 0 {
        "0".to_string()
    } else {
        format!("0{mode:o}")
    }
}

/// The exit-event parameters of an event, in Falco's order, as (name, value).
/// `evt.arg.NAME`, `evt.arg[N]` and `evt.args` read this list.
pub fn event_args(ev: &Event) -> Vec<(&'static str, Value<'_>)> {
    let res = Value::Num(ev.res);
    let t = ev.event_type();
    let mut out: Vec<(&'static str, Value<'_>)> = Vec::with_capacity(8);
    static EXEC_NONE: Args = Args::Exec {
        filename: String::new(),
    };
    let args = match &ev.args {
        Args::None if matches!(t, EventType::Execve | EventType::Execveat) => &EXEC_NONE,
        a => a,
    };
    match args {
        Args::None => out.push(("res", res)),
        Args::Exec { filename } => {
            out.push(("res", res));
            out.push(("exe", Value::Str(Cow::Borrowed(&ev.process.exe))));
            out.push(("args", Value::Str(Cow::Owned(ev.process.args.join(" ")))));
            out.push(("tid", Value::Num(ev.process.tid as i64)));
            out.push(("pid", Value::Num(ev.process.pid as i64)));
            out.push(("ptid", Value::Num(ev.process.ppid as i64)));
            out.push(("cwd", Value::Str(Cow::Borrowed(&ev.process.cwd))));
            out.push(("comm", Value::Str(Cow::Borrowed(&ev.process.comm))));
            out.push(("tty", Value::Num(ev.process.tty as i64)));
            out.push(("loginuid", Value::Num(loginuid(ev.process.loginuid))));
            out.push(("flags", Value::Str(Cow::Owned(render_exe_flags(ev)))));
            out.push((
                "cap_permitted",
                Value::Str(Cow::Owned(render_caps(ev.process.cap_permitted))),
            ));
            out.push((
                "cap_effective",
                Value::Str(Cow::Owned(render_caps(ev.process.cap_effective))),
            ));
            out.push(("uid", Value::Num(ev.process.uid as i64)));
            out.push((
                "trusted_exepath",
                Value::Str(Cow::Borrowed(&ev.process.exepath)),
            ));
            out.push(("gid", Value::Num(ev.process.gid as i64)));
            if !filename.is_empty() {
                out.push(("filename", Value::Str(Cow::Borrowed(filename))));
            }
        }
        Args::Clone { child_pid, flags } => {
            out.push(("res", Value::Num(*child_pid as i64)));
            out.push(("flags", Value::Num(*flags as i64)));
        }
        Args::Exit { status } => {
            out.push(("status", Value::Num(*status as i64)));
        }
        Args::Open {
            name,
            flags,
            mode,
            dirfd,
        } => {
            out.push(("fd", res));
            if matches!(t, EventType::Openat | EventType::Openat2) {
                out.push(("dirfd", Value::Num(*dirfd)));
            }
            out.push(("name", Value::Str(Cow::Borrowed(name))));
            out.push(("flags", Value::Str(Cow::Owned(render_open_flags(*flags)))));
            out.push(("mode", Value::Str(Cow::Owned(render_mode(*mode)))));
            out.push(("path", Value::Str(Cow::Borrowed(name))));
        }
        Args::Connect { fd, addr } => {
            out.push(("res", res));
            if let Some(n) = ev.fd.as_ref().and_then(fd_name) {
                out.push(("tuple", n));
            }
            out.push(("fd", Value::Num(*fd)));
            if !addr.is_empty() {
                out.push(("addr", Value::Str(Cow::Borrowed(addr))));
            }
        }
        Args::Send { fd, size, addr } => {
            out.push(("res", res));
            out.push(("fd", Value::Num(*fd)));
            out.push(("size", num(*size).unwrap_or(Value::Num(i64::MAX))));
            if let Some(n) = ev.fd.as_ref().and_then(fd_name) {
                out.push(("tuple", n));
            }
            if !addr.is_empty() {
                out.push(("addr", Value::Str(Cow::Borrowed(addr))));
            }
        }
        Args::Socket { domain, typ, proto } => {
            out.push(("fd", res));
            out.push(("domain", Value::Str(socket_family_name(*domain))));
            out.push(("type", Value::Num(*typ as i64)));
            out.push(("proto", Value::Num(*proto as i64)));
        }
        Args::Dup {
            oldfd,
            newfd,
            flags,
        } => {
            out.push(("res", res));
            out.push(("oldfd", Value::Num(*oldfd)));
            if !matches!(t, EventType::Dup) {
                out.push(("newfd", Value::Num(*newfd)));
            }
            if matches!(t, EventType::Dup3) {
                out.push(("flags", Value::Num(*flags as i64)));
            }
            out.push(("fd", Value::Num(*oldfd)));
        }
        Args::Symlink {
            target,
            linkpath,
            newdirfd,
        } => {
            out.push(("res", res));
            out.push(("target", Value::Str(Cow::Borrowed(target))));
            if matches!(t, EventType::Symlinkat) {
                out.push(("linkdirfd", Value::Num(*newdirfd)));
            }
            out.push(("linkpath", Value::Str(Cow::Borrowed(linkpath))));
        }
        Args::Link {
            oldpath,
            newpath,
            olddir,
            newdir,
            flags,
        } => {
            out.push(("res", res));
            if matches!(t, EventType::Linkat) {
                out.push(("olddir", Value::Num(*olddir)));
            }
            out.push(("oldpath", Value::Str(Cow::Borrowed(oldpath))));
            if matches!(t, EventType::Linkat) {
                out.push(("newdir", Value::Num(*newdir)));
            }
            out.push(("newpath", Value::Str(Cow::Borrowed(newpath))));
            if matches!(t, EventType::Linkat) {
                out.push(("flags", Value::Num(*flags as i64)));
            }
        }
        Args::Ptrace { request, pid } => {
            out.push(("res", res));
            out.push(("request", Value::Str(ptrace_request_name(*request))));
            out.push(("pid", Value::Num(*pid as i64)));
        }
        Args::Ia32Syscall { id } => {
            out.push(("ID", Value::Num(*id)));
        }
        Args::Module {
            len_or_fd,
            uargs,
            flags,
        } => {
            out.push(("res", res));
            if matches!(t, EventType::FinitModule) {
                out.push(("fd", Value::Num(*len_or_fd)));
            } else {
                out.push(("length", Value::Num(*len_or_fd)));
            }
            out.push(("uargs", Value::Str(Cow::Borrowed(uargs))));
            if matches!(t, EventType::FinitModule) {
                out.push(("flags", Value::Num(*flags as i64)));
            }
        }
    }
    out
}

/// One argument by name (`evt.arg.NAME`) without building the whole list for
/// the frequent ones.
fn event_arg_by_name<'a>(ev: &'a Event, key: &str) -> Option<Value<'a>> {
    match (&ev.args, key) {
        (Args::Open { flags, .. }, "flags") => {
            Some(Value::Str(Cow::Owned(render_open_flags(*flags))))
        }
        (Args::Open { name, .. }, "name" | "path") => Some(Value::Str(Cow::Borrowed(name))),
        (Args::Exec { .. } | Args::None, "flags")
            if matches!(ev.event_type(), EventType::Execve | EventType::Execveat) =>
        {
            Some(Value::Str(Cow::Owned(render_exe_flags(ev))))
        }
        (_, "res_or_fd") => Some(Value::Num(ev.res)),
        _ => event_args(ev)
            .into_iter()
            .find(|(n, _)| *n == key)
            .map(|(_, v)| v),
    }
}

/// libsinsp `sinsp_filtercheck_user.cpp` / `_group.cpp` (`TYPE_NAME`, `TYPE_LOGINNAME`):
/// the name the user/group tables give, else `root` for id 0, else `<NA>` — always a
/// value, never missing.
fn user_or_na(name: &str, id: u32) -> Value<'_> {
    Value::Str(Cow::Borrowed(match name {
        "" if id == 0 => "root",
        "" => NA,
        n => n,
    }))
}

fn loginuid(v: u32) -> i64 {
    if v == u32::MAX {
        -1
    } else {
        v as i64
    }
}

/// RFC 3339 / ISO-8601-ish clock time `HH:MM:SS.nnnnnnnnn` (UTC) of a timestamp.
pub fn clock_time(ts: u64) -> String {
    let secs = ts / 1_000_000_000;
    let ns = ts % 1_000_000_000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:09}",
        day / 3600,
        (day / 60) % 60,
        day % 60,
        ns
    )
}

fn mount_lookup<'a>(ev: &'a Event, key: &str, want_dest: bool) -> Option<Value<'a>> {
    if ev.container.id.is_empty() {
        return None;
    }
    let mounts = &ev.container.mounts;
    let found = if let Ok(i) = key.parse::<usize>() {
        mounts.get(i)
    } else {
        mounts.iter().find(|m| {
            let probe = if want_dest { &m.source } else { &m.dest };
            glob_match(key, probe)
        })
    };
    match found {
        Some(m) => Some(Value::Str(Cow::Borrowed(if want_dest {
            &m.dest
        } else {
            &m.source
        }))),
        None => Some(Value::Str(Cow::Borrowed("N/A"))),
    }
}

fn ancestor_value<'a>(ev: &'a Event, id: FieldId, idx: usize) -> Option<Value<'a>> {
    if idx == 0 {
        let p = &ev.process;
        return match id {
            FieldId::ProcAname => s(&p.comm),
            FieldId::ProcAexe => s(&p.exe),
            FieldId::ProcAexePath => s(&p.exepath),
            _ => Some(Value::Num(p.pid as i64)),
        };
    }
    let a = ev.ancestors.get(idx - 1)?;
    match id {
        FieldId::ProcAname => s(&a.comm),
        FieldId::ProcAexe => s(&a.exe),
        FieldId::ProcAexePath => s(&a.exepath),
        _ => Some(Value::Num(a.pid as i64)),
    }
}

/// Extract a field's value from an event; `None` when the event does not carry it.
pub fn extract<'a>(ev: &'a Event, f: &FieldRef) -> Option<Value<'a>> {
    use FieldId as F;
    let p = &ev.process;
    let fd = ev.fd.as_ref();
    let c = &ev.container;
    match f.id {
        F::EvtNum => (ev.num != 0).then_some(Value::Num(ev.num as i64)),
        F::EvtTime => Some(Value::Str(Cow::Owned(clock_time(ev.ts)))),
        F::EvtRawTime => num(ev.ts),
        F::EvtType => Some(Value::Str(Cow::Borrowed(ev.event_type().as_str()))),
        F::EvtDir => Some(Value::Str(Cow::Borrowed("<"))),
        F::EvtHostname => s(&ev.hostname),
        F::EvtRes => Some(Value::Str(res_name(ev.res))),
        F::EvtRawRes => Some(Value::Num(ev.res)),
        F::EvtFailed => Some(Value::Bool(ev.res < 0)),
        F::EvtArgs => {
            let parts: Vec<String> = event_args(ev)
                .into_iter()
                .map(|(n, v)| format!("{n}={}", v.render()))
                .collect();
            Some(Value::Str(Cow::Owned(parts.join(" "))))
        }
        F::EvtArg => match &f.arg {
            FieldArg::Key(k) => event_arg_by_name(ev, k),
            FieldArg::Index(i) => event_args(ev).into_iter().nth(*i).map(|(_, v)| v),
            FieldArg::None => None,
        },
        F::EvtBuffer => None,
        F::EvtIsOpenRead | F::EvtIsOpenWrite | F::EvtIsOpenExec => {
            let (flags, mode) = match (&ev.args, is_open(ev.event_type())) {
                (Args::Open { flags, mode, .. }, true) => (*flags, *mode),
                _ => return Some(Value::Bool(false)),
            };
            let acc = flags & 0o3;
            Some(Value::Bool(match f.id {
                F::EvtIsOpenRead => acc == 0 || acc == 2,
                F::EvtIsOpenWrite => acc == 1 || acc == 2,
                _ => flags & 0o100 != 0 && mode & 0o111 != 0,
            }))
        }
        F::ProcPid => num(p.pid),
        F::ProcVpid => num(p.vpid),
        F::ProcPpid => num(p.ppid),
        // libsinsp `sinsp_filtercheck_thread.cpp` extracts these from the thread's own
        // strings: an empty one is the value "" (present), not a missing value.
        F::ProcName => Some(Value::Str(Cow::Borrowed(&p.comm))),
        F::ProcExe => Some(Value::Str(Cow::Borrowed(&p.exe))),
        F::ProcExePath => Some(Value::Str(Cow::Borrowed(&p.exepath))),
        F::ProcArgs => Some(Value::Str(if p.args.len() == 1 {
            Cow::Borrowed(p.args[0].as_str())
        } else {
            Cow::Owned(p.args.join(" "))
        })),
        F::ProcCmdline => {
            if p.comm.is_empty() {
                None
            } else {
                Some(Value::Str(Cow::Owned(cmdline(&p.comm, &p.args))))
            }
        }
        F::ProcCwd => Some(Value::Str(Cow::Borrowed(&p.cwd))),
        F::ProcTty => num(p.tty),
        F::ProcEnv => match &f.arg {
            FieldArg::Key(k) => p.env.iter().find_map(|kv| {
                let (name, val) = kv.split_once('=')?;
                (name == k).then_some(Value::Str(Cow::Borrowed(val)))
            }),
            _ => owned(p.env.join(" ")),
        },
        F::ProcDuration => (p.start_ts != 0 && ev.ts >= p.start_ts)
            .then(|| Value::Num((ev.ts - p.start_ts) as i64)),
        F::ProcSname => {
            if !p.sname.is_empty() {
                s(&p.sname)
            } else if p.sid != 0 && p.sid == p.vpid {
                s(&p.comm)
            } else {
                None
            }
        }
        F::ProcIsVpgidLeader => (p.vpgid != 0).then_some(Value::Bool(p.vpid == p.vpgid)),
        F::ProcVpgid => (p.vpgid != 0).then_some(Value::Num(p.vpgid as i64)),
        F::ProcVpgidName => {
            if !p.vpgid_name.is_empty() {
                s(&p.vpgid_name)
            } else if p.vpgid != 0 && p.vpgid == p.vpid {
                s(&p.comm)
            } else {
                None
            }
        }
        F::ProcVpgidExe => {
            if !p.vpgid_exe.is_empty() {
                s(&p.vpgid_exe)
            } else if p.vpgid != 0 && p.vpgid == p.vpid {
                s(&p.exe)
            } else {
                None
            }
        }
        F::ProcIsExeUpperLayer => Some(Value::Bool(p.exe_flags.upper_layer)),
        F::ProcIsExeFromMemfd => Some(Value::Bool(p.exe_flags.memfd)),
        F::ProcIsExeWritable => Some(Value::Bool(p.exe_flags.writable)),
        F::ProcExeIno => (p.exe_ino != 0).then_some(Value::Num(p.exe_ino as i64)),
        F::ProcExeInoCtime => (p.exe_ino_ctime != 0).then_some(Value::Num(p.exe_ino_ctime as i64)),
        F::ProcExeInoMtime => (p.exe_ino_mtime != 0).then_some(Value::Num(p.exe_ino_mtime as i64)),
        F::ProcExeInoCtimeDurationProcStart => (p.exe_ino_ctime != 0
            && p.start_ts >= p.exe_ino_ctime)
            .then(|| Value::Num((p.start_ts - p.exe_ino_ctime) as i64)),
        F::ProcPname => ev.ancestors.first().and_then(|a| s(&a.comm)),
        F::ProcPexe => ev.ancestors.first().and_then(|a| s(&a.exe)),
        F::ProcPexePath => ev.ancestors.first().and_then(|a| s(&a.exepath)),
        F::ProcPcmdline => ev
            .ancestors
            .first()
            .filter(|a| !a.comm.is_empty())
            .map(|a| Value::Str(Cow::Owned(cmdline(&a.comm, &a.args)))),
        F::ProcPpidDuration => ev.ancestors.first().and_then(|a| {
            (a.start_ts != 0 && ev.ts >= a.start_ts)
                .then(|| Value::Num((ev.ts - a.start_ts) as i64))
        }),
        F::ProcAname | F::ProcAexe | F::ProcAexePath | F::ProcApid => match f.arg {
            FieldArg::Index(i) => ancestor_value(ev, f.id, i),
            _ => {
                let all: Vec<Value<'a>> = (1..=ev.ancestors.len())
                    .filter_map(|i| ancestor_value(ev, f.id, i))
                    .collect();
                (!all.is_empty()).then_some(Value::Any(all))
            }
        },
        F::ThreadTid => num(p.tid),
        F::ThreadCapEffective => Some(Value::Str(Cow::Owned(render_caps(p.cap_effective)))),
        F::ThreadCapPermitted => Some(Value::Str(Cow::Owned(render_caps(p.cap_permitted)))),
        F::UserUid => num(p.uid),
        F::UserName => Some(user_or_na(&p.user, p.uid)),
        F::UserLoginUid => Some(Value::Num(loginuid(p.loginuid))),
        F::UserLoginName => Some(user_or_na(&p.loginname, p.loginuid)),
        F::GroupGid => num(p.gid),
        F::GroupName => Some(user_or_na(&p.group, p.gid)),
        F::FdNum => fd.map(|d| Value::Num(d.num)),
        F::FdType => fd.map(|d| Value::Str(Cow::Borrowed(d.typ.as_str()))),
        F::FdTypeChar => fd.map(|d| Value::Str(Cow::Borrowed(d.typ.typechar_str()))),
        F::FdName => fd.and_then(fd_name),
        F::FdNameRaw => fd.and_then(|d| {
            if d.nameraw.is_empty() {
                fd_name(d)
            } else {
                s(&d.nameraw)
            }
        }),
        F::FdDirectory => fd.and_then(|d| match d.typ {
            FdType::File => dirname(&d.name).map(|x| Value::Str(Cow::Borrowed(x))),
            FdType::Directory => s(&d.name),
            _ => None,
        }),
        F::FdFilename => fd.and_then(|d| match d.typ {
            FdType::File if !d.name.is_empty() => s(basename(&d.name)),
            _ => None,
        }),
        // libsinsp `get_l4proto`: the protocol of an inet socket that has a role (a
        // client or a server); every other fd, and a socket just created, reads `<NA>`.
        F::FdL4Proto => fd.map(|d| {
            let known = fd_is_ip(d)
                && d.l4proto != crate::L4Proto::Unknown
                && (ev.event_type() != EventType::Socket || d.l4proto == crate::L4Proto::Raw);
            Value::Str(Cow::Borrowed(if known { d.l4proto.as_str() } else { NA }))
        }),
        // libsinsp `TYPE_SOCKFAMILY`: `ip` or `unix`, nothing for any other fd.
        F::FdSockFamily => fd.and_then(|d| match d.typ {
            FdType::Ipv4 | FdType::Ipv6 => Some(Value::Str(Cow::Borrowed("ip"))),
            FdType::Unix => Some(Value::Str(Cow::Borrowed("unix"))),
            _ => None,
        }),
        F::FdIp | F::FdNet => fd.and_then(|d| both(ip_opt(d.cip), ip_opt(d.sip))),
        F::FdCip | F::FdCnet => fd.and_then(|d| ip_opt(d.cip)),
        F::FdSip | F::FdSnet => fd.and_then(|d| ip_opt(d.sip)),
        F::FdLip | F::FdLnet => fd.and_then(|d| ip_opt(local_remote(d).0 .0)),
        F::FdRip | F::FdRnet => fd.and_then(|d| ip_opt(local_remote(d).1 .0)),
        F::FdPort => fd.and_then(|d| both(port_opt(d.cport), port_opt(d.sport))),
        F::FdCport => fd.and_then(|d| port_opt(d.cport)),
        F::FdSport => fd.and_then(|d| port_opt(d.sport)),
        F::FdLport => fd.and_then(|d| port_opt(local_remote(d).0 .1)),
        F::FdRport => fd.and_then(|d| port_opt(local_remote(d).1 .1)),
        F::FdCipName => fd.and_then(|d| s(&d.cip_name)),
        F::FdSipName => fd.and_then(|d| s(&d.sip_name)),
        F::FdLipName => fd.and_then(|d| {
            s(if d.is_client {
                &d.cip_name
            } else {
                &d.sip_name
            })
        }),
        F::FdRipName => fd.and_then(|d| {
            s(if d.is_client {
                &d.sip_name
            } else {
                &d.cip_name
            })
        }),
        F::FdConnected => fd.map(|d| Value::Bool(d.connected)),
        F::FdNameChanged => Some(Value::Bool(matches!(
            &ev.args,
            Args::Send { addr, .. } if !addr.is_empty()
        ))),
        F::FdTypes => match f.arg {
            FieldArg::None => fd.map(|d| Value::Str(Cow::Borrowed(d.typ.as_str()))),
            _ => None,
        },
        F::ContainerId => s(&c.id),
        F::ContainerName => s(&c.name),
        F::ContainerImage => owned(c.image()),
        F::ContainerImageRepository => s(&c.image_repository),
        F::ContainerImageTag => s(&c.image_tag),
        F::ContainerImageDigest => s(&c.image_digest),
        F::ContainerPrivileged => c.privileged.map(Value::Bool),
        F::ContainerStartTs => (c.start_ts != 0).then_some(Value::Num(c.start_ts as i64)),
        F::ContainerRuntime => s(&c.runtime),
        F::ContainerMounts => {
            if c.id.is_empty() {
                return None;
            }
            let all: Vec<String> = c
                .mounts
                .iter()
                .map(|m| {
                    format!(
                        "{}:{}:{}:{}:{}",
                        m.source, m.dest, m.mode, m.rw, m.propagation
                    )
                })
                .collect();
            Some(Value::Str(Cow::Owned(all.join(","))))
        }
        F::ContainerMountDest => match &f.arg {
            FieldArg::Key(k) => mount_lookup(ev, k, true),
            _ => None,
        },
        F::ContainerMountSource => match &f.arg {
            FieldArg::Key(k) => mount_lookup(ev, k, false),
            _ => None,
        },
        F::ContainerInfo => {
            if c.id.is_empty() {
                None
            } else {
                Some(Value::Str(Cow::Owned(format!(
                    "container_id={} container_name={} container_image_repository={} container_image_tag={}",
                    c.id,
                    or_na(&c.name),
                    or_na(&c.image_repository),
                    or_na(&c.image_tag)
                ))))
            }
        }
        F::K8sNsName => s(&c.k8s_ns),
        F::K8sPodName => s(&c.k8s_pod),
        F::K8sPodUid => s(&c.k8s_pod_uid),
        F::K8sPodLabel => match &f.arg {
            FieldArg::Key(k) => c.k8s_pod_labels.get(k.as_str()).and_then(|v| s(v)),
            _ => None,
        },
        F::K8sPodLabels => (!c.k8s_pod_labels.is_empty()).then(|| {
            Value::Str(Cow::Owned(
                c.k8s_pod_labels
                    .iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ))
        }),
    }
}

fn or_na(v: &str) -> &str {
    if v.is_empty() {
        NA
    } else {
        v
    }
}

/// Render a field for an output string (`<NA>` when missing).
pub fn render_field(ev: &Event, f: &FieldRef) -> String {
    match extract(ev, f) {
        Some(v) => v.render().into_owned(),
        None => NA.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ancestor, Container, EventTypeField, L4Proto, Process};

    fn ev() -> Event {
        Event {
            ts: 1_700_000_000_123_456_789,
            typ: EventTypeField(EventType::Execve),
            process: Process {
                pid: 42,
                comm: "bash".into(),
                exe: "/bin/bash".into(),
                exepath: "/usr/bin/bash".into(),
                args: vec!["-c".into(), "id".into()],
                tty: 34816,
                loginuid: u32::MAX,
                cap_effective: (1 << 21) | (1 << 16),
                start_ts: 1_700_000_000_000_000_000,
                ..Default::default()
            }
            .into(),
            ancestors: vec![
                Ancestor {
                    pid: 41,
                    comm: "runc".into(),
                    exe: "runc".into(),
                    args: vec!["init".into()],
                    ..Default::default()
                },
                Ancestor {
                    pid: 1,
                    comm: "containerd-shim".into(),
                    ..Default::default()
                },
            ]
            .into(),
            container: Container {
                id: "abc".into(),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        }
    }

    fn get(ev: &Event, name: &str) -> Option<String> {
        let f = parse_field_ref(name).expect(name);
        extract(ev, &f).map(|v| v.render().into_owned())
    }

    #[test]
    fn kubernetes_pod_fields() {
        let mut ev = ev();
        assert_eq!(get(&ev, "k8s.pod.uid"), None);
        assert_eq!(get(&ev, "k8s.pod.label[app]"), None);
        std::sync::Arc::make_mut(&mut ev.container).k8s_pod_uid = "5f1c".into();
        std::sync::Arc::make_mut(&mut ev.container)
            .k8s_pod_labels
            .insert("app".into(), "web".into());
        std::sync::Arc::make_mut(&mut ev.container)
            .k8s_pod_labels
            .insert("tier".into(), "front".into());
        assert_eq!(get(&ev, "k8s.pod.uid").as_deref(), Some("5f1c"));
        assert_eq!(get(&ev, "k8s.pod.label[app]").as_deref(), Some("web"));
        assert_eq!(get(&ev, "k8s.pod.label[nope]"), None);
        assert_eq!(
            get(&ev, "k8s.pod.labels").as_deref(),
            Some("app:web,tier:front")
        );
    }

    #[test]
    fn table_ids_match_positions() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert_eq!(f.id as usize, i, "{}", f.name);
            assert!(lookup(f.name).is_some());
        }
    }

    #[test]
    fn process_fields() {
        let mut e = ev();
        assert_eq!(get(&e, "proc.name").as_deref(), Some("bash"));
        assert_eq!(get(&e, "proc.cmdline").as_deref(), Some("bash -c id"));
        assert_eq!(get(&e, "proc.args").as_deref(), Some("-c id"));
        assert_eq!(get(&e, "proc.pname").as_deref(), Some("runc"));
        assert_eq!(get(&e, "proc.pcmdline").as_deref(), Some("runc init"));
        assert_eq!(get(&e, "proc.aname[0]").as_deref(), Some("bash"));
        assert_eq!(get(&e, "proc.aname[2]").as_deref(), Some("containerd-shim"));
        assert_eq!(get(&e, "proc.aname[3]"), None);
        assert_eq!(
            get(&e, "proc.aname").as_deref(),
            Some("runc,containerd-shim")
        );
        assert_eq!(get(&e, "user.loginuid").as_deref(), Some("-1"));
        assert_eq!(get(&e, "proc.duration").as_deref(), Some("123456789"));
        assert_eq!(
            get(&e, "thread.cap_effective").as_deref(),
            Some("CAP_SYS_MODULE CAP_SYS_ADMIN")
        );
        assert_eq!(get(&e, "evt.dir").as_deref(), Some("<"));
        assert_eq!(get(&e, "evt.time").as_deref(), Some("22:13:20.123456789"));
        assert_eq!(get(&e, "evt.num"), None);
        assert_eq!(get(&e, "evt.arg.flags").as_deref(), Some("0"));
        std::sync::Arc::make_mut(&mut e.process).exe_flags.overlay = true;
        assert_eq!(get(&e, "evt.arg.flags").as_deref(), Some("EXE_LOWER_LAYER"));
    }

    #[test]
    fn socket_fields() {
        let mut e = ev();
        e.typ = EventTypeField(EventType::Connect);
        e.fd = Some(Fd {
            num: 3,
            typ: FdType::Ipv4,
            l4proto: L4Proto::Tcp,
            cip: Some("10.0.0.2".parse().unwrap()),
            cport: Some(40000),
            sip: Some("198.51.100.10".parse().unwrap()),
            sport: Some(443),
            is_client: true,
            ..Default::default()
        });
        assert_eq!(
            get(&e, "fd.name").as_deref(),
            Some("10.0.0.2:40000->198.51.100.10:443")
        );
        assert_eq!(get(&e, "fd.lport").as_deref(), Some("40000"));
        assert_eq!(get(&e, "fd.rport").as_deref(), Some("443"));
        assert_eq!(get(&e, "fd.rip").as_deref(), Some("198.51.100.10"));
        assert_eq!(get(&e, "fd.typechar").as_deref(), Some("4"));
        assert_eq!(get(&e, "fd.l4proto").as_deref(), Some("tcp"));
        assert_eq!(get(&e, "fd.directory"), None);
    }

    #[test]
    fn open_fields() {
        let mut e = ev();
        e.typ = EventTypeField(EventType::Openat);
        e.res = 3;
        e.args = Args::Open {
            name: "/var/log/syslog".into(),
            flags: 0o1101,
            mode: 0o644,
            dirfd: -100,
        };
        e.fd = Some(Fd {
            num: 3,
            name: "/var/log/syslog".into(),
            ..Default::default()
        });
        assert_eq!(
            get(&e, "evt.arg.flags").as_deref(),
            Some("O_TRUNC|O_CREAT|O_WRONLY")
        );
        assert_eq!(get(&e, "evt.is_open_write").as_deref(), Some("true"));
        assert_eq!(get(&e, "evt.is_open_read").as_deref(), Some("false"));
        assert_eq!(get(&e, "fd.directory").as_deref(), Some("/var/log"));
        assert_eq!(get(&e, "fd.filename").as_deref(), Some("syslog"));
        assert_eq!(get(&e, "evt.arg[2]").as_deref(), Some("/var/log/syslog"));
        assert_eq!(get(&e, "evt.arg.mode").as_deref(), Some("0644"));
        assert_eq!(get(&e, "evt.res").as_deref(), Some("SUCCESS"));
        e.res = -2;
        assert_eq!(get(&e, "evt.res").as_deref(), Some("ENOENT"));
        assert_eq!(get(&e, "evt.rawres").as_deref(), Some("-2"));
    }

    #[test]
    fn field_ref_parsing() {
        assert!(matches!(
            parse_field_ref("proc.nmae"),
            Err(FieldError::Unknown(_))
        ));
        assert!(matches!(
            parse_field_ref("proc.name[1]"),
            Err(FieldError::UnexpectedArg(_))
        ));
        assert!(matches!(
            parse_field_ref("proc.aname[x]"),
            Err(FieldError::BadArg(..))
        ));
        assert!(matches!(
            parse_field_ref("evt.arg"),
            Err(FieldError::MissingArg(..))
        ));
        let r = parse_field_ref("evt.arg[0]").unwrap();
        assert_eq!(r.arg, FieldArg::Index(0));
        assert_eq!(r.to_string(), "evt.arg[0]");
        let r = parse_field_ref("evt.arg.flags").unwrap();
        assert_eq!(r.to_string(), "evt.arg.flags");
        let r = parse_field_ref("container.mount.dest[/proc*]").unwrap();
        assert_eq!(r.arg, FieldArg::Key("/proc*".into()));
        assert_eq!(
            parse_field_ref("fd.sip.name").unwrap().id,
            FieldId::FdSipName
        );
    }

    #[test]
    fn flags_and_names() {
        assert_eq!(render_open_flags(0), "O_RDONLY");
        assert_eq!(render_open_flags(0o2 | 0o2000000), "O_RDWR|O_CLOEXEC");
        assert_eq!(res_name(-115), "EINPROGRESS");
        assert_eq!(res_name(-9999), "-9999");
        assert_eq!(cap_number("sys_admin"), Some(21));
        assert!(glob_match("/proc*", "/proc/1"));
        assert!(!glob_match("/proc*", "/pro"));
    }

    /// Source: `driver/ppm_flag_helpers.h` `open_flags_to_scap` (Linux → `PPM_O_*`),
    /// `driver/flags_table.c` `file_flags` (the order names are shown in) and
    /// `sinsp_evt::get_param_as_str` (`PT_FLAGS32`: matched bits removed, `|`-joined;
    /// `evt.arg.X` returns the resolved names, `sinsp_filtercheck_event.cpp` `TYPE_ARGSTR`).
    #[test]
    fn open_flags_read_as_libsinsp_resolves_them() {
        let cases: &[(u32, &str)] = &[
            (0, "O_RDONLY"),
            (0o1, "O_WRONLY"),
            (0o2, "O_RDWR"),
            (0o3, "O_RDONLY"), // access mode 3: the drivers' `default:` branch
            (0o1101, "O_TRUNC|O_CREAT|O_WRONLY"),
            (0o2101, "O_APPEND|O_CREAT|O_WRONLY"),
            (0o2000000, "O_RDONLY|O_CLOEXEC"),
            (0o100000 | 0o2000000, "O_LARGEFILE|O_RDONLY|O_CLOEXEC"),
            // O_DSYNC alone also sets PPM_O_SYNC (`flags & O_SYNC` tests any bit)
            (0o10001, "O_SYNC|O_DSYNC|O_WRONLY"),
            (0o4010001, "O_SYNC|O_DSYNC|O_WRONLY"),
            // O_DIRECTORY alone also sets PPM_O_TMPFILE (`flags & O_TMPFILE` likewise)
            (0o200000, "O_DIRECTORY|O_RDONLY|O_TMPFILE"),
            (0o20200002, "O_DIRECTORY|O_RDWR|O_TMPFILE"),
            // no PPM bit: O_NOFOLLOW, O_NOATIME, O_PATH, O_NOCTTY, O_ASYNC
            (
                0o400000 | 0o1000000 | 0o10000000 | 0o400 | 0o20000,
                "O_RDONLY",
            ),
            (
                0o200 | 0o4000 | 0o40000,
                "O_DIRECT|O_NONBLOCK|O_EXCL|O_RDONLY",
            ),
        ];
        for (flags, want) in cases {
            assert_eq!(render_open_flags(*flags), *want, "flags {flags:#o}");
        }
        // `PT_UINT32` with `PF_OCT`: C's `%#o`
        assert_eq!(render_mode(0o644), "0644");
        assert_eq!(render_mode(0), "0");
    }

    /// Source: libsinsp `fdinfo.h` `CHAR_FD_*`, `sinsp_fdinfo::get_typestring`,
    /// `sinsp_fdinfo::get_l4proto` and `sinsp_filtercheck_fd.cpp` (`TYPE_L4PROTO`:
    /// `<NA>` for any fd without a known inet protocol and role; `TYPE_SOCKFAMILY`: only
    /// `ip` and `unix`); `sinsp_parser::add_socket` (a packet socket stays
    /// `SCAP_FD_UNKNOWN`, a new socket has no role yet).
    #[test]
    fn fd_kinds_read_as_libsinsp_names_them() {
        let mut e = Event {
            typ: crate::EventTypeField(EventType::Connect),
            ..Default::default()
        };
        // (kind, protocol, fd.type, fd.typechar, fd.sockfamily, fd.l4proto)
        type Case<'a> = (
            FdType,
            crate::L4Proto,
            &'a str,
            &'a str,
            Option<&'a str>,
            &'a str,
        );
        let cases: &[Case] = &[
            (FdType::File, crate::L4Proto::Unknown, "file", "f", None, NA),
            (
                FdType::Directory,
                crate::L4Proto::Unknown,
                "directory",
                "d",
                None,
                NA,
            ),
            (
                FdType::Ipv4,
                crate::L4Proto::Tcp,
                "ipv4",
                "4",
                Some("ip"),
                "tcp",
            ),
            (
                FdType::Ipv6,
                crate::L4Proto::Udp,
                "ipv6",
                "6",
                Some("ip"),
                "udp",
            ),
            (
                FdType::Ipv4,
                crate::L4Proto::Unknown,
                "ipv4",
                "4",
                Some("ip"),
                NA,
            ),
            (
                FdType::Unix,
                crate::L4Proto::Unknown,
                "unix",
                "u",
                Some("unix"),
                NA,
            ),
            (
                FdType::Netlink,
                crate::L4Proto::Unknown,
                "netlink",
                "n",
                None,
                NA,
            ),
            (FdType::Packet, crate::L4Proto::Unknown, NA, "o", None, NA),
            (FdType::Other, crate::L4Proto::Unknown, NA, "o", None, NA),
            (FdType::Pipe, crate::L4Proto::Unknown, "pipe", "p", None, NA),
            (
                FdType::Memfd,
                crate::L4Proto::Unknown,
                "memfd",
                "m",
                None,
                NA,
            ),
        ];
        for (typ, l4, name, ch, family, proto) in cases {
            e.fd = Some(Fd {
                typ: *typ,
                l4proto: *l4,
                sockfamily: "netlink".into(), // what the probe stored does not leak through
                ..Default::default()
            });
            assert_eq!(get(&e, "fd.type").as_deref(), Some(*name), "{typ:?}");
            assert_eq!(get(&e, "fd.typechar").as_deref(), Some(*ch), "{typ:?}");
            assert_eq!(typ.typechar().to_string(), typ.typechar_str());
            assert_eq!(get(&e, "fd.sockfamily").as_deref(), *family, "{typ:?}");
            assert_eq!(get(&e, "fd.l4proto").as_deref(), Some(*proto), "{typ:?}");
        }
        // a socket just created has no role: `<NA>` whatever its protocol
        e.typ = crate::EventTypeField(EventType::Socket);
        e.fd = Some(Fd {
            typ: FdType::Ipv4,
            l4proto: crate::L4Proto::Tcp,
            ..Default::default()
        });
        assert_eq!(get(&e, "fd.l4proto").as_deref(), Some(NA));
        // no fd at all: every fd field is missing
        e.fd = None;
        for f in ["fd.type", "fd.typechar", "fd.l4proto", "fd.sockfamily"] {
            assert_eq!(get(&e, f), None, "{f}");
        }
    }

    /// Source: libsinsp `sinsp_filtercheck_user.cpp` / `sinsp_filtercheck_group.cpp`
    /// (`TYPE_NAME`, `TYPE_LOGINNAME`: the table's name, `root` for id 0, else `<NA>`) and
    /// `sinsp_filtercheck_thread.cpp` (`proc.name`/`exe`/`exepath`/`cwd` are the
    /// thread's strings, so an empty one is "" and compares as such).
    #[test]
    fn names_nobody_resolved_read_as_libsinsp_gives_them() {
        let mut e = Event::default();
        std::sync::Arc::make_mut(&mut e.process).uid = 1234;
        std::sync::Arc::make_mut(&mut e.process).gid = 0;
        std::sync::Arc::make_mut(&mut e.process).loginuid = u32::MAX;
        assert_eq!(get(&e, "user.name").as_deref(), Some(NA));
        assert_eq!(get(&e, "group.name").as_deref(), Some("root"));
        assert_eq!(get(&e, "user.loginname").as_deref(), Some(NA));
        assert_eq!(get(&e, "user.loginuid").as_deref(), Some("-1"));
        std::sync::Arc::make_mut(&mut e.process).uid = 0;
        assert_eq!(get(&e, "user.name").as_deref(), Some("root"));
        std::sync::Arc::make_mut(&mut e.process).user = "www-data".into();
        assert_eq!(get(&e, "user.name").as_deref(), Some("www-data"));
        for f in ["proc.name", "proc.exe", "proc.exepath", "proc.cwd"] {
            assert_eq!(get(&e, f).as_deref(), Some(""), "{f}");
        }
    }

    /// Source: `driver/modern_bpf/.../execve.bpf.c` (parameter 20: `PPM_EXE_WRITABLE`,
    /// `PPM_EXE_UPPER_LAYER` or `PPM_EXE_LOWER_LAYER` from the overlay layer,
    /// `PPM_EXE_FROM_MEMFD`) and `flags_table.c` `execve_flags` for the order.
    #[test]
    fn exec_flags_read_as_the_modern_probe_sets_them() {
        let mut e = Event {
            typ: crate::EventTypeField(EventType::Execve),
            args: Args::Exec {
                filename: String::new(),
            },
            ..Default::default()
        };
        let f = |writable, overlay, upper_layer, memfd| crate::ExeFlags {
            writable,
            overlay,
            upper_layer,
            memfd,
            ..Default::default()
        };
        let cases = [
            (f(false, false, false, false), "0"), // a plain file, not on overlayfs
            (f(false, true, false, false), "EXE_LOWER_LAYER"),
            (f(true, true, true, false), "EXE_WRITABLE|EXE_UPPER_LAYER"),
            (f(true, false, false, true), "EXE_WRITABLE|EXE_FROM_MEMFD"),
        ];
        for (flags, want) in cases {
            std::sync::Arc::make_mut(&mut e.process).exe_flags = flags;
            assert_eq!(get(&e, "evt.arg.flags").as_deref(), Some(want), "{flags:?}");
        }
    }

    /// Source: libsinsp `sinsp_parser` (connect exit: both ends IPv4-mapped →
    /// `SCAP_FD_IPV4_SOCK` with the mapped addresses; otherwise IPv6).
    #[test]
    fn a_dual_stack_socket_talking_ipv4_reads_as_ipv4() {
        let v6 = |s: &str| Some(s.parse::<std::net::IpAddr>().expect("ip"));
        let mut e = Event {
            typ: crate::EventTypeField(EventType::Connect),
            ..Default::default()
        };
        let mut fd = Fd {
            typ: FdType::Ipv6,
            l4proto: crate::L4Proto::Tcp,
            cip: v6("::ffff:10.0.0.2"),
            cport: Some(40000),
            sip: v6("::ffff:93.184.216.34"),
            sport: Some(443),
            is_client: true,
            ..Default::default()
        };
        fd.unmap_ipv4();
        e.fd = Some(fd.clone());
        assert_eq!(get(&e, "fd.typechar").as_deref(), Some("4"));
        assert_eq!(get(&e, "fd.type").as_deref(), Some("ipv4"));
        assert_eq!(get(&e, "fd.sip").as_deref(), Some("93.184.216.34"));
        assert_eq!(
            get(&e, "fd.name").as_deref(),
            Some("10.0.0.2:40000->93.184.216.34:443")
        );
        // one end not mapped: IPv6 as it is
        let mut half = Fd {
            cip: v6("::"),
            ..fd
        };
        half.typ = FdType::Ipv6;
        half.sip = v6("::ffff:93.184.216.34");
        half.unmap_ipv4();
        assert_eq!(half.typ, FdType::Ipv6);
        assert_eq!(half.sip, v6("::ffff:93.184.216.34"));
    }
}
