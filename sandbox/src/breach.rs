//! What a jail's limits and filters did to a connector: the counters of its cgroup and,
//! once it ended, the [`Breach`] that ended it.

use std::fmt;

/// What a connector's cgroup counted: how often each limit held it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LimitCounters {
    /// Processes the kernel's OOM killer ended for the memory limit.
    pub oom_kills: u64,
    /// Forks refused by the pids limit.
    pub pids_max_hits: u64,
    /// CPU periods in which the quota throttled the connector.
    pub cpu_throttled_periods: u64,
    /// Time the quota held the connector back, in microseconds.
    pub cpu_throttled_us: u64,
}

/// A syscall named in a seccomp kill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Syscall {
    /// Its number on the native architecture.
    pub number: i64,
    /// Its name, when the jail's seccomp plan names it (anything else was not allowed).
    pub name: Option<&'static str>,
}

impl fmt::Display for Syscall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name {
            Some(name) => write!(f, "{name} ({})", self.number),
            None => write!(f, "syscall {}", self.number),
        }
    }
}

/// The limit or filter that ended a connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Breach {
    /// The kernel's OOM killer ended it at its memory limit.
    Memory,
    /// It tried to start more processes than its pids limit; the jail killed it.
    Pids,
    /// It outlived its wall-clock limit; the jail killed it.
    WallClock,
    /// The seccomp filter killed it for a syscall; `None` when the kernel's record of
    /// which one could not be read (see the Linux backend's notes on the kernel log).
    Seccomp(Option<Syscall>),
}

impl Breach {
    /// A stable name for the limit: `memory`, `pids`, `wall_clock` or `seccomp`.
    pub fn limit(&self) -> &'static str {
        match self {
            Breach::Memory => "memory",
            Breach::Pids => "pids",
            Breach::WallClock => "wall_clock",
            Breach::Seccomp(_) => "seccomp",
        }
    }

    /// The syscall of a seccomp kill, when known.
    pub fn syscall(&self) -> Option<Syscall> {
        match self {
            Breach::Seccomp(syscall) => *syscall,
            _ => None,
        }
    }
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breach::Memory => f.write_str("out of memory: killed at its memory limit"),
            Breach::Pids => f.write_str("killed: tried to start more processes than its pids limit"),
            Breach::WallClock => f.write_str("killed: outlived its wall-clock limit"),
            Breach::Seccomp(Some(syscall)) => write!(f, "killed by seccomp for {syscall}"),
            Breach::Seccomp(None) => {
                f.write_str("killed by seccomp (the kernel's record of the syscall was not found)")
            }
        }
    }
}
