//! The `parse(h)` of `vectors/README.md` §5.18: a requested host (CONNECT target, Host
//! header, URL host or TLS SNI) becomes a canonical DNS name or an IP address.
//!
//! The steps, in order: empty → invalid; `[…]` and anything with a `:` must be RFC 4291
//! IPv6 text; one trailing ASCII `.` is removed; non-ASCII input goes through UTS #46
//! ToASCII (non-transitional); ASCII lowercase; a host whose last label is a number is a
//! WHATWG IPv4 literal (hex, octal, decimal, short forms); anything else must be a DNS
//! name of `[a-z0-9-]` labels.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Longest name, in octets, after canonicalisation and without the trailing dot.
pub const MAX_NAME_LEN: usize = 253;

/// Longest label of a name, in octets.
pub const MAX_LABEL_LEN: usize = 63;

/// Most dot-separated parts an IPv4 literal may have.
const MAX_IPV4_PARTS: usize = 4;

/// A DNS name in canonical form: ASCII (IDNA A-labels), lowercase, no trailing dot, at most
/// [`MAX_NAME_LEN`] octets, every label 1–[`MAX_LABEL_LEN`] octets of `[a-z0-9-]` that does
/// not start or end with `-`, and a last label that is not a number.
///
/// Only [`parse_host`] builds one, so holding a `DnsName` proves those rules hold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsName(String);

impl DnsName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for DnsName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for DnsName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for DnsName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed host: a canonical name or an IP address (from any accepted literal form).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name in canonical form.
    Name(DnsName),
    /// An IP literal, as written: an IPv4-mapped IPv6 literal stays IPv6.
    Ip(IpAddr),
}

impl Host {
    /// The name, when this host is one.
    pub fn as_name(&self) -> Option<&DnsName> {
        match self {
            Host::Name(name) => Some(name),
            Host::Ip(_) => None,
        }
    }

    /// The address, when this host is an IP literal.
    pub fn as_ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::Ip(ip) => Some(*ip),
        }
    }
}

/// Names print as themselves, IPv4 dotted, IPv6 in brackets (the URL host form). The text
/// parses back to the same `Host`.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name.as_str()),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

impl FromStr for Host {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_host(s)
    }
}

/// Why a host is invalid (`host_invalid`), by the step of `parse(h)` that rejected it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The host is the empty string.
    #[error("host is empty")]
    Empty,
    /// The host starts with `[` but does not end with `]`.
    #[error("host starts with `[` but has no closing `]`")]
    UnclosedBracket,
    /// An IPv6 literal carries a zone id (`%…`).
    #[error("IPv6 literal {literal:?} carries a zone id")]
    Ipv6ZoneId {
        /// The literal, without brackets.
        literal: String,
    },
    /// Bracketed, or containing `:`, but not an IPv6 address in RFC 4291 text form.
    #[error("{literal:?} is not an IPv6 address in RFC 4291 text form")]
    Ipv6Syntax {
        /// The literal, without brackets.
        literal: String,
    },
    /// The host is a single `.`.
    #[error("host is only a dot")]
    OnlyDot,
    /// UTS #46 ToASCII (non-transitional) rejected the host.
    #[error("IDNA (UTS #46 ToASCII, non-transitional) rejects {host:?}")]
    Idna {
        /// The host as given to ToASCII.
        host: String,
    },
    /// An IPv4 literal (its last label is a number) has more than four parts.
    #[error("IPv4 literal has {parts} parts, more than 4")]
    Ipv4Parts {
        /// How many dot-separated parts it has.
        parts: usize,
    },
    /// A part of an IPv4 literal is not a decimal, octal (`0…`) or hex (`0x…`) number.
    #[error("IPv4 literal part {part:?} is not a decimal, octal or hex number")]
    Ipv4PartSyntax {
        /// The part, lowercased.
        part: String,
    },
    /// A part of an IPv4 literal is too large for its position.
    #[error("IPv4 literal part {part:?} is out of range for its position")]
    Ipv4PartRange {
        /// The part, lowercased.
        part: String,
    },
    /// The canonical name is longer than [`MAX_NAME_LEN`].
    #[error("name is {len} octets long, more than 253")]
    NameLength {
        /// Its length in octets, without the trailing dot.
        len: usize,
    },
    /// The name has an empty label (`a..b`, a leading dot, or two trailing dots).
    #[error("name has an empty label")]
    LabelEmpty,
    /// A label is longer than [`MAX_LABEL_LEN`].
    #[error("label {label:?} is {len} octets long, more than 63")]
    LabelLength {
        /// The label.
        label: String,
        /// Its length in octets.
        len: usize,
    },
    /// A label has a character outside `[a-z0-9-]` (such as `_`, `@`, a space or a `/`).
    #[error("label {label:?} has a character outside [a-z0-9-]")]
    LabelCharacter {
        /// The label.
        label: String,
    },
    /// A label starts or ends with `-`.
    #[error("label {label:?} starts or ends with `-`")]
    LabelHyphen {
        /// The label.
        label: String,
    },
}

