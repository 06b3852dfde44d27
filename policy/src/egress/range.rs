//! Address categories of `vectors/README.md` §5.18: unwrap an embedded IPv4 address
//! (IPv4-mapped and NAT64 `64:ff9b::/96` only), then take the first matching row of the
//! category table.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The category of an address; every address has exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressCategory {
    /// 127.0.0.0/8, 0.0.0.0/8, ::1/128, ::/128. Denied with `deny_localhost`.
    Localhost,
    /// 100.64.0.0/10, fd7a:115c:a1e0::/48. Denied with `deny_tailnet_ranges`.
    Tailnet,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7. Denied with `deny_private_ranges`.
    Private,
    /// 169.254.0.0/16, fe80::/10. Always denied.
    LinkLocal,
    /// Special-purpose, documentation, multicast and transition ranges. Always denied.
    Reserved,
    /// Everything else. Never denied by category.
    Public,
}

impl AddressCategory {
    /// The category's name, as in the README table (`link_local`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            AddressCategory::Localhost => "localhost",
            AddressCategory::Tailnet => "tailnet",
            AddressCategory::Private => "private",
            AddressCategory::LinkLocal => "link_local",
            AddressCategory::Reserved => "reserved",
            AddressCategory::Public => "public",
        }
    }
}

