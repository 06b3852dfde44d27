//! FCPS data plane (digest §2): the datagram envelope (§2.1), the frame layout
//! (§2.2), the receiver's admission bounds, per-symbol AEAD (§2.3) and the signed
//! SymbolRequest / DecodeStatus / SymbolAck transcripts (§2.4).
//!
//! A receiver runs these steps in order, each with its own error type:
//!
//! 1. [`Datagram::decode`]: the 40-byte envelope and the datagram size limit
//!    ([`DatagramError`]).
//! 2. The session replay window and MAC over the frame bytes (`crate::session`).
//! 3. [`FrameView::parse`]: the raw layout, exactly the seven ordered rules of
//!    `vectors/README.md` §5.10 ([`FrameError`]).
//! 4. [`admission::admit`]: the \[S\] bounds, the datagram limit and the envelope/frame
//!    sequence match ([`AdmissionError`]).
//! 5. [`SenderKey::open_symbol`] for each record ([`AeadError`]).
//!
//! Everything here is a pure function of its arguments: no I/O, no clock, no RNG.

pub mod admission;
pub mod aead;
pub mod datagram;
pub mod frame;
pub mod transcript;

pub use admission::{admit, AdmissionError, AdmissionLimits};
pub use aead::{AeadError, SenderKey, SymbolCipher, ZoneSymmetricKey};
pub use datagram::{Datagram, DatagramError, DATAGRAM_HEADER_LEN, DEFAULT_MAX_DATAGRAM_BYTES};
pub use frame::{FcpsFrame, FrameError, FrameFlags, FrameHeader, FrameView, SymbolRecord, SymbolRef};
pub use transcript::{AckReason, DecodeStatus, SymbolAck, SymbolRequest, TranscriptError};
