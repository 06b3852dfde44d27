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

/// The test internet's addresses are fixed (11.22.33.0/24 on a host link): two at once
/// would share that route, and one's teardown would cut the other's connections. The
/// tests here that start one take turns.
static INTERNET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let _turn = INTERNET.lock().await;
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

/// Connects from `source` (bound) to `dest`, sends `payload` and half-closes; what came
/// back. Runs on the calling thread, so in its network namespace.
fn exchange_from(source: Ipv4Addr, dest: SocketAddr, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let timed_out = |what: &str| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((source, 0)))?;
        let mut stream = tokio::time::timeout(Duration::from_secs(2), socket.connect(dest))
            .await
            .map_err(|_| timed_out("connect"))??;
        let _ = stream.write_all(payload).await;
        let _ = stream.shutdown().await;
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut out))
            .await
            .map_err(|_| timed_out("read"))??;
        Ok(out)
    })
}

/// The host's count of packets its reverse-path filters dropped (`TcpExt:
/// IPReversePathFilter`; every namespace has its own).
fn reverse_path_drops() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/netstat").expect("netstat");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let (names, values) = (lines[0].split_whitespace(), lines[1].split_whitespace());
    let (_, value) = names.zip(values).find(|(n, _)| *n == "IPReversePathFilter").expect("IPReversePathFilter");
    value.parse().expect("a count")
}

/// What a jail that claims other addresses gets, and what it has of IPv6.
#[derive(Debug)]
struct FromTheJail {
    pinned: Result<Vec<Ipv4Addr>, ResponseCode>,
    spoofed: Vec<(Ipv4Addr, std::io::Result<Vec<u8>>)>,
    own: std::io::Result<Vec<u8>>,
    if_inet6: String,
    disable_ipv6: [String; 2],
    tcp6: std::io::Result<TcpStream>,
    udp6: std::io::Result<usize>,
}

