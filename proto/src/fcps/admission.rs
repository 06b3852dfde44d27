//! The receiver's admission check for FCPS frames (digest §2.2 "Parse limits",
//! `vectors/README.md` §5.10 "Which bounds the decoder enforces").
//!
//! The raw layout decoder ([`FrameView::parse`]) follows \[I\] and applies no \[S\] bound.
//! This check runs after it, on the decoded header, and enforces what our receiver
//! requires: the frame fits the datagram limit, `symbol_size` is in 256..=16384, at
//! most 256 records (unless configured), and the envelope `seq` equals `frame_seq`
//! (\[S\] §4.3 rule 4).

use super::datagram::{Datagram, DATAGRAM_HEADER_LEN, DEFAULT_MAX_DATAGRAM_BYTES};
use super::frame::FrameView;

/// Smallest admitted symbol size (\[S\]).
pub const MIN_SYMBOL_SIZE: u16 = 256;
/// Largest admitted symbol size (\[S\]).
pub const MAX_SYMBOL_SIZE: u16 = 16384;
/// Default cap on records per frame (\[S\]).
pub const DEFAULT_MAX_SYMBOLS_PER_FRAME: u32 = 256;

/// What the receiver admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Limit on the whole UDP payload: the 40-byte envelope plus the frame.
    pub max_datagram_bytes: usize,
    /// Cap on `symbol_count`.
    pub max_symbols_per_frame: u32,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_datagram_bytes: DEFAULT_MAX_DATAGRAM_BYTES,
            max_symbols_per_frame: DEFAULT_MAX_SYMBOLS_PER_FRAME,
        }
    }
}

/// Why a well-formed frame is not admitted. Checked in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// Envelope plus frame exceed the datagram limit (\[I\] checks this first).
    #[error("frame of {frame_len} bytes does not fit a datagram of at most {max_datagram_bytes} bytes")]
    FrameTooLarge {
        /// The frame's length.
        frame_len: usize,
        /// The datagram limit.
        max_datagram_bytes: usize,
    },
    /// `symbol_size` outside 256..=16384.
    #[error("symbol size {0} is outside 256..=16384")]
    SymbolSizeOutOfBounds(u16),
    /// More records than allowed.
    #[error("{count} symbols exceed the limit of {max}")]
    TooManySymbols {
        /// The frame's `symbol_count`.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// The envelope `seq` differs from the frame's `frame_seq`.
    #[error("datagram seq {envelope} differs from frame_seq {frame}")]
    SeqMismatch {
        /// The envelope's seq.
        envelope: u64,
        /// The frame's frame_seq.
        frame: u64,
    },
}

impl AdmissionError {
    /// The stable reason code (ours).
    pub fn code(&self) -> &'static str {
        match self {
            AdmissionError::FrameTooLarge { .. } => "frame_too_large",
            AdmissionError::SymbolSizeOutOfBounds(_) => "symbol_size_out_of_bounds",
            AdmissionError::TooManySymbols { .. } => "too_many_symbols",
            AdmissionError::SeqMismatch { .. } => "seq_mismatch",
        }
    }
}

/// The frame-only part of admission: datagram limit, symbol size and count.
pub fn check_frame(frame: &FrameView<'_>, limits: &AdmissionLimits) -> Result<(), AdmissionError> {
    if frame.len().saturating_add(DATAGRAM_HEADER_LEN) > limits.max_datagram_bytes {
        return Err(AdmissionError::FrameTooLarge {
            frame_len: frame.len(),
            max_datagram_bytes: limits.max_datagram_bytes,
        });
    }
    let size = frame.header().symbol_size;
    if !(MIN_SYMBOL_SIZE..=MAX_SYMBOL_SIZE).contains(&size) {
        return Err(AdmissionError::SymbolSizeOutOfBounds(size));
    }
    if frame.symbol_count() > limits.max_symbols_per_frame {
        return Err(AdmissionError::TooManySymbols { count: frame.symbol_count(), max: limits.max_symbols_per_frame });
    }
    Ok(())
}

/// Admits a frame received in `datagram`: [`check_frame`], then `seq == frame_seq`.
pub fn admit(datagram: &Datagram<'_>, frame: &FrameView<'_>, limits: &AdmissionLimits) -> Result<(), AdmissionError> {
    check_frame(frame, limits)?;
    if datagram.seq != frame.header().frame_seq {
        return Err(AdmissionError::SeqMismatch { envelope: datagram.seq, frame: frame.header().frame_seq });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fcps::frame::{FcpsFrame, FrameFlags, FrameHeader, SymbolRecord};
    use crate::id::{EpochId, ObjectId};

    fn frame(symbol_size: u16, count: usize, frame_seq: u64) -> Vec<u8> {
        let header = FrameHeader {
            flags: FrameFlags::DEFAULT,
            object_id: ObjectId([1; 32]),
            symbol_size,
            zone_key_id: [2; 8],
            zone_id_hash: [3; 32],
            epoch_id: EpochId(4),
            sender_instance_id: 5,
            frame_seq,
        };
        let rec = SymbolRecord { esi: 0, k: 1, data: vec![0; usize::from(symbol_size)], auth_tag: [0; 16] };
        FcpsFrame::new(header, vec![rec; count]).expect("valid").encode()
    }

    fn verdict(bytes: &[u8], seq: u64, limits: AdmissionLimits) -> &'static str {
        let view = FrameView::parse(bytes).expect("layout is valid");
        let d = Datagram { session_id: [0; 16], seq, mac: [0; 16], frame: bytes };
        admit(&d, &view, &limits).map_or_else(|e| e.code(), |()| "ok")
    }

    #[test]
    fn one_1024_byte_symbol_fills_1200_exactly() {
        let f = frame(1024, 1, 9);
        assert_eq!(f.len() + DATAGRAM_HEADER_LEN, 1200);
        assert_eq!(verdict(&f, 9, AdmissionLimits::default()), "ok");
        assert_eq!(verdict(&frame(1025, 1, 9), 9, AdmissionLimits::default()), "frame_too_large");
    }

    #[test]
    fn bounds_and_seq() {
        let big = AdmissionLimits { max_datagram_bytes: usize::MAX, ..AdmissionLimits::default() };
        assert_eq!(verdict(&frame(8, 1, 1), 1, big), "symbol_size_out_of_bounds");
        assert_eq!(verdict(&frame(255, 1, 1), 1, big), "symbol_size_out_of_bounds");
        assert_eq!(verdict(&frame(256, 1, 1), 1, big), "ok");
        assert_eq!(verdict(&frame(16384, 1, 1), 1, big), "ok");
        assert_eq!(verdict(&frame(16385, 1, 1), 1, big), "symbol_size_out_of_bounds");
        assert_eq!(verdict(&frame(256, 256, 1), 1, big), "ok");
        assert_eq!(verdict(&frame(256, 257, 1), 1, big), "too_many_symbols");
        let more = AdmissionLimits { max_symbols_per_frame: 300, ..big };
        assert_eq!(verdict(&frame(256, 257, 1), 1, more), "ok");
        assert_eq!(verdict(&frame(256, 1, 1), 2, big), "seq_mismatch");
    }
}
