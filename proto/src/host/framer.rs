//! The host side of the channel (host-protocol §1, §2): one request in flight, replies
//! matched by id, stale replies from before a timeout discarded, and the channel
//! poisoned on any desync, after which the caller kills and respawns the connector.

use serde_json::Value;

use super::lines::{Line, LineBuffer};
use super::reply::{PendingRequest, Reply, ReplyError};
use super::request::{encode_request_within, Method, Request, RequestError, RequestId};
use super::MAX_FRAME_BYTES;

/// A request line to write to the connector's stdin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Its id.
    pub id: RequestId,
    /// The line, `\n` included.
    pub bytes: Vec<u8>,
}

/// What the stdout bytes amounted to.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The reply to the request in flight (boxed: it is large beside the other events).
    Reply(Box<Reply>),
    /// The reply to the request in flight, in sync but unacceptable; the call fails.
    Rejected {
        /// The request id.
        id: RequestId,
        /// The request's method.
        method: Method,
        /// Why.
        error: ReplyError,
    },
    /// A late reply to a request abandoned at a timeout; discard it (log a warning).
    Stale {
        /// Its id.
        id: RequestId,
    },
    /// The channel is dead: kill the connector. Every later call fails at once.
    Poisoned {
        /// Why.
        error: FramerError,
        /// The request that was in flight, if any (an invoke whose response was too
        /// long becomes [`InvokeResponse::frame_overflow`](super::InvokeResponse::frame_overflow)).
        in_flight: Option<PendingRequest>,
    },
}

/// A channel failure. [`FramerError::poisons`] tells the desyncs (the connector is killed)
/// from refusals that leave the channel as it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramerError {
    /// A request is already in flight (local; nothing changes).
    #[error("request {in_flight} is still in flight")]
    Busy {
        /// The request in flight.
        in_flight: RequestId,
    },
    /// The channel was poisoned earlier (local).
    #[error("channel is poisoned")]
    Dead,
    /// The request could not be encoded, or is over the cap (local; nothing changes).
    #[error("encode request")]
    Request(#[source] RequestError),
    /// Writing to stdin failed (reported by the caller).
    #[error("write to connector failed")]
    WriteFailed,
    /// A response line passed the frame cap.
    #[error("response line exceeds {limit} bytes ({seen} seen)")]
    ResponseTooLong {
        /// The cap.
        limit: usize,
        /// Bytes seen when the cap broke.
        seen: usize,
    },
    /// A response line that is not UTF-8.
    #[error("response line is not valid UTF-8")]
    InvalidUtf8,
    /// A response line that is not JSON.
    #[error("response line is not JSON: {reason}")]
    InvalidJson {
        /// The parser's message.
        reason: String,
    },
    /// JSON that is not an object.
    #[error("response is not a JSON object")]
    NotAnObject,
    /// An object with a `method`: connectors never send requests or notifications.
    #[error("connector sent a request or notification")]
    NotAResponse,
    /// A response without an `id` (the `FCP-1001` answer to a line it could not parse).
    #[error("response has no id")]
    MissingId,
    /// An `id` that is not an `"<epoch>:<seq>"` string.
    #[error("response id {id} is not an epoch:seq string")]
    MalformedId {
        /// The id as JSON text.
        id: String,
    },
    /// An id of the current epoch that is not the request in flight.
    #[error("response id {id} matches no request in flight")]
    UnexpectedId {
        /// The id.
        id: RequestId,
    },
    /// Stdout closed.
    #[error("connector closed stdout ({partial} bytes of an unfinished line)")]
    Eof {
        /// Bytes of an unterminated line.
        partial: usize,
    },
}

impl FramerError {
    /// Whether this error kills the channel.
    pub fn poisons(&self) -> bool {
        !matches!(self, FramerError::Busy { .. } | FramerError::Dead | FramerError::Request(_))
    }

    /// Whether the connector is to blame.
    pub fn peer_fault(&self) -> bool {
        self.poisons() && !matches!(self, FramerError::WriteFailed)
    }

    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            FramerError::Busy { .. } => "busy",
            FramerError::Dead => "poisoned",
            FramerError::Request(_) => "request_refused",
            FramerError::WriteFailed => "write_failed",
            FramerError::ResponseTooLong { .. } => "response_too_long",
            FramerError::InvalidUtf8 => "invalid_utf8",
            FramerError::InvalidJson { .. } => "invalid_json",
            FramerError::NotAnObject => "not_an_object",
            FramerError::NotAResponse => "not_a_response",
            FramerError::MissingId => "missing_id",
            FramerError::MalformedId { .. } => "malformed_id",
            FramerError::UnexpectedId { .. } => "unexpected_id",
            FramerError::Eof { .. } => "eof",
        }
    }
}

