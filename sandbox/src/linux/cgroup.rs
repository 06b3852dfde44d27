//! A cgroup per connector with the plan's memory, CPU and pids limits: cgroup v2 when
//! the unified hierarchy carries the controllers, else cgroup v1 (`memory`, `cpu`,
//! `pids`). The cgroup is made below the supervisor's own, so whatever limits the
//! supervisor also holds its connectors.
//!
//! The parent creates the cgroup and opens its `cgroup.procs` before the clone; the
//! child writes `0` (itself) there and only then enters a new cgroup namespace, so the
//! connector's cgroup is its namespace's root. The cgroup is removed when the handle
//! drops, after the connector was reaped.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fcp_policy::jail::JailLimits;
use rustix::fs::{Mode, OFlags};

use crate::breach::LimitCounters;
use crate::error::SandboxError;

/// Where the connectors' cgroups are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CgroupSupport {
    /// The unified hierarchy: the supervisor's cgroup directory.
    V2 { parent: PathBuf },
    /// cgroup v1: the supervisor's directory in the memory, cpu and pids hierarchies.
    V1 { memory: PathBuf, cpu: PathBuf, pids: PathBuf },
}

const ROOT: &str = "/sys/fs/cgroup";

impl CgroupSupport {
    /// Finds the hierarchy from `/proc/self/cgroup`; `Err` says why there is none.
    pub(crate) fn detect() -> Result<CgroupSupport, String> {
        let support = CgroupSupport::find()?;
        for parent in support.parents() {
            rustix::fs::access(parent, rustix::fs::Access::WRITE_OK)
                .map_err(|e| format!("cannot make cgroups in {}: {e}", parent.display()))?;
            remove_stale(parent);
        }
        Ok(support)
    }

    fn find() -> Result<CgroupSupport, String> {
        let own = fs::read_to_string("/proc/self/cgroup").map_err(|e| format!("read /proc/self/cgroup: {e}"))?;
        let path_of = |controller: &str| {
            own.lines().find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                controllers.split(',').any(|c| c == controller).then(|| path.trim_start_matches('/').to_owned())
            })
        };
        let unified = Path::new(ROOT).join("cgroup.controllers");
        if let Ok(controllers) = fs::read_to_string(&unified) {
            let have: Vec<&str> = controllers.split_whitespace().collect();
            if ["memory", "cpu", "pids"].iter().all(|c| have.contains(c)) {
                let path = path_of("").ok_or("no unified cgroup in /proc/self/cgroup")?;
                return Ok(CgroupSupport::V2 { parent: Path::new(ROOT).join(path) });
            }
        }
        let v1 = |controller: &str| -> Result<PathBuf, String> {
            let mount = Path::new(ROOT).join(controller);
            if !mount.join("cgroup.procs").is_file() {
                return Err(format!("no cgroup v1 {controller} hierarchy at {}", mount.display()));
            }
            let path = path_of(controller).ok_or_else(|| format!("no {controller} cgroup in /proc/self/cgroup"))?;
            Ok(mount.join(path))
        };
        Ok(CgroupSupport::V1 { memory: v1("memory")?, cpu: v1("cpu")?, pids: v1("pids")? })
    }

    /// The directories new cgroups are made in.
    fn parents(&self) -> Vec<&Path> {
        match self {
            CgroupSupport::V2 { parent } => vec![parent],
            CgroupSupport::V1 { memory, cpu, pids } => vec![memory, cpu, pids],
        }
    }

    /// Creates the cgroup of one connector with `limits` and opens its `cgroup.procs`.
    pub(crate) fn create(&self, limits: &JailLimits) -> Result<Cgroup, SandboxError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // The pid names the owner (for `remove_stale`); the per-process nonce keeps a
        // reused pid from meeting a killed predecessor's leftovers.
        let name = format!("fcp-{}-{:016x}-{}", std::process::id(), nonce(), NEXT.fetch_add(1, Ordering::Relaxed));
        let v2 = matches!(self, CgroupSupport::V2 { .. });
        let mut cgroup = Cgroup { dirs: Vec::new(), procs: Vec::new(), v2 };
        let quota = limits.cpu_quota_us();
        match self {
            CgroupSupport::V2 { parent } => {
                write(&parent.join("cgroup.subtree_control"), "+memory +cpu +pids")?;
                let dir = cgroup.make(parent.join(&name))?;
                let memory = limits.memory_bytes.map_or_else(|| "max".to_owned(), |b| b.to_string());
                write(&dir.join("memory.max"), &memory)?;
                write(&dir.join("memory.swap.max"), "0").or_else(ignore_missing)?;
                write(&dir.join("cpu.max"), &format!("{quota} {}", JailLimits::CPU_PERIOD_US))?;
                write(&dir.join("pids.max"), &limits.pids_max.to_string())?;
            }
            CgroupSupport::V1 { memory: mem, cpu, pids } => {
                let dir = cgroup.make(mem.join(&name))?;
                let bytes = limits.memory_bytes.map_or_else(|| "-1".to_owned(), |b| b.to_string());
                write(&dir.join("memory.limit_in_bytes"), &bytes)?;
                write(&dir.join("memory.memsw.limit_in_bytes"), &bytes).or_else(ignore_missing)?;
                let dir = cgroup.make(cpu.join(&name))?;
                write(&dir.join("cpu.cfs_period_us"), &JailLimits::CPU_PERIOD_US.to_string())?;
                write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                let dir = cgroup.make(pids.join(&name))?;
                write(&dir.join("pids.max"), &limits.pids_max.to_string())?;
            }
        }
        for dir in cgroup.dirs.clone() {
            let path = dir.join("cgroup.procs");
            let fd = rustix::fs::open(&path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| SandboxError::Cgroup { path, source: e.into() })?;
            cgroup.procs.push(fd);
        }
        Ok(cgroup)
    }
}