/// `parse(h)` of `vectors/README.md` §5.18: the canonical name or the IP address that `h`
/// denotes, or why it is neither.
///
/// Every IPv4 number form a WHATWG URL parser or `inet_aton` accepts is an IP literal
/// (`127.1`, `0x7f000001`, `0177.0.0.1`, …), so a literal cannot pass as a name.
pub fn parse_host(h: &str) -> Result<Host, HostError> {
    // Step 1.
    if h.is_empty() {
        return Err(HostError::Empty);
    }
    // Step 2.
    if let Some(rest) = h.strip_prefix('[') {
        let inner = rest.strip_suffix(']').ok_or(HostError::UnclosedBracket)?;
        return parse_ipv6(inner).map(|ip| Host::Ip(IpAddr::V6(ip)));
    }
    // Step 3.
    if h.contains(':') {
        return parse_ipv6(h).map(|ip| Host::Ip(IpAddr::V6(ip)));
    }
    // Step 4: one ASCII dot, before IDNA (an IDNA-mapped `。` is not removed).
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.is_empty() {
        return Err(HostError::OnlyDot);
    }
    // Step 5.
    let ascii = if h.is_ascii() {
        Cow::Borrowed(h)
    } else {
        Cow::Owned(idna::domain_to_ascii(h).map_err(|_| HostError::Idna { host: h.to_owned() })?)
    };
    // Step 6.
    let host = ascii.to_ascii_lowercase();
    // Step 7.
    if ends_in_number(&host) {
        return parse_ipv4(&host).map(|ip| Host::Ip(IpAddr::V4(ip)));
    }
    // Step 8.
    check_name(&host)?;
    Ok(Host::Name(DnsName(host)))
}

/// RFC 4291 text form, with an optional trailing dotted IPv4 part and no zone id.
fn parse_ipv6(literal: &str) -> Result<Ipv6Addr, HostError> {
    if literal.contains('%') {
        return Err(HostError::Ipv6ZoneId { literal: literal.to_owned() });
    }
    literal.parse().map_err(|_| HostError::Ipv6Syntax { literal: literal.to_owned() })
}

