//! Network-constraint value formats (digest §11.3): host entries and CIDR text.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host-entry rules of digest §11.3, in \[I\]'s order. A flag that failed to parse is
/// `None` and its rule is skipped. Returns the first problem.
pub(crate) fn host_entry_problem(
    host: &str,
    deny_ip_literals: Option<bool>,
    require_host_canonicalization: Option<bool>,
    deny_localhost: Option<bool>,
) -> Option<String> {
    if host.is_empty() {
        return Some("host entries must not be empty".into());
    }
    if deny_ip_literals == Some(true) && host.parse::<IpAddr>().is_ok() {
        return Some(format!("ip literal {host:?} is not allowed while deny_ip_literals is set"));
    }
    if require_host_canonicalization == Some(true) {
        if !host.is_ascii() {
            return Some(format!("host {host:?} must be ascii (an a-label)"));
        }
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            return Some(format!("host {host:?} must be lowercase"));
        }
        if host.ends_with('.') {
            return Some(format!("host {host:?} must not end with a dot"));
        }
    }
    if host.contains('*') && (!host.starts_with("*.") || host.matches('*').count() != 1 || host.split('.').count() < 3)
    {
        return Some(format!("wildcard {host:?} must have the form *.label.label"));
    }
    if deny_localhost == Some(true) && host == "localhost" {
        return Some("localhost is not allowed while deny_localhost is set".into());
    }
    None
}

/// Parses `address/prefix` with the grammar of the `ipnet` crate that \[I\] uses: an IPv4
/// network (octets of 1–3 decimal digits below 256, leading zeros allowed; a prefix of at
/// most 2 digits, ≤ 32) or else an IPv6 network (groups of 1–4 hex digits, one `::`, an
/// optional trailing dotted IPv4 part; a prefix of at most 3 digits, ≤ 128). Host bits may
/// be set.
pub(crate) fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let mut p = Cursor { s: text.as_bytes(), pos: 0 };
    let net = p.attempt(|p| {
        let a = p.ipv4()?;
        p.eat(b'/')?;
        Some((IpAddr::V4(a), u8::try_from(p.number(10, 2, 33)?).ok()?))
    });
    let net = match net {
        Some(n) => n,
        None => p.attempt(|p| {
            let a = p.ipv6()?;
            p.eat(b'/')?;
            Some((IpAddr::V6(a), u8::try_from(p.number(10, 3, 129)?).ok()?))
        })?,
    };
    (p.pos == p.s.len()).then_some(net)
}

