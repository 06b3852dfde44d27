//! macOS: a connector's `[sandbox]` section as a seatbelt profile, the SBPL text that
//! `sandbox_init` compiles and applies to the process calling it.
//!
//! [`compile`] compiles the section with [`compile_section`], as the Linux jail does (the
//! same paths are refused, `$CONNECTOR_STATE` resolves the same way), and writes the
//! plan's binds out as rules on their host paths. macOS has no private root: a path no
//! rule names is denied, not invisible.
//!
//! | jail plan | profile |
//! |---|---|
//! | everything else | `(deny default)`, plus explicit denies of `file-map-executable`, `iokit-get-properties`, `nvram*` and `process-info*`, which `(deny default)` leaves out |
//! | the program | `process-exec`, `file-read*`, `file-map-executable` on its `literal` |
//! | loader, libraries | `file-read*`, `file-map-executable` on their `literal`s |
//! | read-only paths | `file-read*` on their `subpath`s; without `deny_exec` also `process-exec` and `file-map-executable` |
//! | state dir (not writable), certificates | `file-read*` on their `subpath`s |
//! | writable paths | `file-read* file-write*` on their `subpath`s (never exec) |
//! | device nodes | `file-read* file-write-data` on their `literal`s |
//! | `deny_exec` | no `process-exec` but the program's, no `process-fork` |
//! | network namespace | no network; with [`Egress::LoopbackProxy`] only `network-outbound` to `localhost:PORT` |
//! | tmpfs root, `/proc` | nothing: the directories above each granted path get `file-read-metadata` only |
//! | seccomp, namespaces, cgroups, uid | nothing: see spec/sandbox-platforms.md for what is weaker |
//!
//! Besides the plan, a Rust binary needs dyld and the system libraries (`/System`, where
//! the dyld shared cache lives, and `/usr/lib`: read and map executable), signals and
//! process information about itself, and a fixed list of read-only sysctls
//! ([`SYSCTL_NAMES`], [`SYSCTL_PREFIXES`]). It gets no Mach service (`mach-lookup`):
//! names are resolved by the proxy, certificates are the connector's own, and it has no
//! use for the user database.
//!
//! Seatbelt matches the path a lookup resolves to, so a path below `/etc`, `/tmp` or
//! `/var` (symlinks into `/private` on macOS) is written below `/private`, and the
//! symlink itself gets `file-read-metadata`. Every other symlink must be resolved by the
//! caller (the backend canonicalises the program and the state dir).
//!
//! Paths are written as SBPL string literals: in double quotes, with `\` and `"`
//! escaped. A path that is not UTF-8, not absolute, not normal, or holds a control
//! character is refused with a [`PlatformError`]; no path ever reaches the profile
//! outside quotes.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fmt;
use std::path::Path;

use crate::jail::{compile_section, BindAccess, BindOrigin, JailInputs, JailPlan};
use crate::manifest::SandboxSection;

use super::{refuse_control, Egress, PlatformError};

/// The sysctls a connector may read, by exact name: CPU and memory counts (the Rust
/// runtime and tokio size their thread pools from them), the page size, the CPU type
/// (libSystem and dyld), the OS version (availability checks), and the user stack base
/// (pthread).
pub const SYSCTL_NAMES: [&str; 22] = [
    "hw.activecpu",
    "hw.cpufamily",
    "hw.cpusubtype",
    "hw.cputype",
    "hw.logicalcpu",
    "hw.logicalcpu_max",
    "hw.memsize",
    "hw.ncpu",
    "hw.nperflevels",
    "hw.pagesize",
    "hw.pagesize_compat",
    "hw.physicalcpu",
    "hw.physicalcpu_max",
    "kern.osproductversion",
    "kern.osrelease",
    "kern.ostype",
    "kern.osvariant_status",
    "kern.osversion",
    "kern.secure_kernel",
    "kern.usrstack64",
    "kern.version",
    "sysctl.proc_cputype",
];

/// The sysctls a connector may read, by prefix: CPU feature flags (`std_detect`, ring
/// and BLAKE3 choose their code from them) and the per-performance-level CPU counts.
pub const SYSCTL_PREFIXES: [&str; 2] = ["hw.optional.", "hw.perflevel"];

