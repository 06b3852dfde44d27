//! Which syscall a seccomp kill was for, from the kernel's audit record.
//!
//! A `SECCOMP_RET_KILL_PROCESS` verdict is logged by the kernel (`kill_process` is in
//! `/proc/sys/kernel/seccomp/actions_logged` by default) as an audit record of type
//! `AUDIT_SECCOMP` (1326) naming the process's pid (in the initial pid namespace), its
//! architecture and the syscall number. The backend reads these records the way
//! journald does: a `NETLINK_AUDIT` socket bound to the read-only multicast group
//! `AUDIT_NLGRP_READLOG`, which needs `CAP_AUDIT_READ` but does not compete with auditd
//! and is not rate-limited like the kernel log's copy. A thread drains the socket and
//! keeps the most recent kills.
//!
//! What this cannot do, said plainly: a supervisor without `CAP_AUDIT_READ`, outside the
//! initial network namespace, or in a pid namespace of its own cannot match records to
//! its connectors; a process forked inside the jail is killed alone (its connector is
//! told nothing). In each case the kill of the connector itself is still reported, with
//! the syscall unknown.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, Protocol, RecvFlags, SocketFlags, SocketType};

use super::syscalls;

/// A seccomp kill the kernel logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SeccompKill {
    /// The killed process, in the initial pid namespace.
    pub(crate) pid: u32,
    /// The syscall number.
    pub(crate) number: i64,
    /// Its name, when the jail's seccomp plan names it (anything else was not allowed).
    pub(crate) name: Option<&'static str>,
    /// The AUDIT_ARCH value the kernel reported.
    pub(crate) arch: u32,
}

/// `AUDIT_SECCOMP`.
const AUDIT_SECCOMP: u16 = 1326;
/// `AUDIT_NLGRP_READLOG`, as a group bit.
const READLOG_GROUP: u32 = 1;
/// How many recent kill records are kept for lookups.
const KEEP: usize = 256;
/// How long a lookup waits for the kernel's audit thread to send the record.
const WAIT: Duration = Duration::from_millis(200);

/// The seccomp kills the kernel's audit multicast reported since the backend started.
#[derive(Debug, Default)]
pub(crate) struct KernelLog {
    kills: Mutex<VecDeque<SeccompKill>>,
    arrived: Condvar,
}

