//! fcp-hostile: the attacker of the escape suite (`integration/tests/escape/`), in the
//! role of Firecracker's malicious example. The tests build it as a static binary and
//! run it inside a jail with `fcp sandbox run`; each subcommand makes one attempt and
//! prints one JSON line:
//!
//! ```text
//! {"attempt":"read","result":"denied","errno":2,"path":"/etc/shadow"}
//! {"attempt":"read","result":"allowed","errno":null,"path":"/usr/lib/os-release","bytes":400,"content":"…"}
//! ```
//!
//! and exits 0. `allowed` means the kernel did what was asked; `denied` carries the
//! errno (`null` when the attempt failed without one, with an `error` text). A seccomp
//! kill ends the process with SIGSYS before it prints anything.
//!
//! Attempts use the arguments a real attacker would, so `allowed` is a real escape:
//! - files: `read PATH`, `list DIR`, `write PATH` (a new file), `symlink TARGET LINK`,
//!   `hardlink SOURCE LINK`, `rename FROM TO`;
//! - processes: `exec PATH [ARG…]`, `ptrace-parent`, `ptrace PID`, `kill PID`
//!   (SIGKILL), `fork-bomb HOLD_MS`;
//! - kernel: `mount-tmpfs DIR`, `unshare-user`, `sethostname NAME`, `keyctl`, `bpf`,
//!   `perf-event-open`, `io-uring-setup`, `userfaultfd`;
//! - network: `socket-packet`, `socket-raw`, `connect IP:PORT`, `connect-unix PATH`,
//!   `connect-abstract NAME`, `loopback` (a listener and a connection inside),
//!   `bind IP:PORT` (is the address local here?), `route IP:PORT` (a UDP socket
//!   connected there, which sends nothing: is there a route, and from which address?).
//!   The jail hides `/proc/net` and kills rtnetlink sockets and interface ioctls, so
//!   its network is seen through what it can reach;
//! - limits: `alloc MB`, `spin MS` (CPU time against wall time), `sleep MS`;
//! - what it was given: `fds [--wait-stdin]` (open descriptors), `env`, `whoami`.
//!
//! `fork-bomb` waits for a line (or EOF) on stdin, forks until fork fails, prints, then
//! holds its children until stdin closes or HOLD_MS pass. Must not: ship; it is built only for the tests.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some((&name, rest)) = args.split_first() else {
        eprintln!("usage: fcp-hostile ATTEMPT [ARG…] (see the crate docs)");
        return ExitCode::from(2);
    };
    let Some(outcome) = attempt(name, rest) else {
        eprintln!("fcp-hostile: unknown attempt or arguments: {args:?}");
        return ExitCode::from(2);
    };
    let line = outcome.to_json(name);
    let mut out = io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        return ExitCode::from(3);
    }
    drop(out);
    if let Some(hold) = outcome.hold {
        hold_until_stdin_closes(hold);
    }
    ExitCode::SUCCESS
}

