//! `fcp bench`: measured, not guessed. `invoke-local` runs a real fcpd in a throwaway
//! home and reports, as JSON, p50/p99 of a local invoke of fcp.echo through the whole
//! pipeline beside a bare Unix-socket round trip measured in the same run, the
//! connector cold start (spawn to first `health` answer) beside a bare spawn of the
//! same binary, and the resident memory of the idle connector.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command as Process, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use fcp_proto::control::{ControlRequest, InvokeCall};
use fcp_proto::package::{host_target, Package};
use serde_json::{json, Value};

use crate::daemon::{find_binary, Client};

/// Benchmarks.
#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Local invoke latency, connector cold start and idle RSS, against baselines.
    InvokeLocal(InvokeLocalArgs),
}

/// `fcp bench invoke-local`.
#[derive(Args)]
pub(crate) struct InvokeLocalArgs {
    /// Measured invokes (after 100 warm-up calls).
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Measured cold starts.
    #[arg(long, default_value_t = 100)]
    cold_starts: usize,
    /// Print JSON only.
    #[arg(long)]
    json: bool,
}

/// Percentiles of a sample, in microseconds.
fn summary(mut d: Vec<Duration>) -> Value {
    d.sort();
    let n = d.len();
    if n == 0 {
        return json!({ "n": 0 });
    }
    let us = |x: Duration| x.as_secs_f64() * 1e6;
    let at = |p: usize| us(d[(n * p / 100).min(n - 1)]);
    let mean = d.iter().map(|x| us(*x)).sum::<f64>() / n as f64;
    json!({ "n": n, "p50_us": at(50), "p90_us": at(90), "p99_us": at(99), "max_us": us(d[n - 1]), "mean_us": mean })
}

fn socket_baseline(dir: &Path, n: usize) -> anyhow::Result<Value> {
    let path = dir.join("baseline.sock");
    let listener = UnixListener::bind(&path)?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (s, _) = listener.accept()?;
        let mut r = BufReader::new(s.try_clone()?);
        let mut w = s;
        let mut line = Vec::new();
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            w.write_all(&line)?;
        }
    });
    let s = UnixStream::connect(&path)?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut w = s;
    let mut msg = vec![b'x'; 199];
    msg.push(b'\n');
    let mut line = Vec::new();
    let mut d = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let t = Instant::now();
        w.write_all(&msg)?;
        line.clear();
        r.read_until(b'\n', &mut line)?;
        if i >= 100 {
            d.push(t.elapsed());
        }
    }
    drop(w);
    drop(r);
    let _ = server.join();
    Ok(summary(d))
}

fn rss_kb(pid: u64) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
    });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned());
    json!({ "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), "cpu": cpu, "kernel": kernel })
}

pub(crate) fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    let BenchCommand::InvokeLocal(a) = cmd;
    let dir = std::env::temp_dir().join(format!("fcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = invoke_local(&dir, &a);
    let _ = std::fs::remove_dir_all(&dir);
    let v = result?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let f = |x: &Value| {
            format!(
                "p50 {:.1} µs, p99 {:.1} µs (n={})",
                x["p50_us"].as_f64().unwrap_or(0.0),
                x["p99_us"].as_f64().unwrap_or(0.0),
                x["n"]
            )
        };
        println!("local invoke (fcp.echo, whole pipeline): {}", f(&v["invoke"]));
        println!("  baseline 200-byte unix socket round trip: {}", f(&v["baseline_socket_roundtrip"]));
        println!("connector cold start (spawn → first health): {}", f(&v["cold_start"]));
        println!("  baseline bare spawn of the same binary:    {}", f(&v["baseline_spawn"]));
        println!("idle connector RSS: {} kB", v["idle_rss_kb"]);
    }
    Ok(ExitCode::SUCCESS)
}

fn invoke_local(dir: &Path, a: &InvokeLocalArgs) -> anyhow::Result<Value> {
    let publisher = fcp_proto::keys::PublisherKey::generate(&mut rand_core::OsRng);
    let state = dir.join("state");
    let out = Process::new(find_binary("fcpd")?)
        .args(["init", "--node-id", "node-bench", "--home"])
        .arg(&state)
        .arg("--trust-publisher")
        .arg(hex::encode(publisher.public().to_bytes()))
        .stdout(Stdio::null())
        .output()
        .context("fcpd init")?;
    anyhow::ensure!(out.status.success(), "fcpd init failed: {}", String::from_utf8_lossy(&out.stderr));
    let fcpd = crate::quickstart::start_fcpd(&state)?;
    let mut c = Client::connect(&fcpd.socket)?;
    let echo = find_binary("fcp-echo")?;
    let (platform, arch) = host_target(std::env::consts::OS, std::env::consts::ARCH)?;
    let pkg = Package::build(
        &publisher,
        include_str!("../../connectors/echo/manifest.toml"),
        &std::fs::read(&echo)?,
        platform,
        arch,
        crate::daemon_now(),
    );
    let pkg_path = dir.join("echo.fcppkg");
    crate::files::write_atomically(&pkg_path, &pkg.to_bytes(), 0o600)?;
    c.must(ControlRequest::Install { package_path: pkg_path.to_string_lossy().into_owned(), zone: "z:work".into() })?;
    let g = c.must(ControlRequest::Grant {
        zone: "z:work".into(),
        connector: "fcp.echo".into(),
        operation: "echo".into(),
        principal: "agent:bench".into(),
        ttl_secs: Some(3600),
    })?;
    let token = g["token_b64"].as_str().map(str::to_owned);
    let call = ControlRequest::Invoke(InvokeCall {
        zone: "z:work".into(),
        connector: "fcp.echo".into(),
        operation: "echo".into(),
        input: json!({ "message": "x".repeat(120) }),
        token_b64: token,
        principal: "agent:bench".into(),
        idempotency_key: None,
        traceparent: None,
        intent: false,
    });
    let mut lat = Vec::with_capacity(a.iterations);
    for i in 0..a.iterations + 100 {
        let t = Instant::now();
        let v = c.must(call.clone())?;
        let e = t.elapsed();
        anyhow::ensure!(v["outcome"]["status"] == "ok", "benchmark call failed: {v}");
        if i >= 100 {
            lat.push(e);
        }
    }
    let baseline = socket_baseline(dir, a.iterations)?;
    let mut cold = Vec::with_capacity(a.cold_starts);
    let mut pid = None;
    for _ in 0..a.cold_starts {
        let v = c.must(ControlRequest::Restart { connector: "fcp.echo".into(), zone: "z:work".into() })?;
        cold.push(Duration::from_micros(v["cold_start_us"].as_u64().unwrap_or(0)));
        pid = v["pid"].as_u64();
    }
    std::thread::sleep(Duration::from_millis(200));
    let rss = pid.and_then(rss_kb);
    let mut spawn = Vec::with_capacity(a.cold_starts);
    for _ in 0..a.cold_starts {
        let t = Instant::now();
        let st = Process::new(&echo).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status()?;
        spawn.push(t.elapsed());
        anyhow::ensure!(st.success() || st.code().is_some(), "echo did not run");
    }
    drop(fcpd);
    Ok(json!({
        "benchmark": "invoke-local",
        "machine": machine(),
        "invoke": summary(lat),
        "baseline_socket_roundtrip": baseline,
        "cold_start": summary(cold),
        "baseline_spawn": summary(spawn),
        "idle_rss_kb": rss,
        "targets": { "invoke_p50_us": 2000, "invoke_p99_us": 10000, "cold_start_p50_us": 100000, "idle_rss_kb": 10240 },
    }))
}
