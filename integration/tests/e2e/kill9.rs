//! Crash consistency: fcpd is killed with SIGKILL at a random moment while an agent
//! fires invokes, then started again, round after round. fcpd commits each decision,
//! its receipt, its idempotency entry and its audit event in one transaction before it
//! answers (supervisor/src/store.rs), so nothing the agent saw acknowledged may be lost
//! and the audit chain must stay intact.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::harness::{Connector, Node};

const ZONE: &str = "z:work";
const ROUNDS: u64 = 20;

/// xorshift64*: reproducible delays from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One acknowledged call: its idempotency key and the decision record fcp printed.
struct Acked {
    key: String,
    record: Value,
}

#[test]
fn kill_9_during_invokes_loses_nothing_acknowledged() {
    let seed = match std::env::var("FCP_KILL9_SEED") {
        Ok(s) => s.parse().expect("FCP_KILL9_SEED is a u64"),
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1,
    };
    eprintln!("kill -9 delays from FCP_KILL9_SEED={seed}");
    let mut rng = Rng(seed);
    let mut node = Node::start();
    node.install(Connector::Typed, ZONE);
    let grant = node.grant(Connector::Typed, ZONE, "echo", &["--ttl", "1h"]);

    let mut acked: Vec<Acked> = Vec::new();
    let mut last_of_round: Vec<usize> = Vec::new();
    let mut interrupted = 0;
    for round in 0..ROUNDS {
        if round > 0 {
            node.run_fcpd();
        }
        let delay = Duration::from_millis(50 + rng.next() % 300);
        let pid = node.fcpd_pid();
        let stop = AtomicBool::new(false);
        let (got, cut) = std::thread::scope(|s| {
            let agent = s.spawn(|| {
                let mut got = Vec::new();
                let mut cut = 0;
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let key = format!("round-{round}-call-{n}");
                    let input = json!({"round": round, "call": n});
                    let run = node.invoke(
                        Connector::Typed,
                        ZONE,
                        "echo",
                        &input,
                        Some(&grant.token),
                        &["--idempotency-key", &key],
                    );
                    match run.code() {
                        // fcp printed a decision: fcpd acknowledged it.
                        Some(0 | 1) => got.push(Acked { key, record: run.json() }),
                        // fcpd was gone before the answer: nothing was acknowledged.
                        Some(2) => cut += usize::from(run.stderr.contains("closed the connection")),
                        _ => panic!("unexpected result: {run}"),
                    }
                }
                (got, cut)
            });
            std::thread::sleep(delay);
            rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("SIGKILL fcpd");
            stop.store(true, Ordering::SeqCst);
            agent.join().expect("the agent thread")
        });
        node.reap_killed();
        acked.extend(got);
        interrupted += cut;
        if let Some(last) = acked.len().checked_sub(1) {
            last_of_round.push(last);
        }
    }
    node.run_fcpd();
    eprintln!("{ROUNDS} rounds: {} calls acknowledged, {interrupted} cut off mid-call", acked.len());
    assert!(!acked.is_empty(), "no call was acknowledged in {ROUNDS} rounds");

    let verify = node.audit_verify(ZONE);
    assert_eq!(verify.expect_code(0).json()["ok"], true, "{verify}");
    for a in &acked {
        let v = &a.record;
        assert_eq!(
            (v["decision"].as_str(), v["outcome"]["status"].as_str()),
            (Some("allow"), Some("ok")),
            "{} got {v}",
            a.key
        );
        let id = v["request_id"].as_str().expect("request_id");
        let explained = node.explain(id);
        let e = explained.expect_code(0).json();
        assert_eq!(
            (&e["decision"], &e["reason_code"], &e["outcome"], &e["receipt"], &e["audit_seq"]),
            (&v["decision"], &v["reason_code"], &v["outcome"], &v["receipt"], &v["audit_seq"]),
            "the stored decision of {} differs from the acknowledged one",
            a.key
        );
    }
    // The idempotency entry landed with each decision: the call acknowledged last
    // before each kill replays rather than runs again.
    last_of_round.dedup();
    for &i in &last_of_round {
        let a = &acked[i];
        let input = json!({});
        let run =
            node.invoke(Connector::Typed, ZONE, "echo", &input, Some(&grant.token), &["--idempotency-key", &a.key]);
        let v = run.expect_code(0).json();
        assert_eq!((v["replayed"].as_bool(), &v["request_id"]), (Some(true), &a.record["request_id"]), "{run}");
    }
    let events = node.audit_events(ZONE);
    let invoked = events.iter().filter(|e| e["event_type"] == "capability.invoke").count();
    assert!(invoked >= acked.len(), "{invoked} capability.invoke events for {} acknowledged calls", acked.len());
}