/// Runs the attempt `name`, or `None` when it is unknown or its arguments are wrong.
fn attempt(name: &str, args: &[&str]) -> Option<Outcome> {
    Some(match (name, args) {
        ("read", [path]) => read(path),
        ("list", [path]) => list(path),
        ("write", [path]) => write(path),
        ("symlink", [target, link]) => {
            Outcome::of(std::os::unix::fs::symlink(target, link)).with("target", *target).with("link", *link)
        }
        ("rename", [from, to]) => Outcome::of(fs::rename(from, to)).with("from", *from).with("to", *to),
        ("hardlink", [source, link]) => {
            Outcome::of(fs::hard_link(source, link)).with("source", *source).with("link", *link)
        }
        ("exec", [path, rest @ ..]) => exec(path, rest),
        ("ptrace-parent", []) => {
            // SAFETY: getppid has no preconditions.
            let parent = unsafe { libc::getppid() };
            ptrace(parent)
        }
        ("ptrace", [pid]) => ptrace(pid.parse().ok()?),
        ("kill", [pid]) => {
            let pid: libc::pid_t = pid.parse().ok()?;
            // SAFETY: kill takes plain integers.
            let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
            Outcome::rc(rc.into()).with("pid", i64::from(pid))
        }
        ("fork-bomb", [hold_ms]) => fork_bomb(Duration::from_millis(hold_ms.parse().ok()?)),
        ("mount-tmpfs", [dir]) => mount_tmpfs(dir)?,
        ("unshare-user", []) => {
            // SAFETY: unshare takes a flag word.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
            Outcome::rc(rc.into())
        }
        ("sethostname", [host]) => {
            // SAFETY: the pointer and length describe `host`, which outlives the call.
            let rc = unsafe { libc::sethostname(host.as_ptr().cast(), host.len()) };
            Outcome::rc(rc.into()).with("name", *host)
        }
        ("keyctl", []) => keyctl(),
        ("bpf", []) => bpf(),
        ("perf-event-open", []) => perf_event_open(),
        ("io-uring-setup", []) => io_uring_setup(),
        ("userfaultfd", []) => userfaultfd(),
        ("socket-packet", []) => {
            let protocol = i32::from((libc::ETH_P_ALL as u16).to_be());
            socket(libc::AF_PACKET, libc::SOCK_RAW, protocol)
        }
        ("socket-raw", []) => socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        ("connect", [addr]) => {
            let addr: SocketAddr = addr.parse().ok()?;
            Outcome::of(TcpStream::connect_timeout(&addr, Duration::from_secs(3))).with("addr", addr.to_string())
        }
        ("connect-unix", [path]) => Outcome::of(UnixStream::connect(path)).with("path", *path),
        ("connect-abstract", [name]) => connect_abstract(name),
        ("loopback", []) => loopback(),
        ("bind", [addr]) => {
            let addr: SocketAddr = addr.parse().ok()?;
            Outcome::of(TcpListener::bind(addr)).with("addr", addr.to_string())
        }
        ("route", [addr]) => route(addr.parse().ok()?),
        ("alloc", [mb]) => alloc(mb.parse().ok()?),
        ("spin", [ms]) => spin(Duration::from_millis(ms.parse().ok()?)),
        ("sleep", [ms]) => {
            std::thread::sleep(Duration::from_millis(ms.parse().ok()?));
            Outcome::allowed()
        }
        ("fds", []) => fds(false),
        ("fds", ["--wait-stdin"]) => fds(true),
        ("env", []) => env(),
        ("whoami", []) => whoami(),
        _ => return None,
    })
}

/// How an attempt ended, and what it found.
struct Outcome {
    /// `None`: allowed. `Some(errno)`: denied (`errno` is `None` without an OS error).
    denied: Option<Option<i32>>,
    fields: Vec<(&'static str, Json)>,
    /// Keep running after printing (the fork bomb holds its children).
    hold: Option<Duration>,
}

impl Outcome {
    fn allowed() -> Outcome {
        Outcome { denied: None, fields: Vec::new(), hold: None }
    }

    fn denied(errno: i32) -> Outcome {
        Outcome { denied: Some(Some(errno)), fields: Vec::new(), hold: None }
    }

    /// Allowed on `Ok`; denied with the error's errno on `Err`.
    fn of<T>(result: io::Result<T>) -> Outcome {
        match result {
            Ok(_) => Outcome::allowed(),
            Err(e) => match e.raw_os_error() {
                Some(errno) => Outcome::denied(errno),
                None => Outcome { denied: Some(None), fields: Vec::new(), hold: None }.with("error", e.to_string()),
            },
        }
    }

    /// A raw syscall's return value: -1 is denied with `errno`; anything else allowed.
    fn rc(rc: libc::c_long) -> Outcome {
        if rc == -1 {
            Outcome::denied(last_errno())
        } else {
            Outcome::allowed()
        }
    }

    fn with(mut self, key: &'static str, value: impl Into<Json>) -> Outcome {
        self.fields.push((key, value.into()));
        self
    }

