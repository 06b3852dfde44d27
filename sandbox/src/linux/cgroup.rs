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
        let name = format!("fcp-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut cgroup = Cgroup { dirs: Vec::new(), procs: Vec::new() };
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
    dirs: Vec<PathBuf>,
    procs: Vec<OwnedFd>,
}

impl Cgroup {
    fn make(&mut self, dir: PathBuf) -> Result<PathBuf, SandboxError> {
        fs::create_dir(&dir).map_err(|source| SandboxError::Cgroup { path: dir.clone(), source })?;
        self.dirs.push(dir.clone());
        Ok(dir)
    }

    /// The open `cgroup.procs` files, for the child to write itself into.
    pub(crate) fn take_procs(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.procs)
    }
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