/// The system paths dyld loads from: the dyld shared cache lives below `/System`, dyld
/// itself and the libSystem stubs in `/usr/lib`. Read and map executable.
const SYSTEM_LIBRARIES: [&str; 2] = ["/System", "/usr/lib"];

/// The top-level symlinks into `/private`.
const FIRMLINKS: [&str; 3] = ["/etc", "/tmp", "/var"];

/// A seatbelt profile (SBPL) built by [`compile`]: every path in it is quoted and free of
/// NUL, so it can be passed to `sandbox_init` as a C string as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatbeltProfile(String);

impl SeatbeltProfile {
    /// The profile text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The profile as the C string `sandbox_init` takes.
    pub fn to_c_string(&self) -> CString {
        // `compile` refuses every path holding a NUL and writes nothing else that could
        // hold one; dropping NULs here only makes that visible, so `new` cannot fail.
        CString::new(self.0.replace('\0', "")).unwrap_or_default()
    }
}

impl fmt::Display for SeatbeltProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Compiles `sandbox` for the program and state dir of `inputs` (host paths, already
/// canonical; on macOS the binary has no interpreter and usually no libraries outside
/// the system's) into a seatbelt profile, with network only as `egress` allows. See the
/// module docs.
pub fn compile(
    sandbox: &SandboxSection,
    inputs: &JailInputs,
    egress: Egress,
) -> Result<SeatbeltProfile, PlatformError> {
    let plan = compile_section(sandbox, inputs).map_err(|source| PlatformError::CompileJail { source })?;
    from_plan(&plan, sandbox.deny_exec, egress)
}

/// An SBPL path filter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Filter {
    /// The real host path, unquoted.
    path: String,
    /// `subpath` (the path and everything below it) rather than `literal`.
    subpath: bool,
}

impl Filter {
    fn literal(path: &str) -> Filter {
        Filter { path: path.to_owned(), subpath: false }
    }

    fn subpath(path: &str) -> Filter {
        Filter { path: path.to_owned(), subpath: true }
    }

    fn sbpl(&self) -> String {
        format!("({} {})", if self.subpath { "subpath" } else { "literal" }, quote(&self.path))
    }
}

/// The filters of each allow rule.
#[derive(Debug, Default)]
struct Grants {
    exec: BTreeSet<Filter>,
    read: BTreeSet<Filter>,
    write: BTreeSet<Filter>,
    devices: BTreeSet<Filter>,
    map_executable: BTreeSet<Filter>,
    /// Paths whose metadata alone is readable: the directories above granted paths and
    /// the firmlink symlinks used.
    metadata: BTreeSet<String>,
}

fn from_plan(plan: &JailPlan, deny_exec: bool, egress: Egress) -> Result<SeatbeltProfile, PlatformError> {
    let mut grants = Grants::default();
    for (source, _, access, origin) in plan.binds() {
        let (path, firmlink) = host_path(source)?;
        grants.metadata.extend(firmlink.map(str::to_owned));
        let path = path.as_str();
        match (access, origin) {
            (_, BindOrigin::Program) => {
                grants.exec.insert(Filter::literal(path));
                grants.read.insert(Filter::literal(path));
                grants.map_executable.insert(Filter::literal(path));
            }
            (_, BindOrigin::Interpreter | BindOrigin::Library) => {
                grants.read.insert(Filter::literal(path));
                grants.map_executable.insert(Filter::literal(path));
            }
            (BindAccess::Device, _) => {
                grants.devices.insert(Filter::literal(path));
            }
            (BindAccess::ReadWrite, _) => {
                grants.write.insert(Filter::subpath(path));
            }
            (BindAccess::ReadOnly, BindOrigin::ReadonlyPath) => {
                grants.read.insert(Filter::subpath(path));
                if !deny_exec {
                    grants.exec.insert(Filter::subpath(path));
                    grants.map_executable.insert(Filter::subpath(path));
                }
            }
            (BindAccess::ReadOnly, _) => {
                grants.read.insert(Filter::subpath(path));
            }
        }
    }
    for system in SYSTEM_LIBRARIES {
        grants.read.insert(Filter::subpath(system));
        grants.map_executable.insert(Filter::subpath(system));
    }
    let granted: Vec<String> = [&grants.exec, &grants.read, &grants.write, &grants.devices, &grants.map_executable]
        .into_iter()
        .flatten()
        .map(|f| f.path.clone())
        .collect();
    for path in &granted {
        grants.metadata.extend(ancestors(path));
    }
    Ok(SeatbeltProfile(write_profile(&grants, deny_exec, egress)))
}

