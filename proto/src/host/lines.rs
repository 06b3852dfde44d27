//! Line splitting with a hard cap (host-protocol §1). Neither splitter ever holds more
//! than its cap, however the bytes arrive.

use std::mem;

/// One item out of a [`LineBuffer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, without its `\n`, at most the cap long.
    Complete(Vec<u8>),
    /// The current line passed the cap: `seen` bytes arrived without a `\n`
    /// (`seen` is more than the cap). The rest of the line, up to its `\n`, is dropped.
    TooLong {
        /// Bytes of the line seen so far.
        seen: usize,
    },
}

/// Splits a byte stream at `\n` into lines of at most `cap` bytes.
#[derive(Clone, Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    cap: usize,
    discarding: bool,
}

impl LineBuffer {
    /// A splitter for lines of at most `cap` bytes, not counting the `\n`.
    pub fn new(cap: usize) -> LineBuffer {
        LineBuffer { buf: Vec::new(), cap, discarding: false }
    }

    /// Takes the next bytes; returns the lines they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.absorb(&bytes[..nl], &mut out);
            if self.discarding {
                self.discarding = false;
            } else {
                out.push(Line::Complete(mem::take(&mut self.buf)));
            }
            bytes = &bytes[nl + 1..];
        }
        self.absorb(bytes, &mut out);
        out
    }

    /// End of stream: the unterminated last line, if any and if not already reported
    /// as too long.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let discarding = mem::replace(&mut self.discarding, false);
        let rest = mem::take(&mut self.buf);
        (!discarding && !rest.is_empty()).then_some(rest)
    }

    /// Bytes held, never more than the cap.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    fn absorb(&mut self, part: &[u8], out: &mut Vec<Line>) {
        if self.discarding || part.is_empty() {
            return;
        }
        let seen = self.buf.len() + part.len();
        if seen > self.cap {
            out.push(Line::TooLong { seen });
            self.buf = Vec::new();
            self.discarding = true;
        } else {
            self.buf.extend_from_slice(part);
        }
    }
}

/// One stderr line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The first bytes of the line, at most the cap.
    pub head: Vec<u8>,
    /// The line's full length, `\n` excluded.
    pub len: usize,
}

impl LogLine {
    /// Whether `head` is shorter than the line.
    pub fn truncated(&self) -> bool {
        self.head.len() < self.len
    }
}

/// Splits a connector's stderr: logs only, never parsed (§1, §10 rule 1). Lines are
/// truncated at the cap (the reference host uses 64 KiB and logs only the length) and
/// never poison anything.
#[derive(Clone, Debug)]
pub struct LogLines {
    head: Vec<u8>,
    len: usize,
    cap: usize,
}

impl LogLines {
    /// A splitter keeping at most `cap` bytes of each line.
    pub fn new(cap: usize) -> LogLines {
        LogLines { head: Vec::new(), len: 0, cap }
    }

    /// Takes the next bytes; returns the lines they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<LogLine> {
        let mut out = Vec::new();
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.absorb(&bytes[..nl]);
            out.push(LogLine { head: mem::take(&mut self.head), len: mem::replace(&mut self.len, 0) });
            bytes = &bytes[nl + 1..];
        }
        self.absorb(bytes);
        out
    }

    /// End of stream: the unterminated last line, if any.
    pub fn finish(&mut self) -> Option<LogLine> {
        let line = LogLine { head: mem::take(&mut self.head), len: mem::replace(&mut self.len, 0) };
        (line.len > 0).then_some(line)
    }

    /// Bytes held, never more than the cap.
    pub fn buffered(&self) -> usize {
        self.head.len()
    }

    fn absorb(&mut self, part: &[u8]) {
        let room = self.cap.saturating_sub(self.head.len());
        self.head.extend_from_slice(&part[..part.len().min(room)]);
        self.len = self.len.saturating_add(part.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.sort_unstable();
        let mut out = Vec::new();
        let mut last = 0;
        for p in points {
            out.push(&data[last..p]);
            last = p;
        }
        out.push(&data[last..]);
        out
    }

    #[test]
    fn lines_split_across_chunks() {
        let mut b = LineBuffer::new(8);
        assert_eq!(b.push(b"ab"), []);
        assert_eq!(
            b.push(b"c\nde\n\nf"),
            [Line::Complete(b"abc".to_vec()), Line::Complete(b"de".to_vec()), Line::Complete(vec![])]
        );
        assert_eq!(b.buffered(), 1);
        assert_eq!(b.finish(), Some(b"f".to_vec()));
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn the_cap_excludes_the_newline_and_long_lines_are_reported_once() {
        let mut b = LineBuffer::new(4);
        assert_eq!(b.push(b"abcd\n"), [Line::Complete(b"abcd".to_vec())]);
        assert_eq!(b.push(b"abcd"), []);
        assert_eq!(b.push(b"e"), [Line::TooLong { seen: 5 }]);
        assert_eq!(b.buffered(), 0);
        assert_eq!(b.push(b"fghij"), []);
        assert_eq!(b.push(b"k\nok\n"), [Line::Complete(b"ok".to_vec())]);
        assert_eq!(b.push(b"0123456789"), [Line::TooLong { seen: 10 }]);
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn log_lines_truncate_and_count() {
        let mut l = LogLines::new(3);
        let out = l.push(b"hello\nhi\n");
        assert_eq!(out[0], LogLine { head: b"hel".to_vec(), len: 5 });
        assert!(out[0].truncated());
        assert_eq!(out[1], LogLine { head: b"hi".to_vec(), len: 2 });
        assert!(!out[1].truncated());
        assert_eq!(l.push(b"abcdefg"), []);
        assert_eq!(l.buffered(), 3);
        assert_eq!(l.finish(), Some(LogLine { head: b"abc".to_vec(), len: 7 }));
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_lines(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            cap in 0usize..40,
        ) {
            let mut whole = LineBuffer::new(cap);
            let mut expected = whole.push(&data);
            expected.extend(whole.finish().map(Line::Complete));
            let mut chunked = LineBuffer::new(cap);
            let mut got = Vec::new();
            for chunk in split(&data, &cuts) {
                got.extend(chunked.push(chunk));
                prop_assert!(chunked.buffered() <= cap);
            }
            got.extend(chunked.finish().map(Line::Complete));
            // A too-long report carries the bytes seen when the cap broke, which depends
            // on the chunking; compare everything else.
            let norm = |v: Vec<Line>| -> Vec<Option<Vec<u8>>> {
                v.into_iter().map(|l| match l { Line::Complete(b) => Some(b), Line::TooLong { seen } => { assert!(seen > cap); None } }).collect()
            };
            prop_assert_eq!(norm(got), norm(expected));
        }

        #[test]
        fn log_lines_hold_at_most_the_cap(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            cap in 0usize..40,
        ) {
            let mut l = LogLines::new(cap);
            let mut total = 0;
            let mut lines = 0;
            for chunk in split(&data, &cuts) {
                for line in l.push(chunk) {
                    prop_assert!(line.head.len() <= cap && line.head.len() <= line.len);
                    total += line.len + 1;
                    lines += 1;
                }
                prop_assert!(l.buffered() <= cap);
            }
            if let Some(last) = l.finish() {
                total += last.len;
            } else if data.last().is_some_and(|&b| b != b'\n') {
                prop_assert!(false, "unterminated line lost");
            }
            prop_assert_eq!(lines, data.iter().filter(|&&b| b == b'\n').count());
            prop_assert_eq!(total, data.len());
        }
    }
}
