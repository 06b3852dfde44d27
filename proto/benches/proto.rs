//! Criterion benchmarks of the protocol core.
use criterion::{criterion_group, criterion_main, Criterion};

fn object_id(c: &mut Criterion) {
    use fcp_proto::id::{ObjectId, ObjectIdKey, ZoneId};
    use fcp_proto::schema::SchemaId;
    let key = ObjectIdKey([7; 32]);
    let zone = ZoneId::new("z:work").expect("zone");
    let schema = SchemaId::new("fcp.core", "Blob", "1.0.0").expect("schema");
    for (name, len) in [("object_id_1KiB", 1024usize), ("object_id_1MiB", 1 << 20)] {
        let content = vec![0xabu8; len];
        c.bench_function(name, |b| b.iter(|| ObjectId::keyed(&key, &zone, &schema, std::hint::black_box(&content))));
    }
}

criterion_group!(benches, object_id);
criterion_main!(benches);
