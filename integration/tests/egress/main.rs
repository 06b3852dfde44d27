//! The egress network against the real kernel, as root: a jail's namespace made by
//! `Network::create`, the nftables table, and the proxy and its DNS responder, with the
//! test "internet" (`support/internet.rs`: a network namespace holding a real DNS server
//! and TCP servers at public-looking addresses). Run without root it says it was
//! skipped; with `FCP_REQUIRE_PRIVILEGED=1` (CI) that is a failure.

#[path = "../support/internet.rs"]
mod internet;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Command;
use std::thread;
use std::time::Duration;

use fcp_egress::net::{Names, Network, Pool, Ports};
use fcp_egress::proxy::{Config, EgressEvent, Limits, OperationPolicy, Proxy};
use fcp_policy::egress::EgressConstraints;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use internet::{privileged, Internet, UPSTREAM};

/// Runs `f` on a thread inside the jail's namespace.
fn in_jail<T: Send + 'static>(netns: &OwnedFd, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = netns.try_clone().expect("dup netns");
    thread::spawn(move || {
        rustix::thread::move_into_link_name_space(ns.as_fd(), None).expect("enter the jail");
        f()
    })
    .join()
    .expect("jail thread")
}

/// An A query for `name` to `server`: the answers, or the response code.
fn lookup(server: Ipv4Addr, name: &str) -> Result<Vec<Ipv4Addr>, ResponseCode> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind");
    socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut query = Message::new();
    query
        .set_id(7)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).expect("name"), RecordType::A));
    socket.send_to(&query.to_vec().expect("encode"), (server, 53)).expect("send");
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf).expect("a DNS answer");
    let response = Message::from_vec(&buf[..n]).expect("decode");
    if response.response_code() != ResponseCode::NoError {
        return Err(response.response_code());
    }
    Ok(response
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect())
}

/// Connects to `addr` and sends `payload`; what came back before the proxy or the
/// server closed (empty: refused or closed at once).
fn exchange(addr: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    // The proxy may close before all is sent: what matters is what came back.
    let _ = stream.write_all(payload);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    Ok(out)
}

fn policy(hosts: &[&str], require_sni: bool) -> OperationPolicy {
    OperationPolicy {
        operation: "fetch".into(),
        constraints: EgressConstraints {
            host_allow: hosts.iter().map(|h| (*h).to_owned()).collect(),
            port_allow: vec![443],
            deny_localhost: true,
            deny_private_ranges: true,
            deny_tailnet_ranges: true,
            deny_ip_literals: true,
            require_sni,
            dns_max_ips: 4,
        },
        connect_timeout: Duration::from_secs(3),
        total_timeout: Duration::from_secs(10),
        max_response_bytes: 1 << 20,
        max_redirects: 5,
        spki_pins: Vec::new(),
    }
}

