//! The FCPS_DATAGRAM envelope (digest §2.1).
//!
//! ```text
//! off  len  field
//! 0    16   session_id
//! 16   8    seq            u64 LE
//! 24   16   mac            (session MAC, digest §3.4)
//! 40   ..   fcps_frame_bytes (may be empty)
//! ```

/// Length of the envelope header: session id, seq and MAC.
pub const DATAGRAM_HEADER_LEN: usize = 40;
/// Default limit on the whole UDP payload (digest §2.1).
pub const DEFAULT_MAX_DATAGRAM_BYTES: usize = 1200;
/// Length of a session id.
pub const SESSION_ID_LEN: usize = 16;
/// Length of the truncated session MAC.
pub const MAC_LEN: usize = 16;

/// A decoded datagram envelope. The frame bytes are borrowed from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The session this datagram belongs to.
    pub session_id: [u8; SESSION_ID_LEN],
    /// Per-direction sequence number; must equal the frame's `frame_seq` (digest §2.1).
    pub seq: u64,
    /// Session MAC over `session_id || direction || seq || frame` (digest §3.4).
    pub mac: [u8; MAC_LEN],
    /// The FCPS frame bytes (possibly empty).
    pub frame: &'a [u8],
}

/// Why an envelope was rejected. Checked in this order (`vectors/README.md` §5.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// Fewer than 40 bytes.
    #[error("datagram of {len} bytes is shorter than the 40-byte header")]
    TooShort {
        /// Input length.
        len: usize,
    },
    /// More than the datagram limit.
    #[error("datagram of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl DatagramError {
    /// The stable reason code (`vectors/README.md` §5.9).
    pub fn code(&self) -> &'static str {
        match self {
            DatagramError::TooShort { .. } => "too_short",
            DatagramError::TooLarge { .. } => "too_large",
        }
    }
}

impl<'a> Datagram<'a> {
    /// Length of the encoded datagram.
    pub fn encoded_len(&self) -> usize {
        DATAGRAM_HEADER_LEN + self.frame.len()
    }

    /// `session_id || u64le(seq) || mac || frame`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.session_id);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.mac);
        out.extend_from_slice(self.frame);
    }

    /// Splits a datagram: `too_short` below 40 bytes, then `too_large` above
    /// `max_datagram_bytes` (digest §2.1).
    pub fn decode(bytes: &'a [u8], max_datagram_bytes: usize) -> Result<Self, DatagramError> {
        let Some((header, frame)) = bytes.split_first_chunk::<DATAGRAM_HEADER_LEN>() else {
            return Err(DatagramError::TooShort { len: bytes.len() });
        };
        if bytes.len() > max_datagram_bytes {
            return Err(DatagramError::TooLarge { len: bytes.len(), max: max_datagram_bytes });
        }
        let (session_id, rest) = header.split_first_chunk::<SESSION_ID_LEN>().expect("invariant: 16 <= 40");
        let (seq, mac) = rest.split_first_chunk::<8>().expect("invariant: 8 <= 24");
        let mac: [u8; MAC_LEN] = (*mac).try_into().expect("invariant: 40 - 16 - 8 = 16");
        Ok(Datagram { session_id: *session_id, seq: u64::from_le_bytes(*seq), mac, frame })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn too_short_is_checked_before_too_large() {
        assert_eq!(Datagram::decode(&[0; 39], 10), Err(DatagramError::TooShort { len: 39 }));
        assert_eq!(Datagram::decode(&[0; 41], 40), Err(DatagramError::TooLarge { len: 41, max: 40 }));
        let d = Datagram::decode(&[0; 40], 40).expect("header-only datagram");
        assert_eq!(d.frame, &[] as &[u8]);
    }

    proptest! {
        #[test]
        fn decode_of_encode_is_identity(
            session_id in any::<[u8; 16]>(),
            seq in any::<u64>(),
            mac in any::<[u8; 16]>(),
            frame in proptest::collection::vec(any::<u8>(), 0..1300),
        ) {
            let d = Datagram { session_id, seq, mac, frame: &frame };
            let bytes = d.encode();
            prop_assert_eq!(bytes.len(), d.encoded_len());
            prop_assert_eq!(Datagram::decode(&bytes, usize::MAX), Ok(d));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), max in 0usize..300) {
            match Datagram::decode(&bytes, max) {
                Ok(d) => prop_assert_eq!(d.encode(), bytes),
                Err(e) => prop_assert!(matches!(e.code(), "too_short" | "too_large")),
            }
        }
    }
}