fn write_profile(grants: &Grants, deny_exec: bool, egress: Egress) -> String {
    let mut out = String::new();
    out.push_str("(version 1)\n");
    out.push_str("; generated by fcp-policy from a connector's [sandbox] section (spec/sandbox-platforms.md)\n");
    out.push_str("(deny default)\n");
    out.push_str("; what (deny default) leaves out\n");
    for operation in ["file-map-executable", "iokit-get-properties", "nvram*", "process-info*"] {
        out.push_str(&format!("(deny {operation})\n"));
    }
    out.push_str("\n; the connector's own process\n");
    out.push_str("(allow signal (target self))\n");
    out.push_str("(allow process-info-pidinfo process-info-setcontrol (target self))\n");

    let filters = |set: &BTreeSet<Filter>| set.iter().map(Filter::sbpl).collect::<Vec<_>>();
    let exec_comment =
        if deny_exec { "exec: the program only (deny_exec)" } else { "exec: the program and the read-only paths" };
    rule(&mut out, exec_comment, "process-exec", &filters(&grants.exec));
    if deny_exec {
        out.push_str("\n; fork: denied (deny_exec)\n");
    } else {
        out.push_str("\n; fork\n(allow process-fork)\n");
    }
    rule(
        &mut out,
        "read: the program, its runtime files, the read-only paths, the state dir, the certificates and the system libraries",
        "file-read*",
        &filters(&grants.read),
    );
    rule(&mut out, "read and write: the writable paths", "file-read* file-write*", &filters(&grants.write));
    rule(&mut out, "device nodes", "file-read* file-write-data", &filters(&grants.devices));
    let map_comment = if deny_exec {
        "map executable: the program, its runtime files and the system libraries"
    } else {
        "map executable: the program, its runtime files, the read-only paths and the system libraries"
    };
    rule(&mut out, map_comment, "file-map-executable", &filters(&grants.map_executable));
    let metadata: Vec<String> = grants.metadata.iter().map(|p| format!("(literal {})", quote(p))).collect();
    rule(
        &mut out,
        "metadata only: the directories above granted paths, and the symlinks into /private",
        "file-read-metadata",
        &metadata,
    );
    let sysctls: Vec<String> = SYSCTL_NAMES
        .iter()
        .map(|n| format!("(sysctl-name {})", quote(n)))
        .chain(SYSCTL_PREFIXES.iter().map(|p| format!("(sysctl-name-prefix {})", quote(p))))
        .collect();
    rule(&mut out, "sysctls the Rust runtime, libSystem and CPU feature detection read", "sysctl-read", &sysctls);
    out.push_str("\n; mach-lookup: none (the proxy resolves names; no keychain, no user database)\n");
    match egress {
        Egress::None => out.push_str("; network: none\n"),
        Egress::LoopbackProxy { port } => rule(
            &mut out,
            "network: the egress proxy on loopback, nothing else",
            "network-outbound",
            &[format!("(remote ip {})", quote(&format!("localhost:{port}")))],
        ),
    }
    out
}

/// Appends `(allow OPERATIONS FILTER…)` after a comment; with no filter it appends only
/// the comment saying so, since an allow without a filter would allow everything.
fn rule(out: &mut String, comment: &str, operations: &str, filters: &[String]) {
    out.push('\n');
    if filters.is_empty() {
        out.push_str(&format!("; {comment}: none\n"));
        return;
    }
    out.push_str(&format!("; {comment}\n(allow {operations}"));
    for filter in filters {
        out.push_str("\n    ");
        out.push_str(filter);
    }
    out.push_str(")\n");
}