    fn to_json(&self, attempt: &str) -> String {
        let (result, errno) = match self.denied {
            None => ("allowed", Json::Null),
            Some(errno) => ("denied", errno.map_or(Json::Null, |e| Json::Int(e.into()))),
        };
        let mut fields = vec![
            ("attempt".to_owned(), Json::from(attempt)),
            ("result".to_owned(), Json::from(result)),
            ("errno".to_owned(), errno),
        ];
        fields.extend(self.fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let mut out = String::new();
        Json::Object(fields).write(&mut out);
        out
    }
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// Closes a descriptor a successful attempt returned.
fn close(fd: libc::c_long) {
    if let Ok(fd) = libc::c_int::try_from(fd) {
        // SAFETY: `fd` was just returned by the kernel to this process and nothing else owns it.
        unsafe { libc::close(fd) };
    }
}

/// Allowed when `rc` is a descriptor (closed again), denied with errno on -1.
fn fd_outcome(rc: libc::c_long) -> Outcome {
    if rc >= 0 {
        close(rc);
    }
    Outcome::rc(rc)
}

fn read(path: &str) -> Outcome {
    let mut buf = Vec::new();
    let result = fs::File::open(path).and_then(|f| f.take(64 << 10).read_to_end(&mut buf));
    let outcome = Outcome::of(result).with("path", path);
    if outcome.denied.is_some() {
        return outcome;
    }
    let shown = String::from_utf8_lossy(&buf[..buf.len().min(4096)]).into_owned();
    outcome.with("bytes", buf.len() as i64).with("content", shown)
}

fn list(path: &str) -> Outcome {
    let names = fs::read_dir(path).and_then(|entries| {
        entries.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned())).collect::<io::Result<Vec<_>>>()
    });
    match names {
        Ok(mut names) => {
            names.sort();
            Outcome::allowed()
                .with("path", path)
                .with("entries", Json::List(names.into_iter().map(Json::from).collect()))
        }
        Err(e) => Outcome::of(Err::<(), _>(e)).with("path", path),
    }
}

fn write(path: &str) -> Outcome {
    let result = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(b"fcp-hostile\n"));
    Outcome::of(result).with("path", path)
}

fn exec(path: &str, rest: &[&str]) -> Outcome {
    let Ok(program) = CString::new(path) else { return Outcome::denied(libc::EINVAL) };
    let mut args = vec![program.clone()];
    for a in rest {
        let Ok(a) = CString::new(*a) else { return Outcome::denied(libc::EINVAL) };
        args.push(a);
    }
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: `program` and every `argv` entry are NUL-terminated strings owned by `args`,
    // which outlives the call; `argv` ends with a null pointer. It returns only on failure.
    unsafe { libc::execv(program.as_ptr(), argv.as_ptr()) };
    Outcome::denied(last_errno()).with("path", path)
}

fn ptrace(pid: libc::pid_t) -> Outcome {
    // SAFETY: PTRACE_ATTACH takes a pid and ignores the address and data arguments.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    Outcome::rc(rc).with("pid", i64::from(pid))
}

fn mount_tmpfs(dir: &str) -> Option<Outcome> {
    let target = CString::new(dir).ok()?;
    // SAFETY: every string is NUL-terminated and outlives the call; data may be null.
    let rc = unsafe { libc::mount(c"tmpfs".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) };
    Some(Outcome::rc(rc.into()).with("target", dir))
}

fn keyctl() -> Outcome {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    // SAFETY: KEYCTL_GET_KEYRING_ID takes two integers (the keyring, and whether to create it).
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1) };
    Outcome::rc(rc)
}

fn bpf() -> Outcome {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries, then zeros.
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[BPF_MAP_TYPE_ARRAY, 4, 4, 1]);
    let size = std::mem::size_of_val(&attr);
    // SAFETY: `attr` is a readable buffer of `size` bytes that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_CREATE, attr.as_ptr(), size) };
    fd_outcome(rc)
}