/// Sans-IO host end of one connector process.
///
/// ```text
/// let out = framer.send(&Request::Health)?;   write out.bytes to stdin (10 s limit)
/// for event in framer.push(&stdout_bytes) { … }   until a Reply/Rejected for out.id
/// on a 10 s read timeout: framer.timed_out()   (not poisoned; epoch + 1)
/// on stdout EOF: framer.eof();  on a write error: framer.write_failed()
/// ```
#[derive(Debug)]
pub struct Framer {
    lines: LineBuffer,
    frame_cap: usize,
    epoch: u64,
    next_seq: u64,
    in_flight: Option<PendingRequest>,
    poisoned: Option<FramerError>,
}

impl Default for Framer {
    fn default() -> Framer {
        Framer::new()
    }
}

impl Framer {
    /// A channel with the 64 KiB cap.
    pub fn new() -> Framer {
        Framer::with_frame_cap(MAX_FRAME_BYTES)
    }

    /// A channel with another cap, in both directions.
    pub fn with_frame_cap(frame_cap: usize) -> Framer {
        Framer { lines: LineBuffer::new(frame_cap), frame_cap, epoch: 0, next_seq: 0, in_flight: None, poisoned: None }
    }

    /// Encodes `request` with the next id and marks it in flight. Refused, with nothing
    /// changed, while another request is in flight, after poisoning, or when the line
    /// would pass the cap.
    pub fn send(&mut self, request: &Request) -> Result<Outgoing, FramerError> {
        if self.poisoned.is_some() {
            return Err(FramerError::Dead);
        }
        if let Some(p) = &self.in_flight {
            return Err(FramerError::Busy { in_flight: p.id() });
        }
        let id = RequestId { epoch: self.epoch, seq: self.next_seq };
        let bytes = encode_request_within(id, request, self.frame_cap).map_err(FramerError::Request)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.in_flight = Some(PendingRequest::new(id, request));
        Ok(Outgoing { id, bytes })
    }

