//! Host-protocol framing (proto::host) on arbitrary bytes: neither the supervisor's
//! Framer nor the connector's RequestReader may panic, hold more than the frame cap, or
//! leave the Framer able to send after it poisoned itself. The first bytes pick the cap,
//! the chunk size and which request is in flight.
#![no_main]

use fcp_proto::host::{Event, Framer, Method, Request, RequestReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [cap_byte, chunk_byte, method_byte, rest @ ..] = data else { return };
    let cap = usize::from(*cap_byte) * 4 + 64;
    let chunk = usize::from(*chunk_byte).max(1);
    let request = match Method::ALL[usize::from(*method_byte) % Method::ALL.len()] {
        Method::Introspect => Request::Introspect,
        Method::SelfCheck => Request::SelfCheck,
        Method::Doctor => Request::Doctor,
        Method::Shutdown => Request::Shutdown(Default::default()),
        _ => Request::Health,
    };

    let mut framer = Framer::with_frame_cap(cap);
    let mut reader = RequestReader::with_frame_cap(cap);
    let _ = framer.send(&request);
    for piece in rest.chunks(chunk) {
        for event in framer.push(piece) {
            if let Event::Poisoned { .. } = event {
                assert!(framer.send(&Request::Health).is_err(), "poisoned framer still sends");
            }
        }
        assert!(framer.buffered() <= cap, "framer holds {} > {cap}", framer.buffered());
        if framer.poisoned().is_none() && framer.in_flight().is_none() {
            let _ = framer.send(&request);
        }
        let _ = reader.push(piece);
        assert!(reader.buffered() <= cap, "reader holds {} > {cap}", reader.buffered());
    }
    let _ = framer.eof();
    assert!(framer.poisoned().is_some(), "EOF must poison");
    let _ = reader.finish();
});
