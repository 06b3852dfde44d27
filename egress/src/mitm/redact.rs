//! Masking a connector's secrets out of what an upstream sends back.
//!
//! A [`Needles`] set holds the byte strings that must never reach the connector (each
//! credential's secret and, for Basic, its base64 form). Every occurrence is overwritten
//! with `*` of the same length, so `Content-Length` stays true.
//!
//! [`Redactor`] does this over a streamed body with a bounded buffer: after each chunk it
//! holds back only the longest tail that is a proper prefix of some needle (at most the
//! longest needle less one byte), so an occurrence split across chunks is still masked and
//! text that cannot start a secret (the `\n\n` ending a server-sent event) is never delayed.
//! The output equals masking the whole body at once (see the property test below).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use memchr::memmem;
use zeroize::Zeroizing;

/// The byte every masked byte becomes.
pub(crate) const MASK: u8 = b'*';

/// Byte strings to mask. Empty strings are never needles.
#[derive(Default)]
pub(crate) struct Needles {
    list: Vec<Zeroizing<Vec<u8>>>,
    longest: usize,
}

impl Needles {
    pub(crate) fn new(needles: impl IntoIterator<Item = Zeroizing<Vec<u8>>>) -> Needles {
        let mut list: Vec<Zeroizing<Vec<u8>>> = needles.into_iter().filter(|n| !n.is_empty()).collect();
        list.sort_unstable_by(|a, b| a.as_slice().cmp(b.as_slice()));
        list.dedup_by(|a, b| a.as_slice() == b.as_slice());
        let longest = list.iter().map(|n| n.len()).max().unwrap_or(0);
        Needles { list, longest }
    }