/// A random value drawn once per process.
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static NONCE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NONCE.get_or_init(|| std::collections::hash_map::RandomState::new().build_hasher().finish())
}

/// Removes the connector cgroups below `parent` that a supervisor which no longer runs
/// left behind (killed before it could remove them): `fcp-<pid>-…` whose pid is gone.
/// A cgroup that still holds a process is not removable and stays.
fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("fcp-")).and_then(|n| n.split('-').next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir(entry.path());
        }
    }
}

fn write(path: &Path, value: &str) -> Result<(), SandboxError> {
    fs::write(path, value).map_err(|source| SandboxError::Cgroup { path: path.to_owned(), source })
}

/// A missing optional knob (swap accounting off) is not an error.
fn ignore_missing(e: SandboxError) -> Result<(), SandboxError> {
    match &e {
        SandboxError::Cgroup { source, .. } if source.kind() == io::ErrorKind::NotFound => Ok(()),
        _ => Err(e),
    }
}

/// One connector's cgroup (a directory per hierarchy), removed on drop.
#[derive(Debug)]
pub(crate) struct Cgroup {
    /// v2: the one directory; v1: memory, cpu, pids.
    dirs: Vec<PathBuf>,
    procs: Vec<OwnedFd>,
    v2: bool,
}

impl Cgroup {
    fn make(&mut self, dir: PathBuf) -> Result<PathBuf, SandboxError> {
        fs::create_dir(&dir).map_err(|source| SandboxError::Cgroup { path: dir.clone(), source })?;
        self.dirs.push(dir.clone());
        Ok(dir)
    }