/// `path` checked (UTF-8, absolute, normal, no control character) and rewritten to the
/// path seatbelt sees (below `/private` for the firmlinks), with the firmlink used.
fn host_path(path: &Path) -> Result<(String, Option<&'static str>), PlatformError> {
    let text = path.to_str().ok_or_else(|| PlatformError::NotUtf8 { path: path.to_path_buf() })?;
    check_path(text)?;
    for link in FIRMLINKS {
        if text.strip_prefix(link).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')) {
            return Ok((format!("/private{text}"), Some(link)));
        }
    }
    Ok((text.to_owned(), None))
}

/// Refuses a path that is not absolute and normal (`/`, or `/` followed by non-empty
/// components that are neither `.` nor `..`, with no trailing `/`), or that holds a
/// control character.
fn check_path(path: &str) -> Result<(), PlatformError> {
    refuse_control(path)?;
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PlatformError::RelativePath { path: path.to_owned() });
    };
    if rest.is_empty() {
        return Ok(());
    }
    if rest.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(PlatformError::UnnormalPath { path: path.to_owned() });
    }
    Ok(())
}

/// The proper ancestors of an absolute normal path, `/` first.
fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut end = 0;
    while let Some(next) = path.get(end + 1..).and_then(|rest| rest.find('/')) {
        end += 1 + next;
        out.push(path.get(..end).unwrap_or_default().to_owned());
    }
    if path != "/" {
        out.insert(0, "/".to_owned());
    }
    out
}

