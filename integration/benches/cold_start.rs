//! Cold start of a jailed no-op connector: from spawn to its first `health` answer on
//! the host protocol (`fcp-test-typed`, an SDK connector that answers `health` before it
//! is configured), over many starts, with each optional jail layer on and off, beside
//! `bwrap --unshare-all --die-with-parent` and a bare process in the same run. Teardown
//! (kill, reap, cgroup removal, namespace teardown) follows each sample, untimed.
//!
//! Needs root (the jail); prints SKIPPED otherwise. `cargo bench -p fcp-integration
//! --bench cold_start`; FCP_BENCH_RUNS sets the sample count (default 200), and
//! FCP_BENCH_JSON a file for the JSON results.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fcp_proto::host::{Event, Framer, Request};
use fcp_sandbox::{Degradation, Layer, Layers, LinuxJail, PlainProcess, Sandbox, SpawnSpec};
use serde_json::json;

const CONNECTOR: &str = env!("CARGO_BIN_EXE_fcp-test-typed");
const MANIFEST: &str = include_str!("../connectors/fcp-test-typed.toml");

/// Sends `health` on `stdin` and reads `stdout` until its reply.
fn health(stdin: &mut impl Write, stdout: &mut impl Read) {
    let mut framer = Framer::new();
    let out = framer.send(&Request::Health).expect("a fresh channel");
    stdin.write_all(&out.bytes).and_then(|()| stdin.flush()).expect("write health");
    let mut buf = [0u8; 4096];
    loop {
        let n = stdout.read(&mut buf).expect("read the reply");
        assert!(n > 0, "the connector closed stdout before answering");
        for event in framer.push(&buf[..n]) {
            if let Event::Reply(reply) = event {
                assert_eq!(reply.id, out.id);
                return;
            }
        }
    }
}

struct Stats {
    name: String,
    p50: Duration,
    p99: Duration,
}

fn measure(name: &str, runs: usize, mut once: impl FnMut() -> Duration) -> Stats {
    for _ in 0..(runs / 10).max(1) {
        once();
    }
    let mut samples: Vec<Duration> = (0..runs).map(|_| once()).collect();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let stats = Stats { name: name.to_owned(), p50: at(0.50), p99: at(0.99) };
    println!(
        "{name:<34} p50 {:>7.3} ms   p99 {:>7.3} ms",
        stats.p50.as_secs_f64() * 1e3,
        stats.p99.as_secs_f64() * 1e3
    );
    stats
}

fn sandboxed(backend: &dyn Sandbox, spec: &SpawnSpec) -> Duration {
    let start = Instant::now();
    let mut jailed = backend.spawn(spec).expect("spawn");
    let (mut stdin, mut stdout) = (jailed.take_stdin().expect("stdin"), jailed.take_stdout().expect("stdout"));
    health(&mut stdin, &mut stdout);
    let took = start.elapsed();
    jailed.kill().expect("kill");
    jailed.wait().expect("wait");
    took
}

fn command(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn");
    let (mut stdin, mut stdout) = (child.stdin.take().expect("stdin"), child.stdout.take().expect("stdout"));
    health(&mut stdin, &mut stdout);
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    took
}

fn main() {
    if !rustix::process::geteuid().is_root() {
        println!("SKIPPED cold start: needs root");
        return;
    }
    let runs: usize = std::env::var("FCP_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(200);
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().canonicalize().expect("canonical").join("state");
    // A whole core: the jail's cost, not the CPU quota's (the test manifest allows 10 %,
    // and a start that needs more than 10 ms of CPU in one 100 ms period waits for the
    // next). FCP_BENCH_CPU_PERCENT sets another.
    let cpu: u8 = std::env::var("FCP_BENCH_CPU_PERCENT").ok().and_then(|c| c.parse().ok()).unwrap_or(100);
    let text = MANIFEST.replace("cpu_percent = 10\n", &format!("cpu_percent = {cpu}\n"));
    assert!(text.contains(&format!("cpu_percent = {cpu}\n")), "the test manifest sets cpu_percent = 10");
    let manifest = fcp_policy::manifest::Manifest::parse(&text).expect("valid manifest");
    let spec =
        |allowed: Layers| {
            SpawnSpec::from_manifest(&manifest, CONNECTOR, &state).expect("spec").with_degradation(
                if allowed.is_empty() { Degradation::Refuse } else { Degradation::AllowMissing(allowed) },
            )
        };
    println!(
        "cold start, spawn to first health answer, {runs} samples each, cpu_percent {cpu} \
         (network namespace always on):"
    );
    let mut results = Vec::new();
    let variants: [(&str, Layers); 5] = [
        ("linux_jail (every layer)", Layers::EMPTY),
        ("linux_jail without landlock", Layers::of(&[Layer::Landlock])),
        ("linux_jail without seccomp", Layers::of(&[Layer::Seccomp])),
        ("linux_jail without cgroups", Layers::of(&[Layer::Cgroups])),
        ("linux_jail namespaces only", LinuxJail::OPTIONAL),
    ];
    for (name, off) in variants {
        let jail = LinuxJail::new().expect("jail").without(off).expect("optional layers");
        assert_eq!(Layers::ALL.difference(jail.layers()), off, "{name}: this machine lacks a layer");
        let spec = spec(off);
        results.push(measure(name, runs, || sandboxed(&jail, &spec)));
    }
    let plain_spec = spec(Degradation::allow_plain_process().allowed_missing());
    results.push(measure("plain process", runs, || sandboxed(&PlainProcess::new(), &plain_spec)));
    let bwrap = Command::new("bwrap").arg("--version").output().is_ok_and(|o| o.status.success());
    if bwrap {
        results.push(measure("bwrap --unshare-all --die-with-parent", runs, || {
            let mut cmd = Command::new("bwrap");
            cmd.args(["--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
                .arg(CONNECTOR);
            command(cmd)
        }));
    } else {
        println!("bwrap is not installed (apt-get install bubblewrap): no comparison");
    }
    results.push(measure("bare process", runs, || command(Command::new(CONNECTOR))));

    let jail = &results[0];
    let ratio = results.iter().find(|s| s.name.starts_with("bwrap")).map(|b| {
        let r = (jail.p50.as_secs_f64() / b.p50.as_secs_f64(), jail.p99.as_secs_f64() / b.p99.as_secs_f64());
        println!("linux_jail / bwrap: p50 x{:.2}, p99 x{:.2}", r.0, r.1);
        r
    });
    let report = json!({
        "benchmark": "cold_start_to_first_health",
        "runs": runs,
        "cpu_percent": cpu,
        "results": results.iter().map(|s| json!({
            "name": s.name, "p50_ms": s.p50.as_secs_f64() * 1e3, "p99_ms": s.p99.as_secs_f64() * 1e3,
        })).collect::<Vec<_>>(),
        "jail_over_bwrap": ratio.map(|(p50, p99)| json!({ "p50": p50, "p99": p99 })),
    });
    if let Some(path) = std::env::var_os("FCP_BENCH_JSON") {
        std::fs::write(path, format!("{report:#}\n")).expect("write FCP_BENCH_JSON");
    }
}
