//! The kernel's attack surface: each of these syscalls, with arguments that would work
//! for root on the host, kills the program (seccomp), and the summary names it.

use crate::harness::{privileged, Expect, Findings, Jail};

#[test]
fn kernel_attack_surface_is_killed() {
    if !privileged("kernel_attack_surface_is_killed") {
        return;
    }
    let jail = Jail::strict();
    let state = jail.state.display().to_string();
    let mut findings = Findings::default();
    let attempts: [(&[&str], &str); 10] = [
        (&["mount-tmpfs", &state], "mount"),
        (&["unshare-user"], "unshare"),
        (&["sethostname", "fcp-escaped"], "sethostname"),
        (&["keyctl"], "keyctl"),
        (&["bpf"], "bpf"),
        (&["perf-event-open"], "perf_event_open"),
        (&["io-uring-setup"], "io_uring_setup"),
        (&["userfaultfd"], "userfaultfd"),
        (&["socket-packet"], "socket"),
        (&["socket-raw"], "socket"),
    ];
    for (args, syscall) in attempts {
        findings.attempt(&jail, args, Expect::Seccomp(syscall));
    }
    findings.assert_none();
}