/// A jail that gives itself another address (another jail's, or one from outside the
/// pool) gets nothing from it: the host end's strict reverse-path filter drops what it
/// sends before the proxy or the DNS responder see it, while the same connection from
/// the jail's own address goes through. And the jail has no IPv6 at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jail_cannot_send_from_an_address_not_its_own_and_has_no_ipv6() {
    if !privileged("a_jail_cannot_send_from_an_address_not_its_own_and_has_no_ipv6") {
        return;
    }
    let _turn = INTERNET.lock().await;
    let _internet = Internet::start("s");
    let offset = (std::process::id() % 1000) as u16;
    let ports = Ports { proxy: 17_080 + offset, dns: 18_080 + offset };
    let network = Network::open(Pool::parse("10.235.0.0/24").expect("pool"), ports, Names::new("5").expect("tag"))
        .expect("network");
    let config = Config { ports, upstream_dns: vec![SocketAddr::from((UPSTREAM, 53))], limits: Limits::default() };
    let (proxy, mut events) = Proxy::start(config).await.expect("proxy");
    let (link, victim) = (network.create().expect("a jail link"), network.create().expect("another jail's link"));
    let handle = proxy.register("fcp.spoofer", "z:work", &link, None);
    let victim_handle = proxy.register("fcp.victim", "z:work", &victim, None);
    handle.set_operation(Some(policy(&["api.test.example"], false)));
    victim_handle.set_operation(Some(policy(&["api.test.example"], false)));
    let (host, jail) = (link.host_addr(), link.jail_addr());
    let spoofs = [victim.jail_addr(), Ipv4Addr::new(198, 51, 100, 77)];
    let drops_before = reverse_path_drops();

    let ns = link.netns().try_clone().expect("dup");
    let got = tokio::task::spawn_blocking(move || {
        in_jail(&ns, move || {
            let pinned = lookup(host, "api.test.example");
            for spoof in spoofs {
                // `ip` forks from this thread, so it runs in the jail's namespace.
                let out = Command::new("ip")
                    .args(["addr", "add", &format!("{spoof}/32"), "dev", "eth0"])
                    .output()
                    .expect("run ip");
                assert!(out.status.success(), "ip addr add {spoof}: {}", String::from_utf8_lossy(&out.stderr));
            }
            let mut spoofed = Vec::new();
            for spoof in spoofs {
                // A DNS query the responder would answer from the victim's policy and
                // pin in the victim's jail, if it arrived.
                let socket = UdpSocket::bind((spoof, 0)).expect("bind the spoofed source");
                let mut query = Message::new();
                query
                    .set_id(9)
                    .add_query(Query::query(Name::from_ascii("api.test.example").expect("name"), RecordType::A));
                for _ in 0..3 {
                    socket.send_to(&query.to_vec().expect("encode"), (host, 53)).expect("send");
                }
                spoofed.push((spoof, exchange_from(spoof, SocketAddr::from((UPSTREAM, 443)), b"spoofed")));
            }
            let own = exchange_from(jail, SocketAddr::from((UPSTREAM, 443)), b"own");
            let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default().trim().to_owned();
            FromTheJail {
                pinned,
                spoofed,
                own,
                // /proc/thread-self: this thread's namespace, not the process's.
                if_inet6: read("/proc/thread-self/net/if_inet6"),
                disable_ipv6: [
                    read("/proc/sys/net/ipv6/conf/all/disable_ipv6"),
                    read("/proc/sys/net/ipv6/conf/eth0/disable_ipv6"),
                ],
                tcp6: TcpStream::connect_timeout(&"[2001:db8::2]:443".parse().expect("addr"), Duration::from_secs(2)),
                udp6: UdpSocket::bind("[::]:0").and_then(|s| s.send_to(b"x", "[2001:db8::2]:53")),
            }
        })
    })
    .await
    .expect("jail");

    assert_eq!(got.pinned, Ok(vec![UPSTREAM]), "the jail's own query is answered and pinned");
    for (spoof, result) in &got.spoofed {
        let err = result.as_ref().expect_err(&format!("a connection from {spoof} got through: {result:?}"));
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "from {spoof}: silently dropped, not refused: {err}");
    }
    let own = got.own.as_ref().map(|v| String::from_utf8_lossy(v).into_owned());
    assert_eq!(own.as_deref().ok(), Some("echo:own"), "the jail's own address goes through: {own:?}");
    // 3 UDP queries and at least one SYN from each spoofed address; other namespaces
    // count in their own.
    let dropped = reverse_path_drops() - drops_before;
    assert!(dropped >= 8, "the reverse-path filter dropped {dropped} packets");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = drain(&mut events);
    assert!(seen.iter().all(|e| e.connector == "fcp.spoofer"), "the victim's jail saw nothing: {seen:?}");
    assert!(seen.iter().all(|e| e.reason != "source_spoofed"), "nothing spoofed reached the proxy: {seen:?}");
    for spoof in spoofs {
        assert!(!format!("{seen:?}").contains(&spoof.to_string()), "{spoof} in {seen:?}");
    }
    let allowed: Vec<(&str, &str)> = seen.iter().filter(|e| e.allowed).map(|e| (e.kind, e.host.as_str())).collect();
    assert_eq!(allowed, [("dns", "api.test.example"), ("connect", "api.test.example")], "{seen:?}");
    let v = victim_handle.status();
    assert_eq!((v.allowed, v.denied, v.dns_answered, v.dns_refused, v.pinned), (0, 0, 0, 0, 0), "{v:?}");

    // No IPv6: no global address (none at all), disabled in the namespace and on eth0,
    // and a socket toward an IPv6 address fails at once.
    let global: Vec<&str> = got.if_inet6.lines().filter(|l| l.split_whitespace().nth(3) == Some("00")).collect();
    assert!(global.is_empty(), "global IPv6 addresses in the jail: {global:?}");
    assert_eq!(got.if_inet6, "", "no IPv6 address at all, not even ::1");
    assert_eq!(got.disable_ipv6, ["1", "1"], "net.ipv6.conf.{{all,eth0}}.disable_ipv6");
    let err = got.tcp6.as_ref().expect_err("a TCP connection to an IPv6 address");
    assert_ne!(err.kind(), std::io::ErrorKind::TimedOut, "refused locally, not sent: {err}");
    assert!(got.udp6.is_err(), "a UDP datagram to an IPv6 address: {:?}", got.udp6);
    let host_side = std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", link.host_if()))
        .expect("the host end's sysctl");
    assert_eq!(host_side.trim(), "1", "IPv6 is off on the host end too");

    drop((handle, victim_handle, link, victim));
    network.close().expect("close");
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