/// A ClientHello naming `sni` (and offering ECH when asked), in one record.
fn client_hello(sni: &str, ech: bool) -> Vec<u8> {
    let mut ext = Vec::new();
    let mut entry = vec![0];
    entry.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    entry.extend_from_slice(sni.as_bytes());
    ext.extend_from_slice(&0u16.to_be_bytes());
    ext.extend_from_slice(&((entry.len() + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(entry.len() as u16).to_be_bytes());
    ext.extend_from_slice(&entry);
    if ech {
        ext.extend_from_slice(&[0xfe, 0x0d, 0, 4, 0, 0, 0, 0]);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[1u8; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut msg = vec![1];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body);
    let mut record = vec![22, 3, 1];
    record.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    record.extend_from_slice(&msg);
    record
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<EgressEvent>) -> Vec<EgressEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jail_reaches_only_what_its_operation_allows_through_the_proxy() {
    if !privileged("a_jail_reaches_only_what_its_operation_allows_through_the_proxy") {
        return;
    }
    let internet = Internet::start("p");
    let ports =
        Ports { proxy: 15_080 + (std::process::id() % 1000) as u16, dns: 16_080 + (std::process::id() % 1000) as u16 };
    let network = Network::open(Pool::parse("10.239.0.0/24").expect("pool"), ports, Names::new("9").expect("tag"))
        .expect("network");
    let config = Config { ports, upstream_dns: vec![SocketAddr::from((UPSTREAM, 53))], limits: Limits::default() };
    let (proxy, mut events) = Proxy::start(config).await.expect("proxy");
    let link = network.create().expect("a jail link");
    let handle = proxy.register("fcp.test", "z:work", &link, None);
    let (host, ns) = (link.host_addr(), link.netns().try_clone().expect("dup"));
    let run = |f: Box<dyn FnOnce() -> Vec<String> + Send>| {
        let ns = ns.try_clone().expect("dup");
        tokio::task::spawn_blocking(move || in_jail(&ns, f))
    };

    // No operation running: nothing resolves, nothing connects.
    let got = run(Box::new(move || {
        vec![
            format!("{:?}", lookup(host, "api.test.example")),
            format!("{:?}", exchange(SocketAddr::from((UPSTREAM, 443)), b"hi").map(|v| v.len())),
        ]
    }))
    .await
    .expect("jail");
    assert_eq!(got[0], "Err(NXDomain)");
    assert_eq!(got[1], "Ok(0)", "closed without an answer");
    assert!(!internet.queried("api.test.example"), "nothing was forwarded");
    let seen = drain(&mut events);
    assert!(seen.iter().all(|e| !e.allowed && e.reason == "no_operation"), "{seen:?}");

    handle.set_operation(Some(policy(&["api.test.example", "evil.test.example", "many.test.example"], false)));
    let got = run(Box::new(move || {
        let echoed = exchange(SocketAddr::from((UPSTREAM, 443)), b"before-dns");
        let api = lookup(host, "api.test.example");
        let after = exchange(SocketAddr::from((UPSTREAM, 443)), b"after-dns");
        vec![
            format!("{:?}", echoed.map(|v| String::from_utf8_lossy(&v).into_owned())),
            format!("{api:?}"),
            format!("{:?}", after.map(|v| String::from_utf8_lossy(&v).into_owned())),
            format!("{:?}", lookup(host, "other.example")),
            format!("{:?}", lookup(host, "evil.test.example")),
            format!("{:?}", lookup(host, "many.test.example").map(|v| v.len())),
            format!("{:?}", exchange(SocketAddr::from((Ipv4Addr::new(11, 22, 33, 99), 443)), b"x").map(|v| v.len())),
            format!(
                "{:?}",
                exchange(SocketAddr::from((UPSTREAM, 443)), &client_hello("other.example", false)).map(|v| v.len())
            ),
            format!(
                "{:?}",
                exchange(SocketAddr::from((UPSTREAM, 443)), &client_hello("api.test.example", true)).map(|v| v.len())
            ),
            format!(
                "{:?}",
                exchange(SocketAddr::from((UPSTREAM, 443)), &client_hello("api.test.example", false)).map(|v| v.len())
            ),
            format!(
                "{:?}",
                exchange(
                    SocketAddr::from((host, ports.proxy)),
                    b"CONNECT api.test.example:443 HTTP/1.1\r\n\r\nvia-connect"
                )
                .map(|v| String::from_utf8_lossy(&v).into_owned())
            ),
            format!(
                "{:?}",
                exchange(SocketAddr::from((host, ports.proxy)), b"CONNECT other.example:443 HTTP/1.1\r\n\r\n")
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
            ),
        ]
    }))
    .await
    .expect("jail");
    assert_eq!(got[0], "Ok(\"\")", "an address the responder never returned is an IP literal: denied");
    assert_eq!(got[1], format!("Ok([{UPSTREAM}])"));
    assert_eq!(got[2], "Ok(\"echo:after-dns\")", "the pinned address is reached through the proxy");
    assert_eq!(got[3], "Err(NXDomain)");
    assert!(!internet.queried("other.example"), "a name no entry allows is never forwarded");
    assert_eq!(got[4], format!("Ok([{UPSTREAM}])"), "the private answer is dropped (rebinding)");
    assert_eq!(got[5], "Ok(4)", "capped at dns_max_ips");
    assert_eq!(got[6], "Ok(0)");
    assert_eq!(got[7], "Ok(0)", "an SNI for another name than the pinned one");
    assert_eq!(got[8], "Ok(0)", "ECH is refused");
    assert!(
        got[9].starts_with("Ok(") && got[9] != "Ok(0)",
        "a matching SNI passes: {}: {:?}",
        got[9],
        drain(&mut events)
    );
    assert!(got[10].contains("200 Connection Established") && got[10].contains("echo:via-connect"), "{}", got[10]);
    assert!(got[11].contains("403 Forbidden") && got[11].contains("host_not_allowed"), "{}", got[11]);

    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = drain(&mut events);
    let reasons: Vec<(&str, bool, &str)> = seen.iter().map(|e| (e.kind, e.allowed, e.reason.as_str())).collect();
    for want in [
        ("connect", false, "ip_literal_denied"),
        ("dns", true, "allowed"),
        ("connect", true, "allowed"),
        ("dns", false, "host_not_allowed"),
        ("dns", true, "answers_dropped"),
        ("connect", false, "sni_mismatch"),
        ("connect", false, "ech_refused"),
    ] {
        assert!(reasons.contains(&want), "{want:?} in {reasons:?}");
    }
    assert!(seen.iter().all(|e| e.connector == "fcp.test" && e.zone == "z:work"));
    let status = handle.status();
    assert!(status.allowed >= 3 && status.denied >= 4, "{status:?}");

    // UDP other than DNS (QUIC) and traffic to the host's other addresses are dropped
    // and counted on the jail's link.
    run(Box::new(move || {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind");
        for _ in 0..3 {
            let _ = socket.send_to(b"quic?", (UPSTREAM, 443));
        }
        Vec::new()
    }))
    .await
    .expect("jail");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dropped = network.dropped().expect("counters");
    let ours = dropped.iter().find(|(name, _, _)| name == link.host_if()).map(|(_, p, _)| *p).unwrap_or(0);
    assert!(ours >= 3, "the UDP packets were dropped and counted: {dropped:?}");

    // Teardown: with the namespace's last reference gone, the link goes.
    let name = link.host_if().to_owned();
    drop(handle);
    drop(link);
    drop(ns);
    let mut gone = false;
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/sys/class/net/{name}")).exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "{name} is removed with its namespace");
    network.close().expect("close");
    let tables = Command::new("nft").args(["list", "tables"]).output().expect("nft");
    assert!(!String::from_utf8_lossy(&tables.stdout).contains("fcp_egress9"), "the table is gone");
}

#[test]
fn a_pool_that_collides_with_a_host_route_is_refused() {
    if !privileged("a_pool_that_collides_with_a_host_route_is_refused") {
        return;
    }
    let routes = std::fs::read_to_string("/proc/net/route").expect("routes");
    // Any route of the host with a non-zero mask; the machine has at least its own.
    let Some(line) = routes.lines().skip(1).find(|l| l.split_whitespace().nth(7).is_some_and(|m| m != "00000000"))
    else {
        eprintln!("SKIPPED: no non-default route on this host");
        return;
    };
    let cols: Vec<&str> = line.split_whitespace().collect();
    let dest = u32::from_str_radix(cols[1], 16).expect("hex");
    let dest = Ipv4Addr::from(u32::from_be_bytes(dest.to_ne_bytes()));
    let octets = dest.octets();
    let pool = Pool::parse(&format!("{}.0.0.0/8", octets[0])).expect("pool");
    match Network::open(pool, Ports { proxy: 1, dns: 2 }, Names::new("8").expect("tag")) {
        Err(e) => assert!(e.to_string().contains("collides"), "{e}"),
        Ok(n) => {
            let _ = n.close();
            panic!("{pool} overlaps the host's route to {dest} and was accepted");
        }
    }
}