impl fmt::Display for AddressCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row entry of the category table: an address prefix `addr/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Self {
        Prefix { addr: IpAddr::V4(Ipv4Addr::new(a, b, c, d)), len }
    }

    const fn v6(segments: [u16; 8], len: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        Prefix { addr: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)), len }
    }

    /// The network address.
    pub const fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub const fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `ip` lies in this prefix. An IPv4 address never lies in an IPv6 prefix, and
    /// the other way round.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(u32::from(net).into(), u32::from(ip).into(), 32, self.len),
            (IpAddr::V6(net), IpAddr::V6(ip)) => same_prefix(u128::from(net), u128::from(ip), 128, self.len),
            _ => false,
        }
    }
}

/// Whether the top `len` of the low `bits` bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, bits: u32, len: u8) -> bool {
    match bits.checked_sub(u32::from(len)) {
        Some(host_bits) => (a ^ b).checked_shr(host_bits).unwrap_or(0) == 0,
        None => false,
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The category table of §5.18, row by row in its order; the first match wins.
const TABLE: &[(AddressCategory, Prefix)] = {
    use AddressCategory::{LinkLocal, Localhost, Private, Reserved, Tailnet};
    &[
        (Localhost, Prefix::v4(127, 0, 0, 0, 8)),
        (Localhost, Prefix::v4(0, 0, 0, 0, 8)),
        (Localhost, Prefix::v6([0, 0, 0, 0, 0, 0, 0, 1], 128)),
        (Localhost, Prefix::v6([0; 8], 128)),
        (Tailnet, Prefix::v4(100, 64, 0, 0, 10)),
        (Tailnet, Prefix::v6([0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0], 48)),
        (Private, Prefix::v4(10, 0, 0, 0, 8)),
        (Private, Prefix::v4(172, 16, 0, 0, 12)),
        (Private, Prefix::v4(192, 168, 0, 0, 16)),
        (Private, Prefix::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7)),
        (LinkLocal, Prefix::v4(169, 254, 0, 0, 16)),
        (LinkLocal, Prefix::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10)),
        (Reserved, Prefix::v4(192, 0, 0, 0, 24)),
        (Reserved, Prefix::v4(192, 0, 2, 0, 24)),
        (Reserved, Prefix::v4(192, 88, 99, 0, 24)),
        (Reserved, Prefix::v4(198, 18, 0, 0, 15)),
        (Reserved, Prefix::v4(198, 51, 100, 0, 24)),
        (Reserved, Prefix::v4(203, 0, 113, 0, 24)),
        (Reserved, Prefix::v4(224, 0, 0, 0, 4)),
        (Reserved, Prefix::v4(240, 0, 0, 0, 4)),
        (Reserved, Prefix::v6([0; 8], 8)),
        (Reserved, Prefix::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48)),
        (Reserved, Prefix::v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64)),
        (Reserved, Prefix::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23)),
        (Reserved, Prefix::v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32)),
        (Reserved, Prefix::v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16)),
        (Reserved, Prefix::v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20)),
        (Reserved, Prefix::v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16)),
        (Reserved, Prefix::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10)),
        (Reserved, Prefix::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8)),
    ]
};

/// The prefixes whose low 32 bits are an IPv4 address to classify instead: IPv4-mapped
/// `::ffff:0:0/96` and the NAT64 well-known prefix `64:ff9b::/96`. No other embedding
/// (IPv4-compatible, 6to4, Teredo, local-use NAT64) is unwrapped; the table reserves those.
const EMBEDDING_IPV4: [Prefix; 2] =
    [Prefix::v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96), Prefix::v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)];

/// The address a category is taken of: the embedded IPv4 address of an IPv4-mapped or
/// NAT64 (`64:ff9b::/96`) address, otherwise `ip` itself.
pub fn effective_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if EMBEDDING_IPV4.iter().any(|p| p.contains(ip)) => {
            let [.., a, b, c, d] = v6.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        }
        other => other,
    }
}

/// What [`classify`] found for one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Classification {
    /// The category.
    pub category: AddressCategory,
    /// The address the table was applied to (see [`effective_address`]).
    pub effective: IpAddr,
    /// The table row that matched; `None` for [`AddressCategory::Public`].
    pub range: Option<Prefix>,
}

/// The category of `ip`, with the unwrapped address and the matching table row.
pub fn classify(ip: IpAddr) -> Classification {
    let effective = effective_address(ip);
    TABLE
        .iter()
        .find(|(_, prefix)| prefix.contains(effective))
        .map(|&(category, prefix)| Classification { category, effective, range: Some(prefix) })
        .unwrap_or(Classification { category: AddressCategory::Public, effective, range: None })
}

/// The category of `ip` (§5.18 "Address category").
pub fn category(ip: IpAddr) -> AddressCategory {
    classify(ip).category
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ipnet::{Ipv4Net, Ipv6Net};
    use proptest::prelude::*;
    use std::sync::LazyLock;
    use AddressCategory::*;

    /// The README table, transcribed as text, in row order.
    const REFERENCE_ROWS: &[(AddressCategory, &[&str])] = &[
        (Localhost, &["127.0.0.0/8", "0.0.0.0/8", "::1/128", "::/128"]),
        (Tailnet, &["100.64.0.0/10", "fd7a:115c:a1e0::/48"]),
        (Private, &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]),
        (LinkLocal, &["169.254.0.0/16", "fe80::/10"]),
        (
            Reserved,
            &[
                "192.0.0.0/24",
                "192.0.2.0/24",
                "192.88.99.0/24",
                "198.18.0.0/15",
                "198.51.100.0/24",
                "203.0.113.0/24",
                "224.0.0.0/4",
                "240.0.0.0/4",
                "::/8",
                "64:ff9b:1::/48",
                "100::/64",
                "2001::/23",
                "2001:db8::/32",
                "2002::/16",
                "3fff::/20",
                "5f00::/16",
                "fec0::/10",
                "ff00::/8",
            ],
        ),
    ];

    type ReferenceTable = (Vec<(AddressCategory, Ipv4Net)>, Vec<(AddressCategory, Ipv6Net)>, [Ipv6Net; 2]);

    static REFERENCE: LazyLock<ReferenceTable> = LazyLock::new(|| {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for &(cat, nets) in REFERENCE_ROWS {
            for net in nets {
                match net.parse::<Ipv4Net>() {
                    Ok(n) => v4.push((cat, n)),
                    Err(_) => v6.push((cat, net.parse::<Ipv6Net>().expect("table row parses"))),
                }
            }
        }
        let unwrap = ["::ffff:0:0/96", "64:ff9b::/96"].map(|n| n.parse::<Ipv6Net>().expect("embedding prefix parses"));
        (v4, v6, unwrap)
    });

    /// The category of `ip` computed from the README table with `ipnet`, independently of
    /// [`TABLE`] and [`Prefix`]. The decision tests use it too.
    pub(crate) fn reference_category(ip: IpAddr) -> AddressCategory {
        let (v4, v6, unwrap) = &*REFERENCE;
        let ip = match ip {
            IpAddr::V6(a) if unwrap.iter().any(|n| n.contains(&a)) => {
                let o = a.octets();
                IpAddr::V4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            }
            other => other,
        };
        let found = match ip {
            IpAddr::V4(a) => v4.iter().find(|(_, n)| n.contains(&a)).map(|(c, _)| *c),
            IpAddr::V6(a) => v6.iter().find(|(_, n)| n.contains(&a)).map(|(c, _)| *c),
        };
        found.unwrap_or(Public)
    }

    /// IPv4 addresses: uniform, plus table bases with random low bits (so both sides of
    /// every boundary get hit).
    pub(crate) fn any_v4() -> impl Strategy<Value = Ipv4Addr> {
        const BASES: &[u32] = &[
            0x7f00_0000,
            0x0000_0000,
            0x6440_0000,
            0x0a00_0000,
            0xac10_0000,
            0xc0a8_0000,
            0xa9fe_0000,
            0xc000_0000,
            0xc000_0200,
            0xc058_6300,
            0xc612_0000,
            0xc633_6400,
            0xcb00_7100,
            0xe000_0000,
            0xf000_0000,
            0xffff_ffff,
            0x0808_0808,
        ];
        prop_oneof![
            any::<u32>().prop_map(Ipv4Addr::from),
            (prop::sample::select(BASES), any::<u32>(), 0u32..=32)
                .prop_map(|(base, noise, bits)| Ipv4Addr::from(base ^ (noise & low_mask32(bits)))),
        ]
    }

    fn low_mask32(bits: u32) -> u32 {
        1u32.checked_shl(bits).map_or(u32::MAX, |v| v - 1)
    }

    fn low_mask128(bits: u32) -> u128 {
        1u128.checked_shl(bits).map_or(u128::MAX, |v| v - 1)
    }

    /// IPv6 addresses: uniform, IPv4 embeddings of every kind, and table bases with random
    /// low bits.
    pub(crate) fn any_v6() -> impl Strategy<Value = Ipv6Addr> {
        const BASES: &[&str] = &[
            "::",
            "::1",
            "::ffff:0:0",
            "::ffff:0:0:0",
            "64:ff9b::",
            "64:ff9b:1::",
            "fd7a:115c:a1e0::",
            "fc00::",
            "fe80::",
            "100::",
            "2001::",
            "2001:db8::",
            "2002::",
            "3fff::",
            "5f00::",
            "fec0::",
            "ff00::",
            "2606:4700:4700::1111",
        ];
        let near = (prop::sample::select(BASES), any::<u128>(), 0u32..=128).prop_map(|(base, noise, bits)| {
            let base: Ipv6Addr = base.parse().expect("base parses");
            Ipv6Addr::from(u128::from(base) ^ (noise & low_mask128(bits)))
        });
        let embedded = (any_v4(), prop::sample::select(&["::ffff:0:0", "64:ff9b::", "::", "64:ff9b:1::"][..]))
            .prop_map(|(v4, prefix)| {
                let prefix: Ipv6Addr = prefix.parse().expect("prefix parses");
                Ipv6Addr::from(u128::from(prefix) | u128::from(u32::from(v4)))
            });
        prop_oneof![any::<u128>().prop_map(Ipv6Addr::from), near, embedded]
    }

    /// Any address, from the two strategies above.
    pub(crate) fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![any_v4().prop_map(IpAddr::V4), any_v6().prop_map(IpAddr::V6)]
    }

    fn cat(s: &str) -> AddressCategory {
        category(s.parse().expect("test address"))
    }

    #[test]
    fn examples_from_the_readme() {
        assert_eq!(cat("127.0.0.1"), Localhost);
        assert_eq!(cat("0.0.0.0"), Localhost);
        assert_eq!(cat("::1"), Localhost);
        assert_eq!(cat("::"), Localhost);
        assert_eq!(cat("100.100.100.100"), Tailnet);
        assert_eq!(cat("fd7a:115c:a1e0::1"), Tailnet);
        assert_eq!(cat("10.0.0.1"), Private);
        assert_eq!(cat("172.31.255.255"), Private);
        assert_eq!(cat("192.168.1.1"), Private);
        assert_eq!(cat("fd00::1"), Private);
        assert_eq!(cat("::ffff:10.0.0.1"), Private);
        assert_eq!(cat("64:ff9b::a00:1"), Private);
        assert_eq!(cat("169.254.169.254"), LinkLocal);
        assert_eq!(cat("fe80::1"), LinkLocal);
        assert_eq!(cat("255.255.255.255"), Reserved);
        assert_eq!(cat("198.18.0.1"), Reserved);
        assert_eq!(cat("224.0.0.1"), Reserved);
        assert_eq!(cat("ff02::1"), Reserved);
        assert_eq!(cat("::a00:1"), Reserved);
        assert_eq!(cat("::ffff:0:a00:1"), Reserved);
        assert_eq!(cat("2002:a00:1::"), Reserved);
        assert_eq!(cat("2001:0:4136:e378:8000:63bf:3fff:fdd2"), Reserved);
        assert_eq!(cat("2001:db8::1"), Reserved);
        assert_eq!(cat("64:ff9b:1::a00:1"), Reserved);
        assert_eq!(cat("140.82.112.6"), Public);
        assert_eq!(cat("2606:4700:4700::1111"), Public);
    }

    #[test]
    fn boundaries() {
        assert_eq!(cat("100.63.255.255"), Public);
        assert_eq!(cat("100.128.0.0"), Public);
        assert_eq!(cat("172.15.255.255"), Public);
        assert_eq!(cat("172.32.0.0"), Public);
        assert_eq!(cat("198.17.255.255"), Public);
        assert_eq!(cat("198.19.255.255"), Reserved);
        assert_eq!(cat("198.20.0.0"), Public);
        assert_eq!(cat("223.255.255.255"), Public);
        assert_eq!(cat("1.0.0.0"), Public);
        assert_eq!(cat("fd7a:115c:a1e1::"), Private);
        assert_eq!(cat("fbff:ffff::"), Public);
        assert_eq!(cat("fec0::"), Reserved);
        assert_eq!(cat("febf:ffff::"), LinkLocal);
        assert_eq!(cat("2001:1ff::"), Reserved);
        assert_eq!(cat("2001:200::"), Public);
        assert_eq!(cat("100::ffff:ffff:ffff:ffff"), Reserved);
        assert_eq!(cat("100:0:0:1::"), Public);
        assert_eq!(cat("100::1:0:0:0:0"), Public);
        assert_eq!(cat("3fff:fff::"), Reserved);
        assert_eq!(cat("3fff:1000::"), Public);
        assert_eq!(cat("1ff:ffff::"), Public);
    }

    #[test]
    fn only_mapped_and_nat64_are_unwrapped() {
        assert_eq!(effective_address("::ffff:1.2.3.4".parse().expect("ip")), IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(effective_address("64:ff9b::1.2.3.4".parse().expect("ip")), IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
        for s in ["::1.2.3.4", "64:ff9b:1::1.2.3.4", "2002:102:304::", "::ffff:0:1.2.3.4"] {
            let ip: IpAddr = s.parse().expect("ip");
            assert_eq!(effective_address(ip), ip, "{s}");
        }
        // A mapped public address is public; a mapped or NAT64 loopback is localhost.
        assert_eq!(cat("::ffff:8.8.8.8"), Public);
        assert_eq!(cat("64:ff9b::8.8.8.8"), Public);
        assert_eq!(cat("::ffff:127.0.0.1"), Localhost);
        assert_eq!(cat("64:ff9b::7f00:1"), Localhost);
        assert_eq!(cat("::ffff:0.0.0.0"), Localhost);
    }

    #[test]
    fn classify_names_the_matching_row() {
        let c = classify("64:ff9b::a00:1".parse().expect("ip"));
        assert_eq!(c.category, Private);
        assert_eq!(c.effective, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(c.range.map(|p| p.to_string()), Some("10.0.0.0/8".to_owned()));
        let c = classify("8.8.8.8".parse().expect("ip"));
        assert_eq!((c.category, c.range), (Public, None));
        let c = classify("::2".parse().expect("ip"));
        assert_eq!(c.range.map(|p| p.to_string()), Some("::/8".to_owned()));
    }

    #[test]
    fn table_rows_are_canonical_prefixes() {
        for (_, p) in TABLE {
            let bits = if p.addr.is_ipv4() { 32 } else { 128 };
            assert!(u32::from(p.len) <= bits, "{p}");
            assert!(p.contains(p.addr), "{p}");
        }
        assert_eq!(TABLE.len(), REFERENCE_ROWS.iter().map(|(_, n)| n.len()).sum::<usize>());
    }

    #[test]
    fn prefix_of_length_zero_holds_every_address_of_its_family() {
        let all = Prefix::v4(0, 0, 0, 0, 0);
        assert!(all.contains(IpAddr::V4(Ipv4Addr::BROADCAST)));
        assert!(!all.contains(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
        let too_long = Prefix::v4(1, 2, 3, 4, 33);
        assert!(!too_long.contains(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn ipv4_categories_match_the_reference(ip in any_v4()) {
            prop_assert_eq!(category(IpAddr::V4(ip)), reference_category(IpAddr::V4(ip)));
        }

        #[test]
        fn ipv6_categories_match_the_reference(ip in any_v6()) {
            prop_assert_eq!(category(IpAddr::V6(ip)), reference_category(IpAddr::V6(ip)));
        }

        #[test]
        fn a_mapped_address_has_the_category_of_its_ipv4(ip in any_v4()) {
            prop_assert_eq!(category(IpAddr::V6(ip.to_ipv6_mapped())), category(IpAddr::V4(ip)));
        }

        #[test]
        fn classify_reports_a_row_that_contains_the_address(ip in any_ip()) {
            let c = classify(ip);
            match c.range {
                Some(row) => prop_assert!(row.contains(c.effective)),
                None => prop_assert_eq!(c.category, Public),
            }
        }
    }
}