    /// Reads the cgroup's limit counters. A counter file that cannot be read counts 0.
    pub(crate) fn counters(&self) -> LimitCounters {
        let dir = |i: usize| self.dirs.get(i).map(PathBuf::as_path);
        let (memory, cpu, pids) = if self.v2 { (dir(0), dir(0), dir(0)) } else { (dir(0), dir(1), dir(2)) };
        let read = |dir: Option<&Path>, file: &str, key: &str| -> u64 {
            let text = dir.and_then(|d| fs::read_to_string(d.join(file)).ok()).unwrap_or_default();
            flat_keyed(&text, key).unwrap_or(0)
        };
        let (oom_file, throttled_key, throttled_scale) = if self.v2 {
            ("memory.events", "throttled_usec", 1)
        } else {
            ("memory.oom_control", "throttled_time", 1000)
        };
        LimitCounters {
            oom_kills: read(memory, oom_file, "oom_kill"),
            pids_max_hits: read(pids, "pids.events", "max"),
            cpu_throttled_periods: read(cpu, "cpu.stat", "nr_throttled"),
            cpu_throttled_us: read(cpu, "cpu.stat", throttled_key) / throttled_scale,
        }
    }

    /// The open `cgroup.procs` files, for the child to write itself into.
    pub(crate) fn take_procs(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.procs)
    }
}

/// The value of `key` in a cgroup "flat keyed" file (`key value` lines).
fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The connector was reaped; its pid namespace's last processes may take a moment
        // to leave the cgroup.
        for dir in self.dirs.iter().rev() {
            for _ in 0..1000 {
                match fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::sleep(Duration::from_micros(200)),
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_cgroups_of_gone_supervisors_are_removed_and_others_kept() {
        let root = tempfile::tempdir().expect("tempdir");
        let gone = root.path().join("fcp-4000000000-00ff-0");
        let ours = root.path().join(format!("fcp-{}-00ff-0", std::process::id()));
        let other = root.path().join("not-ours");
        for d in [&gone, &ours, &other] {
            fs::create_dir(d).expect("mkdir");
        }
        remove_stale(root.path());
        assert!(!gone.exists(), "a dead supervisor's cgroup goes");
        assert!(ours.exists() && other.exists());
    }

    #[test]
    fn flat_keyed_files_are_read_by_whole_key() {
        let events = "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(flat_keyed(events, "oom_kill"), Some(1));
        assert_eq!(flat_keyed(events, "oom"), Some(2));
        assert_eq!(flat_keyed(events, "max"), Some(3));
        assert_eq!(flat_keyed(events, "missing"), None);
    }

    #[test]
    fn counters_come_from_the_v1_and_v2_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let v2 = root.path().join("v2");
        fs::create_dir(&v2).expect("mkdir");
        fs::write(v2.join("memory.events"), "oom 1\noom_kill 1\n").expect("write");
        fs::write(v2.join("pids.events"), "max 7\n").expect("write");
        fs::write(v2.join("cpu.stat"), "usage_usec 10\nnr_periods 9\nnr_throttled 4\nthrottled_usec 2500\n")
            .expect("write");
        let cgroup = Cgroup { dirs: vec![v2], procs: Vec::new(), v2: true };
        let want = LimitCounters { oom_kills: 1, pids_max_hits: 7, cpu_throttled_periods: 4, cpu_throttled_us: 2500 };
        assert_eq!(cgroup.counters(), want);

        let dirs: Vec<PathBuf> = ["memory", "cpu", "pids"].iter().map(|d| root.path().join(d)).collect();
        for d in &dirs {
            fs::create_dir(d).expect("mkdir");
        }
        fs::write(dirs[0].join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").expect("write");
        fs::write(dirs[1].join("cpu.stat"), "nr_periods 5\nnr_throttled 3\nthrottled_time 4000000\n").expect("write");
        fs::write(dirs[2].join("pids.events"), "max 0\n").expect("write");
        let cgroup = Cgroup { dirs, procs: Vec::new(), v2: false };
        let want = LimitCounters { oom_kills: 2, pids_max_hits: 0, cpu_throttled_periods: 3, cpu_throttled_us: 4000 };
        assert_eq!(cgroup.counters(), want);
    }
}
