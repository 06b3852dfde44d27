//! Criterion benchmarks of the protocol core: ObjectId, canonical CBOR, and the
//! audit chain (append, and verification of a 100,000-event chain).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fcp_proto::audit::{verify_chain, AuditChain, AuditEvent, EventDraft};
use fcp_proto::cbor;
use fcp_proto::id::{ObjectId, ObjectIdKey, ZoneId};
use fcp_proto::keys::NodeSigningKey;
use fcp_proto::schema::SchemaId;
use rand_chacha::rand_core::SeedableRng;

fn object_id(c: &mut Criterion) {
    let key = ObjectIdKey([7; 32]);
    let zone = ZoneId::new("z:work").expect("zone");
    let schema = SchemaId::new("fcp.core", "Blob", "1.0.0").expect("schema");
    let mut g = c.benchmark_group("object_id");
    for (name, len) in [("1KiB", 1024usize), ("1MiB", 1 << 20)] {
        let content = vec![0xabu8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(name, |b| b.iter(|| ObjectId::keyed(&key, &zone, &schema, std::hint::black_box(&content))));
    }
    g.finish();
}

fn canonical_cbor(c: &mut Criterion) {
    let v = cbor::Value::Map(
        (0..64).map(|i| (cbor::Value::text(format!("key{i}")), cbor::Value::Bytes(vec![i as u8; 32]))).collect(),
    );
    let bytes = cbor::encode(&v).expect("encode");
    let mut g = c.benchmark_group("cbor");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode_64_entry_map", |b| b.iter(|| cbor::encode(std::hint::black_box(&v))));
    g.bench_function("strict_decode_64_entry_map", |b| {
        b.iter(|| cbor::decode(std::hint::black_box(&bytes), cbor::Limits::CANONICAL))
    });
    g.finish();
}

fn draft(i: u64) -> EventDraft {
    EventDraft {
        event_type: "capability.invoke".into(),
        actor: "agent:bench".into(),
        occurred_at: 1_700_000_000 + i,
        connector_id: Some("fcp.echo".into()),
        operation: Some("echo".into()),
        ..EventDraft::default()
    }
}

fn audit(c: &mut Criterion) {
    let zone = ZoneId::new("z:work").expect("zone");
    let key = ObjectIdKey([3; 32]);
    let node = NodeSigningKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(1));
    let mut g = c.benchmark_group("audit");
    let mut chain = AuditChain::new(zone.clone(), key.clone());
    let mut i = 0u64;
    g.bench_function("append", |b| {
        b.iter(|| {
            i += 1;
            chain.append(draft(i), "node-a", &node).expect("append")
        })
    });
    const N: u64 = 100_000;
    let mut chain = AuditChain::new(zone.clone(), key.clone());
    let events: Vec<AuditEvent> = (0..N).map(|i| chain.append(draft(i), "node-a", &node).expect("append")).collect();
    let pk = node.public();
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    g.bench_function("verify_100k_chain", |b| {
        b.iter_batched(
            || (),
            |()| verify_chain(&zone, &key, &events, |_| Some(pk), None).expect("intact"),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, object_id, canonical_cbor, audit);
criterion_main!(benches);