/// `text` as an SBPL string literal: in double quotes, with `\` and `"` escaped. The
/// caller has refused control characters.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU16;
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;
    use crate::jail::{Arch, Binary, RuntimeFile};
    use crate::manifest::{SandboxPath, SandboxProfile};

    fn section() -> SandboxSection {
        SandboxSection {
            profile: SandboxProfile::Strict,
            memory_mb: 64,
            cpu_percent: 20,
            wall_clock_timeout_ms: 1000,
            fs_readonly_paths: vec![SandboxPath::Absolute("/usr/share/zoneinfo".into())],
            fs_writable_paths: vec![SandboxPath::ConnectorState(String::new())],
            deny_exec: true,
            deny_ptrace: true,
        }
    }

    fn inputs() -> JailInputs {
        JailInputs {
            tcp_connect: None,
            network_files: Vec::new(),
            binary: Binary { path: PathBuf::from("/opt/fcp/bin/fcp-echo"), interpreter: None, libraries: Vec::new() },
            state_dir: PathBuf::from("/var/db/fcp/state/fcp.echo"),
            arch: Arch::Aarch64,
        }
    }

    fn profile_with(edit: impl FnOnce(&mut SandboxSection)) -> Result<SeatbeltProfile, PlatformError> {
        let mut s = section();
        edit(&mut s);
        compile(&s, &inputs(), Egress::None)
    }

    /// The `(allow OPERATIONS …)` rule with exactly these operations, as its filters.
    fn allowed<'a>(profile: &'a SeatbeltProfile, operations: &str) -> Vec<&'a str> {
        let head = format!("(allow {operations}");
        let Some(start) = profile.as_str().find(&format!("{head}\n")) else { return Vec::new() };
        profile.as_str()[start + head.len()..]
            .lines()
            .skip(1)
            .map(str::trim)
            .take_while(|l| !l.is_empty())
            .map(|l| l.strip_suffix("))").map_or(l, |f| &l[..f.len() + 1]))
            .collect()
    }

    /// Tokenises SBPL as far as this module writes it: parentheses, string literals with
    /// `\\` and `\"` escapes, bare words, `;` comments. Fails on an unbalanced
    /// parenthesis, an unterminated string, an unknown escape, a control character in a
    /// string, or a bare word that could be a path. Returns the decoded strings.
    fn parse_sbpl(text: &str) -> Result<Vec<String>, String> {
        let mut depth = 0usize;
        let mut strings = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.checked_sub(1).ok_or("unbalanced )")?,
                ';' => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '"' => {
                    let mut s = String::new();
                    loop {
                        match chars.next().ok_or("unterminated string")? {
                            '"' => break,
                            '\\' => match chars.next().ok_or("unterminated escape")? {
                                e @ ('\\' | '"') => s.push(e),
                                e => return Err(format!("unknown escape \\{e}")),
                            },
                            c if c.is_control() => return Err(format!("control character {c:?} in a string")),
                            c => s.push(c),
                        }
                    }
                    strings.push(s);
                }
                c if c.is_whitespace() => {}
                c => {
                    let mut word = String::from(c);
                    while let Some(&n) = chars.peek() {
                        if n.is_whitespace() || matches!(n, '(' | ')' | '"' | ';') {
                            break;
                        }
                        word.push(n);
                        chars.next();
                    }
                    let known =
                        word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*');
                    if !known {
                        return Err(format!("bare word {word:?}"));
                    }
                }
            }
        }
        if depth != 0 {
            return Err(format!("{depth} unclosed ("));
        }
        Ok(strings)
    }

    #[test]
    fn strings_are_quoted_with_backslash_and_quote_escaped() {
        assert_eq!(quote("/a/b"), r#""/a/b""#);
        assert_eq!(quote(r#"/a "b" \c\"#), r#""/a \"b\" \\c\\""#);
        assert_eq!(quote(r"/x\"), r#""/x\\""#, "a trailing backslash cannot escape the closing quote");
        assert_eq!(quote("/ünï (cödé); x"), "\"/ünï (cödé); x\"");
        assert_eq!(parse_sbpl(&format!("(subpath {})", quote(r#"/a"b\c)"#))), Ok(vec![r#"/a"b\c)"#.to_owned()]));
    }

    #[test]
    fn the_c_string_is_the_profile() {
        let profile = profile_with(|_| {}).expect("profile");
        assert_eq!(profile.to_c_string().to_str(), Ok(profile.as_str()));
    }

    #[test]
    fn bad_paths_are_refused() {
        let check = |p: &str| host_path(Path::new(p));
        assert_eq!(check("relative/x"), Err(PlatformError::RelativePath { path: "relative/x".into() }));
        assert_eq!(check(""), Err(PlatformError::RelativePath { path: String::new() }));
        assert_eq!(check("/a/\0/b"), Err(PlatformError::NulInPath { path: "/a/\0/b".into() }));
        assert_eq!(
            check("/a\n(allow default)"),
            Err(PlatformError::ControlCharacter { path: "/a\n(allow default)".into() })
        );
        for unnormal in ["/a/../b", "/a/./b", "//a", "/a//b", "/a/", "/..", "/."] {
            assert_eq!(check(unnormal), Err(PlatformError::UnnormalPath { path: unnormal.into() }), "{unnormal}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let bytes = std::ffi::OsStr::from_bytes(b"/a/\xff");
            assert_eq!(host_path(Path::new(bytes)), Err(PlatformError::NotUtf8 { path: PathBuf::from(bytes) }));
        }
        assert_eq!(check("/"), Ok(("/".to_owned(), None)));
        assert_eq!(check("/a b/\"c\""), Ok(("/a b/\"c\"".to_owned(), None)));
    }

    #[test]
    fn firmlinks_are_written_below_private() {
        assert_eq!(host_path(Path::new("/var/db/x")), Ok(("/private/var/db/x".to_owned(), Some("/var"))));
        assert_eq!(host_path(Path::new("/tmp")), Ok(("/private/tmp".to_owned(), Some("/tmp"))));
        assert_eq!(host_path(Path::new("/etc/ssl/certs")), Ok(("/private/etc/ssl/certs".to_owned(), Some("/etc"))));
        assert_eq!(host_path(Path::new("/variable")), Ok(("/variable".to_owned(), None)));
        assert_eq!(host_path(Path::new("/private/var/x")), Ok(("/private/var/x".to_owned(), None)));
    }

    #[test]
    fn ancestors_run_from_the_root_down() {
        assert_eq!(ancestors("/"), Vec::<String>::new());
        assert_eq!(ancestors("/a"), ["/"]);
        assert_eq!(ancestors("/private/var/db/x"), ["/", "/private", "/private/var", "/private/var/db"]);
    }

    #[test]
    fn bad_manifest_paths_and_inputs_are_refused() {
        let result = profile_with(|s| s.fs_readonly_paths = vec![SandboxPath::Absolute("/usr/../etc".into())]);
        assert!(matches!(result, Err(PlatformError::CompileJail { .. })), "{result:?}");
        let result = profile_with(|s| s.fs_readonly_paths = vec![SandboxPath::Absolute("/srv/a\nb".into())]);
        assert_eq!(result, Err(PlatformError::ControlCharacter { path: "/srv/a\nb".into() }));
        let mut relative = inputs();
        relative.state_dir = PathBuf::from("state");
        assert!(matches!(compile(&section(), &relative, Egress::None), Err(PlatformError::CompileJail { .. })));
    }

    #[test]
    fn deny_exec_allows_exec_of_the_program_only_and_no_fork() {
        let profile = profile_with(|s| s.deny_exec = true).expect("profile");
        assert_eq!(allowed(&profile, "process-exec"), [r#"(literal "/opt/fcp/bin/fcp-echo")"#]);
        assert!(!profile.as_str().contains("(allow process-fork)"));
        assert_eq!(
            allowed(&profile, "file-map-executable"),
            [r#"(subpath "/System")"#, r#"(literal "/opt/fcp/bin/fcp-echo")"#, r#"(subpath "/usr/lib")"#],
            "sorted by path"
        );

        let profile = profile_with(|s| s.deny_exec = false).expect("profile");
        assert_eq!(
            allowed(&profile, "process-exec"),
            [r#"(literal "/opt/fcp/bin/fcp-echo")"#, r#"(subpath "/usr/share/zoneinfo")"#]
        );
        assert!(profile.as_str().contains("\n(allow process-fork)\n"));
    }

    #[test]
    fn only_writable_paths_are_writable_and_the_state_dir_resolves() {
        let profile = profile_with(|s| {
            s.fs_writable_paths = vec![SandboxPath::ConnectorState("cache".into())];
        })
        .expect("profile");
        assert_eq!(
            allowed(&profile, "file-read* file-write*"),
            [r#"(subpath "/private/var/db/fcp/state/fcp.echo/cache")"#]
        );
        assert!(allowed(&profile, "file-read*").contains(&r#"(subpath "/private/var/db/fcp/state/fcp.echo")"#));
        assert!(allowed(&profile, "file-read-metadata").contains(&r#"(literal "/var")"#));
        assert_eq!(profile.as_str().matches("file-write*").count(), 1, "one write rule");

        let profile = profile_with(|s| s.fs_writable_paths = Vec::new()).expect("profile");
        assert_eq!(allowed(&profile, "file-read* file-write*"), Vec::<&str>::new());
        assert!(profile.as_str().contains("; read and write: the writable paths: none\n"));
    }

    #[test]
    fn network_is_the_proxy_or_nothing() {
        let none = profile_with(|_| {}).expect("profile");
        assert!(!none.as_str().contains("(allow network"));
        assert!(none.as_str().contains("; network: none\n"));
        let port = NonZeroU16::new(3128).expect("non-zero");
        let proxy = compile(&section(), &inputs(), Egress::LoopbackProxy { port }).expect("profile");
        assert_eq!(allowed(&proxy, "network-outbound"), [r#"(remote ip "localhost:3128")"#]);
        assert_eq!(proxy.as_str().matches("(allow network").count(), 1);
    }

    #[test]
    fn every_allow_has_a_filter_and_mach_lookup_is_never_allowed() {
        for deny_exec in [true, false] {
            let profile = profile_with(|s| {
                s.deny_exec = deny_exec;
                s.fs_readonly_paths = Vec::new();
                s.fs_writable_paths = Vec::new();
            })
            .expect("profile");
            let lines: Vec<&str> = profile.as_str().lines().collect();
            for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.starts_with("(allow")) {
                let filtered = match *line {
                    "(allow process-fork)" => true,
                    l if l.ends_with(" (target self))") => true,
                    // A multi-line rule: its filters follow, indented.
                    l if !l.ends_with(')') => lines.get(i + 1).is_some_and(|n| n.starts_with("    (")),
                    _ => false,
                };
                assert!(filtered, "an allow with no filter: {line}");
            }
            assert!(!profile.as_str().contains("(allow mach"));
            assert!(!profile.as_str().contains("(allow default"));
            assert!(profile.as_str().starts_with("(version 1)\n"));
            assert!(lines.contains(&"(deny default)"));
            parse_sbpl(profile.as_str()).expect("well-formed");
        }
    }

    #[test]
    fn runtime_files_are_readable_and_mappable_by_their_host_path() {
        let mut with_libs = inputs();
        with_libs.binary.libraries = vec![RuntimeFile {
            jail_path: PathBuf::from("/usr/local/lib/libz.dylib"),
            host_path: PathBuf::from("/opt/homebrew/lib/libz.1.dylib"),
        }];
        let profile = compile(&section(), &with_libs, Egress::None).expect("profile");
        assert!(allowed(&profile, "file-read*").contains(&r#"(literal "/opt/homebrew/lib/libz.1.dylib")"#));
        assert!(allowed(&profile, "file-map-executable").contains(&r#"(literal "/opt/homebrew/lib/libz.1.dylib")"#));
        assert!(!profile.as_str().contains("/usr/local/lib/libz.dylib"));
    }

    /// Every string in a profile is a normal absolute path, a sysctl name or the proxy address.
    fn strings_are_paths(strings: &[String]) -> bool {
        strings.iter().all(|s| {
            check_path(s).is_ok()
                || SYSCTL_NAMES.contains(&s.as_str())
                || SYSCTL_PREFIXES.contains(&s.as_str())
                || s.starts_with("localhost:")
        })
    }

    proptest! {
        #[test]
        fn arbitrary_paths_never_panic_nor_escape_their_quotes(text in any::<String>(), rooted: bool, deny_exec: bool) {
            let path = if rooted { format!("/{text}") } else { text };
            // Directly: the path is refused, or it round-trips through one string literal.
            if let Ok((real, _)) = host_path(Path::new(&path)) {
                prop_assert_eq!(parse_sbpl(&format!("(literal {})", quote(&real))), Ok(vec![real]));
            }
            // Through the whole translation, as a read-only and as a writable path.
            for writable in [false, true] {
                let mut s = section();
                s.deny_exec = deny_exec;
                let entry = SandboxPath::Absolute(path.clone());
                if writable {
                    s.fs_writable_paths = vec![entry];
                } else {
                    s.fs_readonly_paths = vec![entry];
                }
                if let Ok(profile) = compile(&s, &inputs(), Egress::None) {
                    let strings = parse_sbpl(profile.as_str());
                    prop_assert!(strings.as_ref().is_ok_and(|s| strings_are_paths(s)), "{:?} in\n{}", strings, profile);
                }
            }
        }

        #[test]
        fn path_like_strings_never_break_the_profile(
            parts in proptest::collection::vec("[a-z\"\\\\ ()\n;.]{0,6}", 1..5),
        ) {
            let path = format!("/{}", parts.join("/"));
            let mut s = section();
            s.fs_readonly_paths = vec![SandboxPath::Absolute(path.clone())];
            match compile(&s, &inputs(), Egress::None) {
                Ok(profile) => {
                    let strings = parse_sbpl(profile.as_str());
                    prop_assert!(strings.as_ref().is_ok_and(|s| strings_are_paths(s)), "{:?} in\n{}", strings, profile);
                    let normal = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect::<Vec<_>>().join("/");
                    let expected = host_path(Path::new(&format!("/{normal}"))).map(|(real, _)| real);
                    prop_assert!(
                        expected.as_ref().is_ok_and(|e| strings.unwrap_or_default().contains(e)),
                        "{:?} is not in the profile", expected
                    );
                }
                Err(e) => prop_assert!(
                    matches!(e, PlatformError::ControlCharacter { .. } | PlatformError::CompileJail { .. }),
                    "{:?} for {:?}", e, path
                ),
            }
        }
    }
}