fn perf_event_open() -> Outcome {
    const PERF_TYPE_SOFTWARE: u32 = 1;
    const PERF_ATTR_SIZE_VER0: u32 = 64;
    const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
    // struct perf_event_attr (VER0): type, size, config = PERF_COUNT_SW_CPU_CLOCK (0),
    // sample_period, sample_type, read_format, then the flag bits at byte 40: disabled,
    // exclude_kernel, exclude_hv, so that perf_event_paranoid 2 would let it through.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&PERF_TYPE_SOFTWARE.to_ne_bytes());
    attr[4..8].copy_from_slice(&PERF_ATTR_SIZE_VER0.to_ne_bytes());
    let flags: u64 = 1 | 1 << 5 | 1 << 6;
    attr[40..48].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: `attr` is a readable perf_event_attr of at least `size` bytes; pid 0 is this
    // process, cpu -1 any, group -1 none.
    let rc = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, PERF_FLAG_FD_CLOEXEC) };
    fd_outcome(rc)
}

fn io_uring_setup() -> Outcome {
    // struct io_uring_params is 120 bytes; all zero asks for defaults.
    let mut params = [0u8; 120];
    // SAFETY: `params` is a writable io_uring_params that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    fd_outcome(rc)
}

fn userfaultfd() -> Outcome {
    const UFFD_USER_MODE_ONLY: libc::c_long = 1;
    // SAFETY: userfaultfd takes a flag word.
    let rc = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::c_long::from(libc::O_CLOEXEC) | UFFD_USER_MODE_ONLY) };
    fd_outcome(rc)
}

fn socket(domain: libc::c_int, kind: libc::c_int, protocol: libc::c_int) -> Outcome {
    // SAFETY: socket takes plain integers.
    let rc = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    fd_outcome(rc.into())
}

fn connect_abstract(name: &str) -> Outcome {
    use std::os::linux::net::SocketAddrExt;
    let result =
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).and_then(|a| UnixStream::connect_addr(&a));
    Outcome::of(result).with("name", name)
}

/// A UDP socket connected to `addr`: the kernel picks a route and a source address but
/// sends nothing.
fn route(addr: SocketAddr) -> Outcome {
    let any: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let result = std::net::UdpSocket::bind(any).and_then(|s| s.connect(addr).and_then(|()| s.local_addr()));
    match result {
        Ok(local) => Outcome::allowed().with("addr", addr.to_string()).with("source", local.ip().to_string()),
        Err(e) => Outcome::of(Err::<(), _>(e)).with("addr", addr.to_string()),
    }
}

/// A listener on 127.0.0.1 and a round trip through it: what a connector may do.
fn loopback() -> Outcome {
    let result = (|| {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut client = TcpStream::connect(addr)?;
        let (mut server, _) = listener.accept()?;
        client.write_all(b"ping")?;
        let mut got = [0u8; 4];
        server.read_exact(&mut got)?;
        Ok::<_, io::Error>((addr, got == *b"ping"))
    })();
    match result {
        Ok((addr, echoed)) => Outcome::allowed().with("addr", addr.to_string()).with("echoed", echoed),
        Err(e) => Outcome::of(Err::<(), _>(e)),
    }
}

fn fork_bomb(hold: Duration) -> Outcome {
    // A safety net for a jail without a pids limit: the test fails on `allowed`.
    const MAX: u64 = 20_000;
    // The go signal: a line or EOF on stdin (the test first finds the jail's cgroup).
    let _ = io::stdin().read(&mut [0u8; 1]);
    let mut forked = 0u64;
    let errno = loop {
        if forked >= MAX {
            break None;
        }
        // SAFETY: this process is single-threaded; the child only calls pause, which is
        // async-signal-safe, until it is killed with the jail.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => break Some(last_errno()),
            0 => loop {
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            },
            _ => forked += 1,
        }
    };
    let mut outcome = match errno {
        Some(errno) => Outcome::denied(errno),
        None => Outcome::allowed(),
    };
    outcome.hold = Some(hold);
    outcome.with("forked", forked as i64)
}