impl KernelLog {
    /// Subscribes to the audit multicast and starts the thread that drains it; `None`
    /// (with the reason) when the socket cannot be opened or bound.
    pub(crate) fn open() -> Result<Arc<KernelLog>, String> {
        let socket = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(Protocol::from_raw(
                std::num::NonZeroU32::new(libc::NETLINK_AUDIT as u32).ok_or("NETLINK_AUDIT is 0")?,
            )),
        )
        .map_err(|e| format!("open the audit netlink socket: {e}"))?;
        rustix::net::bind(&socket, &SocketAddrNetlink::new(0, READLOG_GROUP))
            .map_err(|e| format!("join the audit read-log group (needs CAP_AUDIT_READ): {e}"))?;
        let log = Arc::new(KernelLog::default());
        let weak = Arc::downgrade(&log);
        std::thread::Builder::new()
            .name("fcp-audit-log".into())
            .spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = match rustix::net::recv(&socket, &mut buf, RecvFlags::empty()) {
                        Ok((n, _)) => n,
                        // Records were dropped while the buffer was full; go on.
                        Err(Errno::NOBUFS) | Err(Errno::INTR) => continue,
                        Err(_) => return,
                    };
                    let Some(log) = weak.upgrade() else { return };
                    log.add(records(&buf[..n.min(buf.len())]).filter_map(|(kind, text)| parse(kind, text)));
                }
            })
            .map_err(|e| format!("start the audit reader: {e}"))?;
        Ok(log)
    }

    fn add(&self, kills: impl Iterator<Item = SeccompKill>) {
        let mut queue = self.kills.lock().unwrap_or_else(PoisonError::into_inner);
        let mut any = false;
        for kill in kills {
            if queue.len() == KEEP {
                queue.pop_front();
            }
            queue.push_back(kill);
            any = true;
        }
        if any {
            self.arrived.notify_all();
        }
    }

    /// The logged seccomp kill of `pid`, waiting briefly for the record to arrive.
    pub(crate) fn seccomp_kill(&self, pid: u32) -> Option<SeccompKill> {
        let deadline = Instant::now() + WAIT;
        // A panic while holding the lock leaves a consistent queue behind.
        let mut queue = self.kills.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(found) = queue.iter().rev().find(|k| k.pid == pid) {
                return Some(found.clone());
            }
            let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
            queue = self.arrived.wait_timeout(queue, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

/// The netlink messages of one datagram: (type, payload text).
fn records(mut datagram: &[u8]) -> impl Iterator<Item = (u16, &str)> {
    std::iter::from_fn(move || {
        // struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }
        let header = datagram.get(..16)?;
        let len = u32::from_ne_bytes(header[..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(header[4..6].try_into().ok()?);
        let payload = datagram.get(16..len.max(16))?;
        datagram = datagram.get(len.next_multiple_of(4).max(16)..).unwrap_or_default();
        let text = std::str::from_utf8(payload).ok()?.trim_end_matches('\0');
        Some((kind, text))
    })
}

/// Parses an `AUDIT_SECCOMP` record: `audit(…): … pid=N … arch=HEX syscall=N …`. The
/// fields a process controls (`comm`, `exe`) are printed quoted or hex-encoded by the
/// kernel, never with spaces, so fields are whole words.
fn parse(kind: u16, text: &str) -> Option<SeccompKill> {
    if kind != AUDIT_SECCOMP {
        return None;
    }
    let field =
        |key: &str| text.split_whitespace().find_map(|word| word.strip_prefix(key).and_then(|v| v.strip_prefix('=')));
    let pid = field("pid")?.parse().ok()?;
    let number: i64 = field("syscall")?.parse().ok()?;
    let arch = u32::from_str_radix(field("arch")?, 16).ok()?;
    let native = match std::env::consts::ARCH {
        "x86_64" => 0xc000_003e,
        "aarch64" => 0xc000_00b7,
        _ => 0,
    };
    let name = if arch == native { syscalls::name(number) } else { None };
    Some(SeccompKill { pid, number, name, arch })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = "audit(1795662604.956:421): auid=4294967295 uid=65534 gid=65534 ses=4294967295 \
                          pid=19605 comm=\"probe\" exe=\"/x/probe\" sig=31 arch=c000003e syscall=321 compat=0 \
                          ip=0x55a61195e182 code=0x80000000";

    fn message(kind: u16, text: &str) -> Vec<u8> {
        let len = 16 + text.len();
        let mut m = (len as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(text.as_bytes());
        m.resize(len.next_multiple_of(4), 0);
        m
    }

    #[test]
    fn a_seccomp_audit_record_is_parsed() {
        let kill = parse(AUDIT_SECCOMP, RECORD).expect("a kill");
        assert_eq!((kill.pid, kill.number, kill.arch), (19605, 321, 0xc000_003e));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(kill.name, Some("bpf"));
        }
    }

    #[test]
    fn other_records_are_not_kills() {
        assert_eq!(parse(1300, RECORD), None, "a syscall record, not a seccomp one");
        assert_eq!(parse(AUDIT_SECCOMP, "audit(1:2): pid=x syscall=1 arch=c000003e"), None);
        let spoof = "audit(1:2): pid=7 comm=\"syscall=59\" arch=c000003e syscall=321";
        assert_eq!(parse(AUDIT_SECCOMP, spoof).map(|k| k.number), Some(321));
    }

    #[test]
    fn a_datagram_holds_several_messages_and_truncation_ends_it() {
        let mut datagram = message(1300, "audit(1:1): other");
        datagram.extend(message(AUDIT_SECCOMP, RECORD));
        let got: Vec<u16> = records(&datagram).map(|(k, _)| k).collect();
        assert_eq!(got, [1300, AUDIT_SECCOMP]);
        let cut = &datagram[..datagram.len() - 8];
        assert_eq!(records(cut).count(), 1);
        assert_eq!(records(&[1, 2, 3]).count(), 0);
        let mut zero = message(AUDIT_SECCOMP, RECORD);
        zero[..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(records(&zero).count() <= 1, "a zero length does not loop");
    }

    #[test]
    fn a_lookup_finds_a_kill_that_arrives_while_waiting() {
        let log = Arc::new(KernelLog::default());
        let later = Arc::clone(&log);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            later.add(parse(AUDIT_SECCOMP, RECORD).into_iter());
        });
        assert_eq!(log.seccomp_kill(19605).map(|k| k.number), Some(321));
        writer.join().expect("writer");
        assert_eq!(log.seccomp_kill(1), None, "another pid times out");
    }
}
