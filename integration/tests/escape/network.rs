//! The network: the jail has its own namespace with only a loopback interface, so the
//! host's listeners (on 127.0.0.1, on its own addresses, on a Unix socket standing in
//! for fcpd's) are out of reach, while the program's own loopback works.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;

use rustix::io::Errno;

use crate::harness::{host_addresses, privileged, Expect, Findings, Jail, Outcome};

/// Records a finding if `listener` has a connection waiting.
fn untouched(findings: &mut Findings, listener: &TcpListener, what: &str) {
    listener.set_nonblocking(true).expect("non-blocking");
    let got = listener.accept();
    findings.check(matches!(&got, Err(e) if e.kind() == ErrorKind::WouldBlock), || {
        format!("the host's {what} listener was reached from the jail: {got:?}")
    });
}

#[test]
fn host_listeners_are_out_of_reach() {
    if !privileged("host_listeners_are_out_of_reach") {
        return;
    }
    let jail = Jail::strict();
    let mut findings = Findings::default();

    // 127.0.0.1 and ::1 inside are the jail's own loopback: nothing listens there.
    let loopback4 = TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    let port = loopback4.local_addr().expect("addr").port();
    findings.attempt(&jail, &["connect", &format!("127.0.0.1:{port}")], Expect::Errno(Errno::CONNREFUSED));
    untouched(&mut findings, &loopback4, "127.0.0.1");
    if let Ok(loopback6) = TcpListener::bind("[::1]:0") {
        let port = loopback6.local_addr().expect("addr").port();
        findings.attempt(&jail, &["connect", &format!("[::1]:{port}")], Expect::Errno(Errno::CONNREFUSED));
        untouched(&mut findings, &loopback6, "::1");
    }

    // The host's own addresses have no route from the jail.
    let any4 = TcpListener::bind("0.0.0.0:0").expect("listen on 0.0.0.0");
    let any6 = TcpListener::bind("[::]:0").ok();
    let addresses = host_addresses();
    if addresses.is_empty() {
        eprintln!("host_listeners_are_out_of_reach: the host has no address but loopback; only loopback tested");
    }
    for ip in addresses {
        let listener = match ip {
            IpAddr::V4(_) => &any4,
            IpAddr::V6(_) => match &any6 {
                Some(l) => l,
                None => continue,
            },
        };
        let addr = SocketAddr::new(ip, listener.local_addr().expect("addr").port());
        findings.attempt(&jail, &["connect", &addr.to_string()], Expect::Errno(Errno::NETUNREACH));
        // Nor is any of them an address of the jail's.
        findings.attempt(&jail, &["bind", &SocketAddr::new(ip, 0).to_string()], Expect::Errno(Errno::ADDRNOTAVAIL));
    }
    untouched(&mut findings, &any4, "0.0.0.0");
    if let Some(any6) = &any6 {
        untouched(&mut findings, any6, "[::]");
    }

    // A Unix socket where fcpd's would be: its path does not exist inside, and the
    // abstract namespace belongs to the network namespace.
    let socket = jail.dir.join("fcpd.sock");
    let _unix = UnixListener::bind(&socket).expect("listen on a Unix socket");
    findings.attempt(&jail, &["connect-unix", &socket.display().to_string()], Expect::Errno(Errno::NOENT));
    findings.attempt(&jail, &["connect-unix", "/run/fcp/fcpd.sock"], Expect::Errno(Errno::NOENT));
    let name = format!("fcp-escape-{}", std::process::id());
    let abstract_addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name.as_bytes())
            .expect("abstract address");
    let _abstract = UnixListener::bind_addr(&abstract_addr).expect("listen on an abstract Unix socket");
    findings.attempt(&jail, &["connect-abstract", &name], Expect::Errno(Errno::CONNREFUSED));
    findings.assert_none();
}

/// The positive side: loopback works inside, and it is all there is.
#[test]
fn the_program_has_loopback_and_nothing_else() {
    if !privileged("the_program_has_loopback_and_nothing_else") {
        return;
    }
    let jail = Jail::strict();
    let mut findings = Findings::default();
    let run = jail.run(&["loopback"]);
    match run.outcome() {
        Outcome::Allowed(report) => findings.check(report["echoed"] == true, || format!("loopback: {report}")),
        other => findings.check(false, || format!("a round trip on the jail's loopback failed: {other}\n{run}")),
    }
    for addr in ["127.0.0.1:0", "[::1]:0"] {
        let run = jail.run(&["bind", addr]);
        findings.check(matches!(run.outcome(), Outcome::Allowed(_)), || format!("bind {addr} inside:\n{run}"));
    }
    // No route anywhere but loopback (TEST-NET-3 and the IPv6 documentation prefix; a
    // connected UDP socket sends nothing).
    findings.attempt(&jail, &["route", "203.0.113.1:53"], Expect::Errno(Errno::NETUNREACH));
    findings.attempt(&jail, &["route", "[2001:db8::1]:53"], Expect::Errno(Errno::NETUNREACH));
    findings.assert_none();
}