    /// Takes bytes read from stdout.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        if self.poisoned.is_some() {
            return events;
        }
        for line in self.lines.push(bytes) {
            let event = match line {
                Line::Complete(line) => self.line(&line),
                Line::TooLong { seen } => {
                    Some(self.poison(FramerError::ResponseTooLong { limit: self.frame_cap, seen }))
                }
            };
            events.extend(event);
            if self.poisoned.is_some() {
                break;
            }
        }
        events
    }

    /// Stdout closed: always fatal.
    pub fn eof(&mut self) -> Vec<Event> {
        if self.poisoned.is_some() {
            return Vec::new();
        }
        let partial = self.lines.buffered();
        vec![self.poison(FramerError::Eof { partial })]
    }

    /// Writing the request failed: fatal.
    pub fn write_failed(&mut self) -> Vec<Event> {
        if self.poisoned.is_some() {
            return Vec::new();
        }
        vec![self.poison(FramerError::WriteFailed)]
    }

    /// The read of the request in flight timed out: it is abandoned and the epoch goes
    /// up, so its late reply is [`Event::Stale`]. Not fatal. Returns the abandoned id.
    pub fn timed_out(&mut self) -> Option<RequestId> {
        let abandoned = self.in_flight.take()?;
        self.epoch = self.epoch.wrapping_add(1);
        Some(abandoned.id())
    }

    /// Why the channel died, if it did.
    pub fn poisoned(&self) -> Option<&FramerError> {
        self.poisoned.as_ref()
    }

    /// The request in flight.
    pub fn in_flight(&self) -> Option<&PendingRequest> {
        self.in_flight.as_ref()
    }

    /// Bytes held from an unfinished line, never more than the cap.
    pub fn buffered(&self) -> usize {
        self.lines.buffered()
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn poison(&mut self, error: FramerError) -> Event {
        self.poisoned = Some(error.clone());
        self.lines = LineBuffer::new(0);
        Event::Poisoned { error, in_flight: self.in_flight.take() }
    }

    fn line(&mut self, line: &[u8]) -> Option<Event> {
        match self.match_line(line) {
            Ok(Some(event)) => Some(event),
            Ok(None) => None,
            Err(error) => Some(self.poison(error)),
        }
    }

    fn match_line(&mut self, line: &[u8]) -> Result<Option<Event>, FramerError> {
        let text = std::str::from_utf8(line).map_err(|_| FramerError::InvalidUtf8)?;
        let value: Value =
            serde_json::from_str(text).map_err(|e| FramerError::InvalidJson { reason: e.to_string() })?;
        let Value::Object(mut response) = value else { return Err(FramerError::NotAnObject) };
        if response.contains_key("method") {
            return Err(FramerError::NotAResponse);
        }
        let raw_id = response.remove("id").ok_or(FramerError::MissingId)?;
        let id = raw_id
            .as_str()
            .and_then(RequestId::parse)
            .ok_or_else(|| FramerError::MalformedId { id: raw_id.to_string() })?;
        if id.epoch < self.epoch {
            return Ok(Some(Event::Stale { id }));
        }
        let pending = match self.in_flight.take() {
            Some(p) if p.id() == id => p,
            other => {
                self.in_flight = other;
                return Err(FramerError::UnexpectedId { id });
            }
        };
        Ok(Some(match pending.decode(response) {
            Ok(reply) => Event::Reply(Box::new(reply)),
            Err(error) => Event::Rejected { id, method: pending.method(), error },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fcp_error::ErrorCode;
    use crate::host::reply::ReplyBody;
    use proptest::prelude::*;
    use serde_json::json;

    fn reply_line(id: &str, result: Value) -> Vec<u8> {
        let mut line = json!({"id": id, "jsonrpc": "2.0", "result": result}).to_string().into_bytes();
        line.push(b'\n');
        line
    }

    fn poisoned_by(events: &[Event]) -> &str {
        match events {
            [Event::Poisoned { error, .. }] => error.code(),
            other => panic!("expected one poisoning, got {other:?}"),
        }
    }

    #[test]
    fn one_request_in_flight_and_ids_count_up() {
        let mut f = Framer::new();
        let a = f.send(&Request::Health).expect("sent");
        assert_eq!(a.id.to_string(), "0:0");
        assert!(matches!(f.send(&Request::Health), Err(FramerError::Busy { in_flight }) if in_flight == a.id));
        let events = f.push(&reply_line("0:0", json!({"status": {"state": "ready"}, "uptime_ms": 1})));
        assert!(matches!(&events[..], [Event::Reply(r)] if r.id == a.id && r.outcome.is_ok()), "{events:?}");
        assert_eq!(f.send(&Request::Introspect).expect("sent").id.to_string(), "0:1");
    }

    #[test]
    fn replies_split_across_reads_are_reassembled() {
        let mut f = Framer::new();
        f.send(&Request::Doctor).expect("sent");
        let line = reply_line("0:0", json!({"ready": true}));
        let (a, b) = line.split_at(7);
        assert_eq!(f.push(a), []);
        assert_eq!(f.buffered(), 7);
        assert!(matches!(&f.push(b)[..], [Event::Reply(_)]));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn timeouts_bump_the_epoch_and_late_replies_are_stale() {
        let mut f = Framer::new();
        let first = f.send(&Request::Health).expect("sent");
        assert_eq!(f.timed_out(), Some(first.id));
        assert_eq!(f.timed_out(), None);
        let second = f.send(&Request::Health).expect("sent after a timeout");
        assert_eq!(second.id.to_string(), "1:1", "seq keeps counting across epochs");
        let mut bytes = reply_line("0:0", json!({}));
        bytes.extend(reply_line("1:1", json!({"status": "ok"})));
        let events = f.push(&bytes);
        assert!(matches!(&events[..], [Event::Stale { id }, Event::Reply(r)] if *id == first.id && r.id == second.id));
        assert_eq!(f.poisoned(), None);
    }

    #[test]
    fn every_desync_poisons() {
        let cases: Vec<(&[u8], &str)> = vec![
            (b"\xff\xfe\n", "invalid_utf8"),
            (b"not json\n", "invalid_json"),
            (b"\n", "invalid_json"),
            (b"[1]\n", "not_an_object"),
            (b"{\"jsonrpc\":\"2.0\",\"method\":\"log\",\"params\":{}}\n", "not_a_response"),
            (b"{\"error\":{\"code\":\"FCP-1001\",\"message\":\"Invalid JSON\"}}\n", "missing_id"),
            (b"{\"id\":0,\"result\":{}}\n", "malformed_id"),
            (b"{\"id\":\"00:0\",\"result\":{}}\n", "malformed_id"),
            (b"{\"id\":\"0:9\",\"result\":{}}\n", "unexpected_id"),
            (b"{\"id\":\"3:0\",\"result\":{}}\n", "unexpected_id"),
        ];
        for (line, code) in cases {
            let mut f = Framer::new();
            f.send(&Request::Health).expect("sent");
            let events = f.push(line);
            assert_eq!(poisoned_by(&events), code, "{}", String::from_utf8_lossy(line));
            assert!(matches!(&events[0], Event::Poisoned { in_flight: Some(p), .. } if p.method() == Method::Health));
            assert!(matches!(f.send(&Request::Health), Err(FramerError::Dead)));
            assert_eq!(f.push(&reply_line("0:0", json!({}))), []);
            assert_eq!(f.eof(), []);
        }
    }

    #[test]
    fn unsolicited_and_extra_lines_poison() {
        let mut f = Framer::new();
        assert_eq!(poisoned_by(&f.push(&reply_line("0:0", json!({})))), "unexpected_id");
        let mut f = Framer::new();
        f.send(&Request::Health).expect("sent");
        let mut two = reply_line("0:0", json!({}));
        two.extend(reply_line("0:0", json!({})));
        let events = f.push(&two);
        assert!(matches!(
            &events[..],
            [Event::Reply(_), Event::Poisoned { error: FramerError::UnexpectedId { .. }, in_flight: None }]
        ));
    }

    #[test]
    fn long_responses_poison_at_the_first_byte_over_the_cap() {
        let mut f = Framer::with_frame_cap(64);
        f.send(&Request::Health).expect("sent");
        assert_eq!(f.push(&[b' '; 64]), []);
        let events = f.push(b" ");
        assert!(matches!(
            &events[..],
            [Event::Poisoned { error: FramerError::ResponseTooLong { limit: 64, seen: 65 }, in_flight: Some(_) }]
        ));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn long_requests_are_refused_without_poisoning() {
        let mut f = Framer::with_frame_cap(60);
        let mut config = serde_json::Map::new();
        config.insert("k".into(), json!("v".repeat(64)));
        let err = f.send(&Request::Configure(config)).expect_err("too long");
        assert!(!err.poisons());
        assert!(matches!(err, FramerError::Request(RequestError::Oversized { limit: 60, .. })));
        assert_eq!(f.send(&Request::Health).expect("still usable").id.to_string(), "0:0");
    }

    #[test]
    fn eof_and_write_errors_poison() {
        let mut f = Framer::new();
        f.send(&Request::Health).expect("sent");
        f.push(b"{\"id\"");
        assert!(matches!(&f.eof()[..], [Event::Poisoned { error: FramerError::Eof { partial: 5 }, .. }]));
        let mut f = Framer::new();
        assert_eq!(poisoned_by(&f.write_failed()), "write_failed");
        assert!(!FramerError::WriteFailed.peer_fault());
        assert!(FramerError::MissingId.peer_fault());
    }

    #[test]
    fn rejected_replies_keep_the_channel() {
        let mut f = Framer::new();
        f.send(&Request::Simulate(Box::new(crate::host::invoke::SimulateRequest {
            id: "s".into(),
            connector_id: crate::id::CanonicalId::new("fcp.x").expect("id"),
            operation: crate::id::CanonicalId::new("x.op").expect("id"),
            zone_id: crate::id::ZoneId::new("z:work").expect("zone"),
            input: json!({}),
            capability_token: Default::default(),
            estimate_cost: false,
            check_availability: false,
            context: None,
            correlation_id: None,
        })))
        .expect("sent");
        let events = f.push(&reply_line("0:0", json!({"unexpected": 1})));
        assert!(matches!(
            &events[..],
            [Event::Rejected { method: Method::Simulate, error: ReplyError::Malformed { .. }, .. }]
        ));
        assert_eq!(f.poisoned(), None);
        f.send(&Request::Health).expect("usable");
    }

    #[test]
    fn errors_are_replies_not_desyncs() {
        let mut f = Framer::new();
        f.send(&Request::Health).expect("sent");
        let events = f.push(b"{\"error\":{\"code\":\"FCP-1002\",\"message\":\"x\",\"retryable\":false},\"id\":\"0:0\",\"jsonrpc\":\"2.0\"}\r\n");
        let [Event::Reply(r)] = &events[..] else { panic!("{events:?}") };
        assert_eq!(r.outcome.as_ref().map_err(|e| e.code()), Err(ErrorCode::UNKNOWN_METHOD));
        assert!(!matches!(r.outcome, Ok(ReplyBody::Health(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_nor_overfill(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20),
            cap in 0usize..300,
            send_first in any::<bool>(),
        ) {
            let mut f = Framer::with_frame_cap(cap);
            if send_first {
                let _ = f.send(&Request::Health);
            }
            for chunk in &chunks {
                let _ = f.push(chunk);
                prop_assert!(f.buffered() <= cap);
                if f.poisoned().is_none() && f.in_flight().is_none() {
                    let _ = f.send(&Request::Doctor);
                }
            }
            let _ = f.eof();
            prop_assert!(f.poisoned().is_some());
        }

        #[test]
        fn reply_chunking_does_not_matter(cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let mut f = Framer::new();
            f.send(&Request::Introspect).expect("sent");
            let line = reply_line("0:0", json!({"operations": [], "events": [], "resource_types": []}));
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (line.len() + 1)).collect();
            points.sort_unstable();
            let mut events = Vec::new();
            let mut last = 0;
            for p in points.into_iter().chain([line.len()]) {
                events.extend(f.push(&line[last..p]));
                last = p;
            }
            prop_assert!(matches!(&events[..], [Event::Reply(r)] if r.outcome.is_ok()));
        }
    }
}