/// Waits until stdin reaches EOF or `hold` passes.
fn hold_until_stdin_closes(hold: Duration) {
    let deadline = Instant::now() + hold;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let mut poll = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
        let timeout = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `poll` is one valid pollfd that outlives the call.
        let rc = unsafe { libc::poll(&mut poll, 1, timeout) };
        if rc > 0 {
            let mut buf = [0u8; 64];
            match io::stdin().read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

fn alloc(mb: u64) -> Outcome {
    const CHUNK: usize = 1 << 20;
    let mut allocated = 0u64;
    while allocated < mb {
        // SAFETY: an anonymous private mapping with no address hint and no file.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHUNK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Outcome::denied(last_errno()).with("allocated_mb", allocated as i64);
        }
        // SAFETY: `ptr` is a fresh writable mapping of CHUNK bytes, never freed; touching
        // every page makes it resident.
        unsafe { std::ptr::write_bytes(ptr.cast::<u8>(), 0xa5, CHUNK) };
        allocated += 1;
    }
    Outcome::allowed().with("allocated_mb", allocated as i64)
}

/// This process's CPU time.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a writable timespec that outlives the call.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

/// Spins one thread for `wall` of wall time and reports the CPU time it got.
fn spin(wall: Duration) -> Outcome {
    let (start, cpu_start) = (Instant::now(), cpu_time());
    let mut x = 0u64;
    while start.elapsed() < wall {
        for _ in 0..10_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    let (wall_ms, cpu_ms) = (start.elapsed().as_millis(), (cpu_time() - cpu_start).as_millis());
    Outcome::allowed().with("wall_ms", wall_ms as i64).with("cpu_ms", cpu_ms as i64)
}

/// Every descriptor open in this process (found with F_GETFD, which opens nothing).
fn fds(wait_stdin: bool) -> Outcome {
    if wait_stdin {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
    }
    let mut open = Vec::new();
    for fd in 0..4096 {
        // SAFETY: F_GETFD only reads the descriptor's flags; a closed one gives EBADF.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            open.push(fd);
        }
    }
    let targets: Vec<(String, Json)> = open
        .iter()
        .filter(|fd| **fd > 2)
        .map(|fd| {
            let target = fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_else(|e| format!("unreadable: {e}"));
            (fd.to_string(), Json::from(target))
        })
        .collect();
    let outcome = if targets.is_empty() { Outcome::denied(libc::EBADF) } else { Outcome::allowed() };
    outcome
        .with("fds", Json::List(open.into_iter().map(|fd| Json::Int(fd.into())).collect()))
        .with("beyond_stderr", Json::Object(targets))
}

/// The environment this process was given.
fn env() -> Outcome {
    let vars = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), Json::from(v.to_string_lossy().into_owned())))
        .collect();
    Outcome::allowed().with("vars", Json::Object(vars))
}

/// Real, effective and saved ids, and the capability and no_new_privs lines of
/// `/proc/self/status` (what a setuid binary would have changed).
fn whoami() -> Outcome {
    let (mut ruid, mut euid, mut suid) = (0, 0, 0);
    let (mut rgid, mut egid, mut sgid) = (0, 0, 0);
    // SAFETY: three writable uid_t that outlive the call.
    let uids = unsafe { libc::getresuid(&mut ruid, &mut euid, &mut suid) };
    // SAFETY: three writable gid_t that outlive the call.
    let gids = unsafe { libc::getresgid(&mut rgid, &mut egid, &mut sgid) };
    if uids == -1 || gids == -1 {
        return Outcome::denied(last_errno());
    }
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let lines = status
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.starts_with("Cap") || *k == "NoNewPrivs" || *k == "Seccomp")
        .map(|(k, v)| (k.to_owned(), Json::from(v.trim())))
        .collect();
    let ids = |a: u32, b: u32, c: u32| Json::List(vec![Json::Int(a.into()), Json::Int(b.into()), Json::Int(c.into())]);
    Outcome::allowed()
        .with("uids", ids(ruid, euid, suid))
        .with("gids", ids(rgid, egid, sgid))
        .with("status", Json::Object(lines))
}

/// Just enough JSON for one line of output.
#[derive(Clone, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => out.push_str(&i.to_string()),
            Json::Str(s) => write_str(s, out),
            Json::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::Str(s)
    }
}

impl From<i64> for Json {
    fn from(i: i64) -> Json {
        Json::Int(i)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}
