//! Cold start of the Linux jail: spawn-to-exit of `fcp-sandbox-probe exit 0` through
//! `LinuxJail` (the whole per-spawn work: ELF resolution, plan, Landlock ruleset,
//! seccomp compilation, clone, mounts, exec), next to `bwrap --unshare-all` of the same
//! binary and a bare `Command`, in one run. Prints p50 and p99 of each.
//!
//! Needs root; `bwrap` is measured when installed. Run with
//! `cargo bench -p fcp-sandbox --bench jail` (FCP_BENCH_RUNS sets the sample count).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fcp_sandbox::{Degradation, Layer, Layers, LinuxJail, Sandbox, SpawnSpec};

const PROBE: &str = env!("CARGO_BIN_EXE_fcp-sandbox-probe");

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99))
}

fn measure(name: &str, runs: usize, mut once: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..runs / 10 {
        once();
    }
    let samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            once();
            start.elapsed()
        })
        .collect();
    let (p50, p99) = percentiles(samples);
    println!("{name:<14} p50 {:>8.3} ms   p99 {:>8.3} ms", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
    (p50, p99)
}

fn main() {
    if !rustix::process::geteuid().is_root() {
        println!("SKIPPED jail cold start: needs root");
        return;
    }
    let runs: usize = std::env::var("FCP_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(200);
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().canonicalize().expect("canonical").join("state");
    let manifest = fcp_policy::manifest::Manifest::parse(include_str!("../tests/data/manifest_minimal.toml"))
        .expect("valid manifest");
    let spec = SpawnSpec::from_manifest(&manifest, PROBE, &state)
        .expect("spec")
        .arg("exit")
        .arg("0")
        .with_degradation(Degradation::AllowMissing(Layers::of(&[Layer::Cgroups])));
    let jail = LinuxJail::new().expect("jail");

    measure("plan_only", runs, || {
        jail.plan(&spec).expect("plan");
    });
    let (jail_p50, jail_p99) = measure("linux_jail", runs, || {
        let mut jailed = jail.spawn(&spec).expect("spawn");
        assert!(jailed.wait().expect("wait").success());
    });
    let bwrap = Command::new("bwrap").arg("--version").output().is_ok_and(|o| o.status.success());
    let bwrap_p50 = bwrap.then(|| {
        measure("bwrap", runs, || {
            let status = Command::new("bwrap")
                .args(["--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
                .args([PROBE, "exit", "0"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .status()
                .expect("bwrap");
            assert!(status.success());
        })
        .0
    });
    measure("bare_command", runs, || {
        let status = Command::new(PROBE)
            .args(["exit", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .status()
            .expect("spawn");
        assert!(status.success());
    });
    match bwrap_p50 {
        Some(b) => println!(
            "linux_jail p50 {} bwrap p50; p99 {} 10 ms",
            if jail_p50 <= b { "<=" } else { ">" },
            if jail_p99 < Duration::from_millis(10) { "<" } else { ">=" }
        ),
        None => println!("bwrap is not installed: no comparison"),
    }
}
