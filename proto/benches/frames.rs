//! Criterion benchmarks of the data and control planes: FCPC seal/open throughput,
//! FCPS frame decoding and per-symbol AEAD, the session MAC, and a whole handshake.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fcp_proto::fcpc::{self, ContextKey, FcpcFlags, DEFAULT_MAX_PAYLOAD_LEN};
use fcp_proto::fcps::{FcpsFrame, FrameFlags, FrameHeader, FrameView, SymbolCipher, SymbolRecord, ZoneSymmetricKey};
use fcp_proto::id::{CanonicalId, EpochId, ObjectId};
use fcp_proto::keys::NodeSigningKey;
use fcp_proto::session::{
    session_mac, CookieKey, Direction, Initiator, InitiatorConfig, LocalIdentity, MacKey, Responder, ResponderConfig,
    SessionId, Suite,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::hint::black_box;

fn fcpc(c: &mut Criterion) {
    let key = ContextKey::from_bytes([0x11; 32]);
    let dir = Direction::InitiatorToResponder;
    let mut g = c.benchmark_group("fcpc");
    for (name, len) in [("1KiB", 1024usize), ("64KiB", 64 * 1024)] {
        let payload = vec![0x5a; len];
        let frame = fcpc::seal(&key, dir, &[7; 16], 1, FcpcFlags::empty(), &payload).expect("seal");
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(format!("seal_{name}"), |b| {
            b.iter(|| fcpc::seal(&key, dir, &[7; 16], 1, FcpcFlags::empty(), black_box(&payload)))
        });
        g.bench_function(format!("open_{name}"), |b| {
            b.iter(|| fcpc::open(&key, dir, black_box(&frame), DEFAULT_MAX_PAYLOAD_LEN).expect("open"))
        });
    }
    g.finish();
}

fn header(symbol_size: u16) -> FrameHeader {
    FrameHeader {
        flags: FrameFlags::DEFAULT,
        object_id: ObjectId([1; 32]),
        symbol_size,
        zone_key_id: [2; 8],
        zone_id_hash: [3; 32],
        epoch_id: EpochId(4),
        sender_instance_id: 5,
        frame_seq: 6,
    }
}

fn fcps(c: &mut Criterion) {
    let mut g = c.benchmark_group("fcps");
    for (name, count) in [("1x1024", 1usize), ("64x1024", 64)] {
        let symbols: Vec<SymbolRecord> = (0..count)
            .map(|i| SymbolRecord { esi: i as u32, k: 64, data: vec![i as u8; 1024], auth_tag: [9; 16] })
            .collect();
        let bytes = FcpsFrame::new(header(1024), symbols).expect("frame").encode();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("parse_view_{name}"), |b| {
            b.iter(|| {
                let v = FrameView::parse(black_box(&bytes)).expect("parse");
                v.symbols().map(|s| s.esi).sum::<u32>()
            })
        });
        g.bench_function(format!("decode_owned_{name}"), |b| b.iter(|| FcpsFrame::decode(black_box(&bytes))));
    }
    let key = ZoneSymmetricKey::new([2; 8], [8; 32], SymbolCipher::ChaCha20Poly1305).derive_sender_key("node-a", 5);
    let h = header(1024);
    let rec = key.seal_symbol(&h, 0, 1, vec![0; 1024]).expect("seal");
    let frame = FcpsFrame::new(h, vec![rec]).expect("frame").encode();
    let view = FrameView::parse(&frame).expect("parse");
    let sym = view.symbols().next().expect("one symbol");
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("symbol_seal_1024", |b| {
        b.iter_batched(|| vec![0u8; 1024], |d| key.seal_symbol(&h, 0, 1, d).expect("seal"), BatchSize::SmallInput)
    });
    g.bench_function("symbol_open_1024", |b| b.iter(|| key.open_symbol(view.header(), black_box(&sym)).expect("open")));
    g.finish();
}

fn mac(c: &mut Criterion) {
    let key = MacKey::from_bytes([0x42; 32]);
    let sid = SessionId([0x88; 16]);
    let frame = vec![0xab; 1160];
    let mut g = c.benchmark_group("session_mac");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    for suite in [Suite::Suite1, Suite::Suite2] {
        g.bench_function(format!("{}_1160", suite.label()), |b| {
            b.iter(|| session_mac(suite, &key, &sid, Direction::InitiatorToResponder, 7, black_box(&frame)))
        });
    }
    g.finish();
}

fn handshake(c: &mut Criterion) {
    let id = |s: &str| CanonicalId::new(s).expect("id");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let a_key = NodeSigningKey::generate(&mut rng);
    let b_key = NodeSigningKey::generate(&mut rng);
    let (a_pub, b_pub) = (a_key.public(), b_key.public());
    let mut responder = Responder::new(
        LocalIdentity::new(id("node-b"), b_key),
        ResponderConfig::default(),
        CookieKey::from_bytes([1; 32]),
    );
    responder.trust_peer(id("node-a"), a_pub);
    let a_seed = a_key.to_seed();
    c.bench_function("handshake/full", |b| {
        b.iter(|| {
            let me = LocalIdentity::new(id("node-a"), NodeSigningKey::from_seed(&a_seed));
            let mut i = Initiator::start(me, id("node-b"), b_pub, InitiatorConfig::default(), 1_700_000_000, &mut rng);
            let hello = i.poll_transmit().expect("hello");
            responder.handle(1_700_000_000, &hello, &mut rng).expect("accepted");
            let ack = responder.poll_transmit().expect("ack");
            i.handle(1_700_000_000, &ack.payload).expect("established");
            (i.take_session(), responder.poll_session())
        })
    });
}

criterion_group!(benches, fcpc, fcps, mac, handshake);
criterion_main!(benches);