/// A backtracking reader over ASCII text.
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// Runs `f`; on failure, rewinds to where it started.
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let start = self.pos;
        let r = f(self);
        if r.is_none() {
            self.pos = start;
        }
        r
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.s.get(self.pos) == Some(&c)).then(|| self.pos += 1)
    }

    fn digit(&mut self, radix: u32) -> Option<u32> {
        let d = char::from(*self.s.get(self.pos)?).to_digit(radix)?;
        self.pos += 1;
        Some(d)
    }

    /// At least one digit; fails once more than `max_digits` digits are read or the value
    /// reaches `upto`.
    fn number(&mut self, radix: u32, max_digits: u32, upto: u32) -> Option<u32> {
        self.attempt(|p| {
            let (mut value, mut count) = (0u32, 0u32);
            while let Some(d) = p.digit(radix) {
                value = value * radix + d;
                count += 1;
                if count > max_digits || value >= upto {
                    return None;
                }
            }
            (count > 0).then_some(value)
        })
    }

    fn ipv4(&mut self) -> Option<Ipv4Addr> {
        self.attempt(|p| {
            let mut octets = [0u8; 4];
            for (i, octet) in octets.iter_mut().enumerate() {
                if i > 0 {
                    p.eat(b'.')?;
                }
                *octet = u8::try_from(p.number(10, 3, 0x100)?).ok()?;
            }
            Some(Ipv4Addr::from(octets))
        })
    }

    /// Reads up to `limit` groups; returns how many 16-bit groups were filled and whether
    /// the last two came from a dotted IPv4 part.
    fn groups(&mut self, out: &mut [u16; 8], limit: usize) -> (usize, bool) {
        let mut i = 0;
        while i < limit {
            if i + 1 < limit {
                let v4 = self.attempt(|p| {
                    if i > 0 {
                        p.eat(b':')?;
                    }
                    p.ipv4()
                });
                if let Some(v4) = v4 {
                    let o = v4.octets();
                    out[i] = u16::from_be_bytes([o[0], o[1]]);
                    out[i + 1] = u16::from_be_bytes([o[2], o[3]]);
                    return (i + 2, true);
                }
            }
            let group = self.attempt(|p| {
                if i > 0 {
                    p.eat(b':')?;
                }
                p.number(16, 4, 0x1_0000)
            });
            match group.and_then(|g| u16::try_from(g).ok()) {
                Some(g) => out[i] = g,
                None => return (i, false),
            }
            i += 1;
        }
        (i, false)
    }

    fn ipv6(&mut self) -> Option<Ipv6Addr> {
        self.attempt(|p| {
            let mut head = [0u16; 8];
            let (head_len, head_v4) = p.groups(&mut head, 8);
            if head_len == 8 {
                return Some(Ipv6Addr::from(head));
            }
            if head_v4 {
                return None;
            }
            p.eat(b':')?;
            p.eat(b':')?;
            let mut tail = [0u16; 8];
            let (tail_len, _) = p.groups(&mut tail, 8 - head_len);
            let mut all = [0u16; 8];
            all[..head_len].copy_from_slice(&head[..head_len]);
            all[8 - tail_len..].copy_from_slice(&tail[..tail_len]);
            Some(Ipv6Addr::from(all))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_grammar_matches_ipnet() {
        for (text, addr, prefix) in [
            ("10.0.0.0/8", "10.0.0.0", 8),
            ("10.0.0.1/8", "10.0.0.1", 8),
            ("010.0.0.1/08", "10.0.0.1", 8),
            ("0.0.0.0/0", "0.0.0.0", 0),
            ("255.255.255.255/32", "255.255.255.255", 32),
            ("fd7a:115c:a1e0::/48", "fd7a:115c:a1e0::", 48),
            ("::/0", "::", 0),
            ("::1/128", "::1", 128),
            ("::ffff:1.2.3.4/96", "::ffff:1.2.3.4", 96),
            ("1:2:3:4:5:6:7:8/64", "1:2:3:4:5:6:7:8", 64),
            ("FE80::/10", "fe80::", 10),
        ] {
            let want: IpAddr = addr.parse().expect("address");
            assert_eq!(parse_cidr(text), Some((want, prefix)), "{text}");
        }
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/100",
            "256.0.0.0/8",
            "10.0.0/8",
            "10.0.0.0/8 ",
            " 10.0.0.0/8",
            "10.0.0.0/",
            "::/129",
            "::/0000",
            "1:2:3:4:5:6:7:8:9/64",
            "1.2.3.4::/64",
            "12345::/16",
            ":::/1",
            "x/8",
            "",
            "١٠.0.0.0/8",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_rules() {
        let t = Some(true);
        assert_eq!(host_entry_problem("api.example.com", t, t, t), None);
        assert_eq!(host_entry_problem("*.example.com", t, t, t), None);
        assert_eq!(host_entry_problem("a_b.example.com", t, t, t), None);
        assert_eq!(host_entry_problem("a..b.com", t, t, t), None);
        assert_eq!(host_entry_problem("host:443", t, t, t), None);
        assert_eq!(host_entry_problem("127.1", t, t, t), None);
        assert_eq!(host_entry_problem("none.invalid", t, t, t), None);
        for bad in [
            "",
            "10.0.0.1",
            "::1",
            "Api.example.com",
            "api.example.com.",
            "bücher.de",
            "*.com",
            "a.*.com",
            "**.a.b",
            "localhost",
        ] {
            assert!(host_entry_problem(bad, t, t, t).is_some(), "{bad}");
        }
        let f = Some(false);
        assert_eq!(host_entry_problem("10.0.0.1", f, t, t), None);
        assert_eq!(host_entry_problem("Api.Example.com.", t, f, t), None);
        assert_eq!(host_entry_problem("localhost", t, t, f), None);
        assert!(host_entry_problem("*.com", f, f, f).is_some());
    }
}