    /// The needles at least `min_len` bytes long.
    pub(crate) fn at_least(&self, min_len: usize) -> Needles {
        Needles::new(self.list.iter().filter(|n| n.len() >= min_len).cloned())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every occurrence of every needle in `haystack`, found on the bytes as given (so
    /// overlapping occurrences of different needles are all found).
    fn find(&self, haystack: &[u8]) -> Vec<Range<usize>> {
        let mut found = Vec::new();
        for needle in &self.list {
            // Overlapping occurrences too (`find_iter` skips them), so masking is the same
            // whatever the chunking.
            let finder = memmem::Finder::new(needle.as_slice());
            let mut from = 0;
            while let Some(at) = haystack.get(from..).and_then(|rest| finder.find(rest)) {
                found.push(from + at..from + at + needle.len());
                from += at + 1;
            }
        }
        found
    }

    /// The length of the longest suffix of `buf` that is a proper prefix of some needle:
    /// the bytes that might be the start of an occurrence completed by the next chunk.
    fn unfinished_tail(&self, buf: &[u8]) -> usize {
        let max = self.longest.saturating_sub(1).min(buf.len());
        (1..=max)
            .rev()
            .find(|&k| {
                let tail = &buf[buf.len() - k..];
                self.list.iter().any(|n| n.len() > k && n.starts_with(tail))
            })
            .unwrap_or(0)
    }

    /// Masks a header value. Returns the new value and how many occurrences were masked,
    /// or `None` when the value holds no needle.
    pub(crate) fn mask_header(&self, value: &HeaderValue) -> Option<(HeaderValue, u64)> {
        let found = self.find(value.as_bytes());
        if found.is_empty() {
            return None;
        }
        let mut bytes = value.as_bytes().to_vec();
        for range in &found {
            bytes[range.clone()].fill(MASK);
        }
        // Masking only replaces bytes of a valid value with `*`, so the value stays valid;
        // should it not, the header is dropped to nothing rather than left holding a secret.
        let masked = HeaderValue::from_bytes(&bytes).unwrap_or_else(|_| HeaderValue::from_static(""));
        Some((masked, found.len() as u64))
    }
}

/// Streams a body through [`Needles`]. Feed chunks to [`push`](Redactor::push), then call
/// [`finish`](Redactor::finish) for the held-back tail.
pub(crate) struct Redactor {
    needles: Arc<Needles>,
    /// Bytes not yet emitted, as the upstream sent them.
    held: Vec<u8>,
    /// Ranges of `held` already known to be inside an occurrence.
    held_masks: Vec<Range<usize>>,
    /// Occurrences masked so far.
    masked: u64,
}

impl Redactor {
    pub(crate) fn new(needles: Arc<Needles>) -> Redactor {
        Redactor { needles, held: Vec::new(), held_masks: Vec::new(), masked: 0 }
    }

    /// How many occurrences have been masked so far.
    pub(crate) fn masked(&self) -> u64 {
        self.masked
    }

    /// Bytes held back, waiting for the next chunk.
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes the next chunk and returns what may be sent on (possibly empty).
    pub(crate) fn push(&mut self, chunk: Bytes) -> Bytes {
        if self.held.is_empty() {
            let found = self.needles.find(&chunk);
            let keep = self.needles.unfinished_tail(&chunk);
            if found.is_empty() {
                // Nothing to mask: send the chunk on without copying, less its tail.
                let cut = chunk.len() - keep;
                self.held.extend_from_slice(&chunk[cut..]);
                return chunk.slice(..cut);
            }
            return self.mask_and_split(chunk.to_vec(), Vec::new(), 0, found, keep);
        }
        let carried = std::mem::take(&mut self.held);
        let carried_len = carried.len();
        let carried_masks = std::mem::take(&mut self.held_masks);
        let mut buf = carried;
        buf.extend_from_slice(&chunk);
        let found = self.needles.find(&buf);
        let keep = self.needles.unfinished_tail(&buf);
        self.mask_and_split(buf, carried_masks, carried_len, found, keep)
    }

    /// Returns the held-back tail at the end of the body.
    pub(crate) fn finish(&mut self) -> Bytes {
        let mut tail = std::mem::take(&mut self.held);
        for range in std::mem::take(&mut self.held_masks) {
            tail[range].fill(MASK);
        }
        Bytes::from(tail)
    }

    /// `buf` starts with `carried_len` held bytes (whose occurrences ending inside them were
    /// counted before) and holds the occurrences `found`; emits all but the last `keep`
    /// bytes, masked, and holds those back with the masks that reach into them.
    fn mask_and_split(
        &mut self,
        mut buf: Vec<u8>,
        mut masks: Vec<Range<usize>>,
        carried_len: usize,
        found: Vec<Range<usize>>,
        keep: usize,
    ) -> Bytes {
        for range in found {
            if range.end > carried_len {
                self.masked += 1;
            }
            masks.push(range);
        }
        let cut = buf.len() - keep;
        for range in &masks {
            if range.end > cut {
                self.held_masks.push(range.start.max(cut) - cut..range.end - cut);
            }
            let emit = range.start.min(cut)..range.end.min(cut);
            buf[emit].fill(MASK);
        }
        self.held = buf.split_off(cut);
        Bytes::from(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn needles(list: &[&str]) -> Arc<Needles> {
        Arc::new(Needles::new(list.iter().map(|n| Zeroizing::new(n.as_bytes().to_vec()))))
    }

    fn run(needles: &Arc<Needles>, chunks: &[&[u8]]) -> (Vec<u8>, u64) {
        let mut r = Redactor::new(needles.clone());
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(&r.push(Bytes::copy_from_slice(chunk)));
        }
        out.extend_from_slice(&r.finish());
        (out, r.masked())
    }

    /// The reference: mask every occurrence found on the whole input at once.
    fn mask_whole(needles: &Needles, input: &[u8]) -> (Vec<u8>, u64) {
        let found = needles.find(input);
        let mut out = input.to_vec();
        for range in &found {
            out[range.clone()].fill(MASK);
        }
        (out, found.len() as u64)
    }

    #[test]
    fn masks_a_secret_split_across_chunks() {
        let n = needles(&["sk-live-123456"]);
        let (out, count) = run(&n, &[b"token=sk-li", b"ve-12", b"3456; done"]);
        assert_eq!(out, b"token=**************; done");
        assert_eq!(count, 1);
    }

    #[test]
    fn overlapping_occurrences_are_masked_whatever_the_chunking() {
        // Found by the property test: `memmem::find_iter` skips overlaps, so "bbb" once
        // came out "**b" whole but "***" in two chunks.
        let n = needles(&["bb"]);
        assert_eq!(run(&n, &[b"cbbb"]), (b"c***".to_vec(), 2));
        assert_eq!(run(&n, &[b"cb", b"bb"]), (b"c***".to_vec(), 2));
    }

    #[test]
    fn holds_back_only_what_could_start_a_secret() {
        let n = needles(&["sk-live-123456"]);
        let mut r = Redactor::new(n);
        assert_eq!(r.push(Bytes::from_static(b"data: {\"x\":1}\n\n")), Bytes::from_static(b"data: {\"x\":1}\n\n"));
        assert_eq!(r.held(), 0);
        assert_eq!(r.push(Bytes::from_static(b"abc sk-")), Bytes::from_static(b"abc "));
        assert_eq!(r.held(), 3);
        assert_eq!(r.push(Bytes::from_static(b"other")), Bytes::from_static(b"sk-other"));
    }

    #[test]
    fn masks_header_values() {
        let n = needles(&["s3cret-value"]);
        let (value, count) =
            n.mask_header(&HeaderValue::from_static("Bearer s3cret-value")).unwrap_or_else(|| panic!("not masked"));
        assert_eq!(value, "Bearer ************");
        assert_eq!(count, 1);
        assert!(n.mask_header(&HeaderValue::from_static("nothing here")).is_none());
    }

    proptest! {
        /// Chunked masking equals masking the whole body, and no needle survives.
        #[test]
        fn chunked_equals_whole(
            needle_list in proptest::collection::vec("[ab]{1,6}", 1..4),
            body in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..10),
        ) {
            let n = Arc::new(Needles::new(needle_list.iter().map(|s| Zeroizing::new(s.as_bytes().to_vec()))));
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for cut in cuts {
                chunks.push(&body[at..cut]);
                at = cut;
            }
            chunks.push(&body[at..]);
            let (out, count) = run(&n, &chunks);
            let (expected, expected_count) = mask_whole(&n, &body);
            prop_assert_eq!(&out, &expected);
            prop_assert_eq!(count, expected_count);
            for needle in &needle_list {
                prop_assert!(memmem::find(&out, needle.as_bytes()).is_none());
            }
        }
    }
}
