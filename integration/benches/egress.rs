//! Latency through the egress proxy, against the real kernel: from a jail's namespace
//! (`Network::create`) to the test internet's echo server (11.22.33.2:443,
//! `tests/support/internet.rs`) through the transparent proxy, beside the same traffic
//! straight from the host, the two interleaved sample by sample in one run:
//! - a new connection: TCP connect, a 4-byte request and its 9-byte answer;
//! - a request on an established connection: 4 bytes there and back.
//!
//! The jail's name is resolved once through the proxy's responder first, so the proxy
//! has the address pinned, as it would for a connector. Then the jail network itself:
//! `Network::create` and dropping the link (what fcpd's spawn path waits for), and the
//! kernel's asynchronous teardown after it (until the host end of the link is gone).
//!
//! Needs root; prints SKIPPED otherwise. `cargo bench -p fcp-integration --bench egress`;
//! FCP_BENCH_RUNS sets the sample count (default 200), FCP_BENCH_JSON a file for the
//! JSON results. Run it alone: the test internet's addresses are fixed, so an egress test
//! running at the same time would share its route.

#[path = "../tests/support/internet.rs"]
mod internet;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use fcp_egress::net::{Names, Network, Pool, Ports};
use fcp_egress::proxy::{Config, Limits, OperationPolicy, Proxy};
use fcp_policy::egress::EgressConstraints;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use internet::{privileged, Internet, UPSTREAM};
use serde_json::json;

/// The allowed name, which the test internet resolves to [`UPSTREAM`].
const NAME: &str = "api.test.example";

/// A thread inside a jail's network namespace that runs what it is sent: sockets it
/// opens are the jail's.
struct InJail {
    jobs: mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl InJail {
    fn enter(netns: &OwnedFd) -> InJail {
        let ns = netns.try_clone().expect("dup netns");
        let (jobs, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
        thread::spawn(move || {
            rustix::thread::move_into_link_name_space(ns.as_fd(), None).expect("enter the jail");
            for job in rx {
                job();
            }
        });
        InJail { jobs }
    }

    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        self.jobs.send(Box::new(move || tx.send(f()).expect("the caller waits"))).expect("the jail thread runs");
        rx.recv().expect("the jail thread answered")
    }
}

/// The A records `server` answers for `name`.
fn lookup(server: Ipv4Addr, name: &str) -> Vec<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind");
    socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut query = Message::new();
    query
        .set_id(1)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).expect("name"), RecordType::A));
    socket.send_to(&query.to_vec().expect("encode"), (server, 53)).expect("send");
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf).expect("a DNS answer");
    let answer = Message::from_vec(&buf[..n]).expect("decode");
    answer
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// Sends `request` and reads exactly `answer` back.
fn exchange(stream: &mut TcpStream, request: &[u8], answer: &[u8]) {
    stream.write_all(request).expect("send");
    let mut got = vec![0u8; answer.len()];
    stream.read_exact(&mut got).expect("the whole answer");
    assert_eq!(got, answer, "the echo server's answer");
}

/// [`exchange`] on an established connection; how long it took.
fn round_trip(stream: &mut TcpStream, request: &[u8], answer: &[u8]) -> Duration {
    let start = Instant::now();
    exchange(stream, request, answer);
    start.elapsed()
}

/// A new connection to `dest` with one request and its answer; how long it took (the
/// connection is closed after the clock stops).
fn connect_round_trip(dest: SocketAddr) -> Duration {
    let start = Instant::now();
    let mut stream = TcpStream::connect(dest).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    exchange(&mut stream, b"ping", b"echo:ping");
    start.elapsed()
}

/// An established connection to `dest`, its first answer already read.
fn established(dest: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(dest).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    exchange(&mut stream, b"warm", b"echo:warm");
    stream
}

struct Stats {
    name: String,
    p50: Duration,
    p99: Duration,
}

fn stats(name: &str, mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let stats = Stats { name: name.to_owned(), p50: at(0.50), p99: at(0.99) };
    println!(
        "{name:<47} p50 {:>8.3} ms   p99 {:>8.3} ms   ({} samples)",
        stats.p50.as_secs_f64() * 1e3,
        stats.p99.as_secs_f64() * 1e3,
        samples.len()
    );
    stats
}

/// `runs` samples of `a` and of `b`, alternating (after `runs / 10` of each to warm up),
/// so both see the same machine.
fn interleaved(runs: usize, mut a: impl FnMut() -> Duration, mut b: impl FnMut() -> Duration) -> [Vec<Duration>; 2] {
    for _ in 0..(runs / 10).max(1) {
        a();
        b();
    }
    let (mut xs, mut ys) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        xs.push(a());
        ys.push(b());
    }
    [xs, ys]
}

