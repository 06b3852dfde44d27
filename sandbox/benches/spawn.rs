//! Spawn-to-exit of the probe (`fcp-sandbox-probe exit 0`) through `PlainProcess`, next to
//! a bare `std::process::Command` of the same binary with the same piped stdio, in one
//! run: the difference is the cost of the pre-exec hardening, the state-dir check and
//! the report pipe.

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use fcp_sandbox::{Degradation, PlainProcess, Sandbox, SpawnSpec};

const PROBE: &str = env!("CARGO_BIN_EXE_fcp-sandbox-probe");

fn spawn_to_exit(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let spec = SpawnSpec::new(PROBE, tmp.path())
        .expect("absolute paths")
        .arg("exit")
        .arg("0")
        .with_degradation(Degradation::allow_plain_process());
    let sandbox = PlainProcess::new();

    let mut group = c.benchmark_group("spawn_to_exit");
    group.bench_function("plain_process", |b| {
        b.iter(|| {
            let mut jailed = sandbox.spawn(black_box(&spec)).expect("spawn");
            assert!(jailed.wait().expect("wait").success());
        })
    });
    group.bench_function("bare_command", |b| {
        b.iter(|| {
            let mut child = Command::new(black_box(PROBE))
                .args(["exit", "0"])
                .current_dir(tmp.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn");
            assert!(child.wait().expect("wait").success());
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    targets = spawn_to_exit
}
criterion_main!(benches);