/// The WHATWG "ends in a number" rule: the last label matches `^(0x[0-9a-f]*|[0-9]+)$`.
/// `host` is already lowercase.
fn ends_in_number(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    match last.strip_prefix("0x") {
        Some(hex) => hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        None => !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Step 7: the IPv4 address of a host whose last label is a number.
fn parse_ipv4(host: &str) -> Result<Ipv4Addr, HostError> {
    let parts: Vec<&str> = host.split('.').collect();
    let n = parts.len();
    if n > MAX_IPV4_PARTS {
        return Err(HostError::Ipv4Parts { parts: n });
    }
    let mut addr: u64 = 0;
    for (i, part) in parts.iter().enumerate() {
        let value = ipv4_number(part)?;
        let out_of_range = || HostError::Ipv4PartRange { part: (*part).to_owned() };
        if i + 1 < n {
            // A leading part is one octet; with n ≤ 4 it sits at octet i ≤ 2.
            if value > 255 {
                return Err(out_of_range());
            }
            addr |= value << (8 * (3 - i));
        } else {
            // The last part fills the remaining 5 − n octets.
            if value >= 1u64 << (8 * (5 - n)) {
                return Err(out_of_range());
            }
            addr |= value;
        }
    }
    u32::try_from(addr).map(Ipv4Addr::from).map_err(|_| HostError::Ipv4PartRange { part: host.to_owned() })
}

/// One part of an IPv4 literal: hex after `0x` (no digits is 0), octal after a leading `0`
/// followed by more digits, decimal otherwise. Values saturate at `u64::MAX`, which every
/// position rejects as out of range.
fn ipv4_number(part: &str) -> Result<u64, HostError> {
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(octal) = part.strip_prefix('0').filter(|rest| !rest.is_empty()) {
        (octal, 8)
    } else if part.is_empty() {
        return Err(HostError::Ipv4PartSyntax { part: part.to_owned() });
    } else {
        (part, 10)
    };
    let mut value: u64 = 0;
    for c in digits.chars() {
        // `to_digit` also takes `A`–`F`; the host is lowercase by now.
        let digit = c.to_digit(radix).ok_or_else(|| HostError::Ipv4PartSyntax { part: part.to_owned() })?;
        value = value.saturating_mul(u64::from(radix)).saturating_add(u64::from(digit));
    }
    Ok(value)
}

/// Step 8: the DNS length and label rules.
fn check_name(host: &str) -> Result<(), HostError> {
    if host.len() > MAX_NAME_LEN {
        return Err(HostError::NameLength { len: host.len() });
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(HostError::LabelEmpty);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostError::LabelLength { label: label.to_owned(), len: label.len() });
        }
        if !label.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-')) {
            return Err(HostError::LabelCharacter { label: label.to_owned() });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(HostError::LabelHyphen { label: label.to_owned() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> Host {
        Host::Ip(IpAddr::V4(s.parse().expect("test address")))
    }

    fn v6(s: &str) -> Host {
        Host::Ip(IpAddr::V6(s.parse().expect("test address")))
    }

    fn name(h: &str) -> String {
        match parse_host(h) {
            Ok(Host::Name(n)) => n.into_string(),
            other => panic!("{h:?} should parse as a name, got {other:?}"),
        }
    }

    #[test]
    fn every_spelling_of_loopback_from_the_readme_is_127_0_0_1() {
        for h in ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "0x7F.1", "127.000.000.001", "127.0.0.1."] {
            assert_eq!(parse_host(h), Ok(v4("127.0.0.1")), "{h}");
        }
    }

    #[test]
    fn short_forms_fill_from_the_right() {
        assert_eq!(parse_host("10.1.1"), Ok(v4("10.1.0.1")));
        assert_eq!(parse_host("10.65536"), Ok(v4("10.1.0.0")));
        assert_eq!(parse_host("0"), Ok(v4("0.0.0.0")));
        assert_eq!(parse_host("0x"), Ok(v4("0.0.0.0")));
        assert_eq!(parse_host("0x.0x.0x.0x1"), Ok(v4("0.0.0.1")));
        assert_eq!(parse_host("00.00.00.010"), Ok(v4("0.0.0.8")));
        assert_eq!(parse_host("4294967295"), Ok(v4("255.255.255.255")));
        assert_eq!(parse_host("0xffffffff"), Ok(v4("255.255.255.255")));
        assert_eq!(parse_host("037777777777"), Ok(v4("255.255.255.255")));
        assert_eq!(parse_host("1.0xffffff"), Ok(v4("1.255.255.255")));
        assert_eq!(parse_host("1.2.0xffff"), Ok(v4("1.2.255.255")));
        assert_eq!(parse_host("0000000000000000000000000000001.2.3.4"), Ok(v4("1.2.3.4")));
    }

    #[test]
    fn invalid_ipv4_forms_from_the_readme() {
        assert_eq!(parse_host("1.2.3.256"), Err(HostError::Ipv4PartRange { part: "256".into() }));
        assert_eq!(parse_host("08.0.0.1"), Err(HostError::Ipv4PartSyntax { part: "08".into() }));
        assert_eq!(parse_host("4294967296"), Err(HostError::Ipv4PartRange { part: "4294967296".into() }));
        assert_eq!(parse_host("api.github.123"), Err(HostError::Ipv4PartSyntax { part: "api".into() }));
    }

    #[test]
    fn more_invalid_ipv4_forms() {
        assert_eq!(parse_host("1.2.3.4.5"), Err(HostError::Ipv4Parts { parts: 5 }));
        assert_eq!(parse_host("256.1"), Err(HostError::Ipv4PartRange { part: "256".into() }));
        assert_eq!(parse_host("1.16777216"), Err(HostError::Ipv4PartRange { part: "16777216".into() }));
        assert_eq!(parse_host("1.2.65536"), Err(HostError::Ipv4PartRange { part: "65536".into() }));
        assert_eq!(parse_host("1..1"), Err(HostError::Ipv4PartSyntax { part: String::new() }));
        assert_eq!(parse_host("0x1g.1"), Err(HostError::Ipv4PartSyntax { part: "0x1g".into() }));
        assert_eq!(parse_host("1.2.3.09"), Err(HostError::Ipv4PartSyntax { part: "09".into() }));
        assert_eq!(
            parse_host("99999999999999999999999999"),
            Err(HostError::Ipv4PartRange { part: "99999999999999999999999999".into() })
        );
        // Two trailing dots: the last label is empty, so it is a name with an empty label.
        assert_eq!(parse_host("127.0.0.1.."), Err(HostError::LabelEmpty));
    }

    #[test]
    fn a_last_label_that_is_not_a_number_makes_a_name() {
        assert_eq!(name("1.2.3.a"), "1.2.3.a");
        assert_eq!(name("123.example.com"), "123.example.com");
        assert_eq!(name("a.0x1g"), "a.0x1g");
        assert_eq!(name("1a"), "1a");
    }

    #[test]
    fn ipv6_literals_bracketed_or_bare() {
        assert_eq!(parse_host("[::1]"), Ok(v6("::1")));
        assert_eq!(parse_host("::1"), Ok(v6("::1")));
        assert_eq!(parse_host("[FE80::1]"), Ok(v6("fe80::1")));
        assert_eq!(parse_host("::ffff:127.0.0.1"), Ok(v6("::ffff:7f00:1")));
        assert_eq!(parse_host("[::ffff:127.0.0.1]"), Ok(v6("::ffff:7f00:1")));
        assert_eq!(parse_host("64:ff9b::7f00:1"), Ok(v6("64:ff9b::7f00:1")));
        assert_eq!(parse_host("1:2:3:4:5:6:7:8"), Ok(v6("1:2:3:4:5:6:7:8")));
    }

    #[test]
    fn invalid_ipv6_literals() {
        assert_eq!(parse_host("["), Err(HostError::UnclosedBracket));
        assert_eq!(parse_host("[::1"), Err(HostError::UnclosedBracket));
        assert_eq!(parse_host("[]"), Err(HostError::Ipv6Syntax { literal: String::new() }));
        assert_eq!(parse_host("[fe80::1%eth0]"), Err(HostError::Ipv6ZoneId { literal: "fe80::1%eth0".into() }));
        assert_eq!(parse_host("fe80::1%1"), Err(HostError::Ipv6ZoneId { literal: "fe80::1%1".into() }));
        assert_eq!(parse_host("[127.0.0.1]"), Err(HostError::Ipv6Syntax { literal: "127.0.0.1".into() }));
        assert_eq!(parse_host("[::1]:443"), Err(HostError::UnclosedBracket));
        assert_eq!(parse_host("::1."), Err(HostError::Ipv6Syntax { literal: "::1.".into() }));
        assert_eq!(parse_host("1::2::3"), Err(HostError::Ipv6Syntax { literal: "1::2::3".into() }));
        assert_eq!(parse_host("::ffff:0x7f.1"), Err(HostError::Ipv6Syntax { literal: "::ffff:0x7f.1".into() }));
        // A port makes the host contain `:`, so it must be IPv6, and is not.
        assert_eq!(
            parse_host("api.github.com:443"),
            Err(HostError::Ipv6Syntax { literal: "api.github.com:443".into() })
        );
    }

    #[test]
    fn names_are_lowercased_and_lose_one_trailing_dot() {
        assert_eq!(name("API.GitHub.COM"), "api.github.com");
        assert_eq!(name("api.github.com."), "api.github.com");
        assert_eq!(name("localhost"), "localhost");
        assert_eq!(name("xn--bcher-kva.example.com"), "xn--bcher-kva.example.com");
        assert_eq!(parse_host("."), Err(HostError::OnlyDot));
        assert_eq!(parse_host("api.github.com.."), Err(HostError::LabelEmpty));
    }

    #[test]
    fn idna_examples_from_the_readme() {
        assert_eq!(name("bücher.example.com"), "xn--bcher-kva.example.com");
        assert_eq!(name("BÜCHER.example.com"), "xn--bcher-kva.example.com");
        // Non-transitional: ß is kept (transitional processing would give fass.de).
        assert_eq!(name("faß.de"), "xn--fa-hia.de");
        assert_eq!(name("ｅｘａｍｐｌｅ.com"), "example.com");
        assert_eq!(parse_host("１２７.0.0.1"), Ok(v4("127.0.0.1")));
    }

    #[test]
    fn an_idna_mapped_dot_is_not_a_trailing_dot() {
        for h in ["host。", "host．", "host｡"] {
            assert_eq!(parse_host(h), Err(HostError::LabelEmpty), "{h}");
        }
        assert_eq!(name("ho。st.com"), "ho.st.com");
        // The ASCII dot goes first, so `host.。` keeps the ideographic one.
        assert_eq!(parse_host("host。."), Err(HostError::LabelEmpty));
    }

    #[test]
    fn idna_failures_are_invalid() {
        assert_eq!(parse_host("xn--ü.com"), Err(HostError::Idna { host: "xn--ü.com".into() }));
    }

    #[test]
    fn name_syntax_rules() {
        assert_eq!(parse_host(""), Err(HostError::Empty));
        assert_eq!(parse_host("api_x.com"), Err(HostError::LabelCharacter { label: "api_x".into() }));
        assert_eq!(parse_host("user@host.com"), Err(HostError::LabelCharacter { label: "user@host".into() }));
        assert_eq!(parse_host("a b.com"), Err(HostError::LabelCharacter { label: "a b".into() }));
        assert_eq!(parse_host("a/b.com"), Err(HostError::LabelCharacter { label: "a/b".into() }));
        assert_eq!(parse_host("*.example.com"), Err(HostError::LabelCharacter { label: "*".into() }));
        assert_eq!(parse_host(".example.com"), Err(HostError::LabelEmpty));
        assert_eq!(parse_host("a..com"), Err(HostError::LabelEmpty));
        assert_eq!(parse_host("-a.com"), Err(HostError::LabelHyphen { label: "-a".into() }));
        assert_eq!(parse_host("a-.com"), Err(HostError::LabelHyphen { label: "a-".into() }));
        assert_eq!(name("a--b.com"), "a--b.com");
    }

    #[test]
    fn length_limits() {
        let label63 = "a".repeat(63);
        assert_eq!(name(&format!("{label63}.com")), format!("{label63}.com"));
        let label64 = "a".repeat(64);
        assert_eq!(parse_host(&format!("{label64}.com")), Err(HostError::LabelLength { label: label64, len: 64 }));
        // 3 × 63 + 61 + 3 dots = 253 octets, the longest name; one trailing dot may follow.
        let longest = format!("{label63}.{label63}.{label63}.{}", "a".repeat(61));
        assert_eq!(longest.len(), 253);
        assert_eq!(name(&longest), longest);
        assert_eq!(name(&format!("{longest}.")), longest);
        let too_long = format!("a{longest}");
        assert_eq!(parse_host(&too_long), Err(HostError::NameLength { len: 254 }));
    }

    #[test]
    fn display_parses_back() {
        for h in ["api.github.com", "127.1", "[::ffff:127.0.0.1]", "fe80::1"] {
            let host = parse_host(h).expect("valid test host");
            assert_eq!(parse_host(&host.to_string()), Ok(host.clone()), "{h}");
        }
        assert_eq!(v6("::1").to_string(), "[::1]");
        assert_eq!("127.1".parse::<Host>(), Ok(v4("127.0.0.1")));
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            let _ = parse_host(&s);
        }

        #[test]
        fn host_like_strings_never_panic_and_reparse_to_themselves(
            s in "[\\[\\]0-9a-fA-Fx:.%。ßü_-]{0,24}"
        ) {
            if let Ok(host) = parse_host(&s) {
                prop_assert_eq!(parse_host(&host.to_string()), Ok(host));
            }
        }

        #[test]
        fn any_dotted_quad_parses_to_its_address(a in any::<u8>(), b in any::<u8>(), c in any::<u8>(), d in any::<u8>()) {
            let want = Ipv4Addr::new(a, b, c, d);
            prop_assert_eq!(parse_host(&format!("{a}.{b}.{c}.{d}")), Ok(Host::Ip(IpAddr::V4(want))));
            prop_assert_eq!(parse_host(&format!("{a}.{b}.{c}.{d}.")), Ok(Host::Ip(IpAddr::V4(want))));
        }

        #[test]
        fn any_u32_in_decimal_hex_or_octal_parses_to_its_address(x in any::<u32>()) {
            let want = Ok(Host::Ip(IpAddr::V4(Ipv4Addr::from(x))));
            prop_assert_eq!(parse_host(&format!("{x}")), want.clone());
            prop_assert_eq!(parse_host(&format!("0x{x:x}")), want.clone());
            prop_assert_eq!(parse_host(&format!("0X{x:X}")), want.clone());
            prop_assert_eq!(parse_host(&format!("0{x:o}")), want);
        }

        #[test]
        fn any_ipv6_parses_bare_and_bracketed(x in any::<u128>()) {
            let ip = Ipv6Addr::from(x);
            let want = Ok(Host::Ip(IpAddr::V6(ip)));
            prop_assert_eq!(parse_host(&format!("{ip}")), want.clone());
            prop_assert_eq!(parse_host(&format!("[{ip}]")), want);
        }
    }
}