/// Proxied over direct: (p50 ratio, p99 ratio, p50 added in ms).
fn compare(what: &str, proxied: &Stats, direct: &Stats) -> serde_json::Value {
    let (p50, p99) =
        (proxied.p50.as_secs_f64() / direct.p50.as_secs_f64(), proxied.p99.as_secs_f64() / direct.p99.as_secs_f64());
    let added = (proxied.p50.as_secs_f64() - direct.p50.as_secs_f64()) * 1e3;
    println!("{what}: proxy / direct p50 x{p50:.2}, p99 x{p99:.2}; added at p50 {added:.3} ms");
    json!({ "p50_ratio": p50, "p99_ratio": p99, "p50_added_ms": added })
}

fn policy() -> OperationPolicy {
    OperationPolicy {
        operation: "bench".into(),
        constraints: EgressConstraints {
            host_allow: vec![NAME.to_owned()],
            port_allow: vec![443],
            deny_localhost: true,
            deny_private_ranges: true,
            deny_tailnet_ranges: true,
            deny_ip_literals: true,
            require_sni: false,
            dns_max_ips: 4,
        },
        connect_timeout: Duration::from_secs(3),
        total_timeout: Duration::from_secs(600),
        max_response_bytes: 1 << 30,
        max_redirects: 0,
        spki_pins: Vec::new(),
    }
}

fn main() {
    if !privileged("egress benchmark") {
        return;
    }
    let runs: usize = std::env::var("FCP_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(200);
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let _internet = Internet::start("b");
    let offset = (std::process::id() % 1000) as u16;
    let ports = Ports { proxy: 19_080 + offset, dns: 20_080 + offset };
    let network = Network::open(Pool::parse("10.234.0.0/24").expect("pool"), ports, Names::new("4").expect("tag"))
        .expect("the jail network");
    // The proxy on a runtime of its own, as in fcpd; the samples are taken on plain threads.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let config = Config { ports, upstream_dns: vec![SocketAddr::from((UPSTREAM, 53))], limits: Limits::default() };
    let (proxy, mut events) = runtime.block_on(Proxy::start(config)).expect("proxy");
    runtime.spawn(async move { while events.recv().await.is_some() {} });
    let link = network.create().expect("a jail link");
    let handle = proxy.register("fcp.bench", "z:work", &link, None);
    handle.set_operation(Some(policy()));
    let jail = InJail::enter(link.netns());
    let responder = link.host_addr();
    assert_eq!(jail.run(move || lookup(responder, NAME)), [UPSTREAM], "{NAME} resolved and pinned");
    let dest = SocketAddr::from((UPSTREAM, 443));

    println!("egress latency, {runs} samples each, {cores} cores, proxied and direct interleaved:");
    let mut results = Vec::new();
    let [proxied, direct] =
        interleaved(runs, || jail.run(move || connect_round_trip(dest)), || connect_round_trip(dest));
    let connect =
        [stats("new connection, jail -> proxy -> echo", proxied), stats("new connection, host -> echo", direct)];
    let connect_cmp = compare("new connection", &connect[0], &connect[1]);
    results.extend(connect);

    let (mut via_proxy, mut straight) = (jail.run(move || established(dest)), established(dest));
    let [proxied, direct] = interleaved(
        runs,
        || round_trip(&mut via_proxy, b"ping", b"ping"),
        || round_trip(&mut straight, b"ping", b"ping"),
    );
    let request = [
        stats("request on a connection, jail -> proxy -> echo", proxied),
        stats("request on a connection, host -> echo", direct),
    ];
    let request_cmp = compare("request on a connection", &request[0], &request[1]);
    results.extend(request);
    drop((via_proxy, straight));

    let (mut setup, mut teardown) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs + (runs / 10).max(1) {
        let start = Instant::now();
        let sample = network.create().expect("a jail link");
        let name = sample.host_if().to_owned();
        drop(sample);
        let created = start.elapsed();
        let gone = Instant::now();
        while std::path::Path::new(&format!("/sys/class/net/{name}")).exists() {
            assert!(gone.elapsed() < Duration::from_secs(10), "{name} outlived its namespace by 10 s");
            thread::sleep(Duration::from_micros(200));
        }
        if i >= (runs / 10).max(1) {
            setup.push(created);
            teardown.push(gone.elapsed());
        }
    }
    results.push(stats("jail network: Network::create + drop", setup));
    results.push(stats("jail network: teardown until the link is gone", teardown));

    let report = json!({
        "benchmark": "egress_latency",
        "runs": runs,
        "cores": cores,
        "results": results.iter().map(|s| json!({
            "name": s.name, "p50_ms": s.p50.as_secs_f64() * 1e3, "p99_ms": s.p99.as_secs_f64() * 1e3,
        })).collect::<Vec<_>>(),
        "proxy_over_direct": { "new_connection": connect_cmp, "request_on_a_connection": request_cmp },
    });
    if let Some(path) = std::env::var_os("FCP_BENCH_JSON") {
        std::fs::write(path, format!("{report:#}\n")).expect("write FCP_BENCH_JSON");
    }
    drop((jail, handle, link));
    network.close().expect("remove the table and links");
}
