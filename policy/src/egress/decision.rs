//! The decision procedure of `vectors/README.md` §5.18, in two phases.
//!
//! - [`admit`] runs steps 1–5 on what the connector asked for (name, port, SNI), before any
//!   DNS lookup. [`admit_host`] is its first part (steps 1–3) for the proxy's DNS responder,
//!   which knows only a name.
//! - [`Admitted::vet_addresses`] runs steps 6–7 on what the resolver returned.
//! - [`decide`] composes the two, so the proxy, `fcp egress check` and the vectors run the
//!   same code.

use std::fmt;
use std::net::IpAddr;

use super::host::{parse_host, DnsName, Host, HostError};
use super::range::{classify, AddressCategory, Classification};

/// The fields of a manifest's `network_constraints` that the egress decision reads
/// (digest §11.3). Built from a validated manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressConstraints {
    /// Allowed hosts: canonical names, `*.suffix` wildcards, or IP literals in any form
    /// that [`parse_host`] accepts. Entries are compared as written (§5.18 step 3).
    pub host_allow: Vec<String>,
    /// Allowed destination ports. Port 0 is checked by membership like any other.
    pub port_allow: Vec<u16>,
    /// Deny addresses in [`AddressCategory::Localhost`].
    pub deny_localhost: bool,
    /// Deny addresses in [`AddressCategory::Private`].
    pub deny_private_ranges: bool,
    /// Deny addresses in [`AddressCategory::Tailnet`].
    pub deny_tailnet_ranges: bool,
    /// Deny a destination written as an IP literal, in any encoding.
    pub deny_ip_literals: bool,
    /// Require a TLS SNI.
    pub require_sni: bool,
    /// Most DNS answers accepted for a name; duplicates count. 0 denies every answer.
    pub dns_max_ips: u16,
}

impl EgressConstraints {
    /// The fields of a validated manifest's `network_constraints` the decision reads.
    pub fn from_manifest(nc: &crate::manifest::NetworkConstraints) -> EgressConstraints {
        EgressConstraints {
            host_allow: nc.host_allow.iter().map(|h| h.as_str().to_owned()).collect(),
            port_allow: nc.port_allow.clone(),
            deny_localhost: nc.deny_localhost,
            deny_private_ranges: nc.deny_private_ranges,
            deny_tailnet_ranges: nc.deny_tailnet_ranges,
            deny_ip_literals: nc.deny_ip_literals,
            require_sni: nc.require_sni,
            dns_max_ips: nc.dns_max_ips,
        }
    }

    /// Step 3: whether some `host_allow` entry matches `host`.
    ///
    /// A name matches an entry equal to it, or an entry `*.suffix` when it ends in
    /// `.suffix` and is longer than that. An address matches an entry that parses to an
    /// equal address once IPv4-mapped addresses are read as IPv4; no other form (NAT64
    /// included) compares equal.
    pub fn allows_host(&self, host: &Host) -> bool {
        match host {
            Host::Name(name) => self.host_allow.iter().any(|entry| name_matches(entry, name.as_str())),
            Host::Ip(ip) => self.host_allow.iter().any(|entry| match parse_host(entry) {
                Ok(Host::Ip(listed)) => listed.to_canonical() == ip.to_canonical(),
                _ => false,
            }),
        }
    }

    /// Step 4: whether `port` is in `port_allow`.
    pub fn allows_port(&self, port: u16) -> bool {
        self.port_allow.contains(&port)
    }

    /// Step 7: whether an address of `category` is denied.
    pub fn denies(&self, category: AddressCategory) -> bool {
        match category {
            AddressCategory::Localhost => self.deny_localhost,
            AddressCategory::Tailnet => self.deny_tailnet_ranges,
            AddressCategory::Private => self.deny_private_ranges,
            AddressCategory::LinkLocal | AddressCategory::Reserved => true,
            AddressCategory::Public => false,
        }
    }
}

/// `entry == name`, or `entry` is `*.suffix`, `name` ends in `.suffix` and is longer.
fn name_matches(entry: &str, name: &str) -> bool {
    if entry == name {
        return true;
    }
    match entry.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') => name.len() > suffix.len() && name.ends_with(suffix),
        _ => false,
    }
}

/// One connection the proxy is asked to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressRequest {
    /// The host as requested: CONNECT target, Host header or URL host, not yet parsed.
    pub dest_host: String,
    /// The requested port.
    pub dest_port: u16,
    /// What DNS returned for the name, in order. Ignored when `dest_host` is an IP literal.
    pub resolved_ips: Vec<IpAddr>,
    /// The TLS ClientHello server_name, if one was sent.
    pub sni: Option<String>,
}

/// An address that fell in a denied category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeniedAddress {
    /// The address as resolved or written.
    pub addr: IpAddr,
    /// Its category, the address the category was taken of, and the table row.
    pub classification: Classification,
}

/// `10.0.0.5 (in 10.0.0.0/8)`, or `64:ff9b::a00:1 (embeds 10.0.0.1, in 10.0.0.0/8)`.
impl fmt::Display for DeniedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)?;
        let embedded = self.classification.effective != self.addr;
        match (embedded, self.classification.range) {
            (true, Some(range)) => write!(f, " (embeds {}, in {range})", self.classification.effective),
            (true, None) => write!(f, " (embeds {})", self.classification.effective),
            (false, Some(range)) => write!(f, " (in {range})"),
            (false, None) => Ok(()),
        }
    }
}

/// Why the proxy must not open a connection: the first step of §5.18 that denied it.
/// [`DenyReason::code`] is the README reason code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DenyReason {
    /// Step 1: the destination is not a valid name or IP literal.
    #[error("destination host {host:?} is not a valid host name or IP literal")]
    HostInvalid {
        /// The host as requested.
        host: String,
        /// What `parse` rejected.
        #[source]
        source: HostError,
    },
    /// Step 2: the destination is an IP literal and `deny_ip_literals` is set.
    #[error("destination {host} is an IP literal and deny_ip_literals is set")]
    IpLiteralDenied {
        /// The literal as parsed.
        host: Host,
    },
    /// Step 3: no `host_allow` entry matches.
    #[error("destination host {host} matches no host_allow entry")]
    HostNotAllowed {
        /// The canonical destination.
        host: Host,
    },
    /// Step 4: the port is not in `port_allow`.
    #[error("port {port} is not in port_allow")]
    PortNotAllowed {
        /// The requested port.
        port: u16,
    },
    /// Step 5: no SNI was sent and `require_sni` is set.
    #[error("no TLS SNI was sent for {host} and require_sni is set")]
    SniMissing {
        /// The canonical destination.
        host: Host,
    },
    /// Step 5: an SNI was sent that is not the canonical destination name.
    #[error("TLS SNI {sni:?} does not name the destination host {host}")]
    SniMismatch {
        /// The SNI as sent.
        sni: String,
        /// The canonical destination.
        host: Host,
    },
    /// Step 6: the name resolved to nothing.
    #[error("DNS returned no address for {host}")]
    DnsNoAnswer {
        /// The name that was resolved.
        host: DnsName,
    },
    /// Step 6: more answers than `dns_max_ips`.
    #[error("DNS returned {count} addresses for {host}, more than dns_max_ips ({max})")]
    DnsMaxIpsExceeded {
        /// The name that was resolved.
        host: DnsName,
        /// How many answers there were.
        count: usize,
        /// The configured `dns_max_ips`.
        max: u16,
    },
    /// Step 7: a localhost address, with `deny_localhost` set.
    #[error("address {0} is localhost and deny_localhost is set")]
    LocalhostDenied(DeniedAddress),
    /// Step 7: a tailnet address, with `deny_tailnet_ranges` set.
    #[error("address {0} is in the tailnet range and deny_tailnet_ranges is set")]
    TailnetRangeDenied(DeniedAddress),
    /// Step 7: a private address, with `deny_private_ranges` set.
    #[error("address {0} is in a private range and deny_private_ranges is set")]
    PrivateRangeDenied(DeniedAddress),
    /// Step 7: a link-local address (always denied).
    #[error("address {0} is link-local, which is always denied")]
    LinkLocalDenied(DeniedAddress),
    /// Step 7: a reserved or special-purpose address (always denied).
    #[error("address {0} is in a reserved or special-purpose range, which is always denied")]
    ReservedRangeDenied(DeniedAddress),
}

impl DenyReason {
    /// The reason code of `vectors/README.md` §5.18 (`host_invalid`, `private_range_denied`, …).
    pub const fn code(&self) -> &'static str {
        match self {
            DenyReason::HostInvalid { .. } => "host_invalid",
            DenyReason::IpLiteralDenied { .. } => "ip_literal_denied",
            DenyReason::HostNotAllowed { .. } => "host_not_allowed",
            DenyReason::PortNotAllowed { .. } => "port_not_allowed",
            DenyReason::SniMissing { .. } => "sni_missing",
            DenyReason::SniMismatch { .. } => "sni_mismatch",
            DenyReason::DnsNoAnswer { .. } => "dns_no_answer",
            DenyReason::DnsMaxIpsExceeded { .. } => "dns_max_ips_exceeded",
            DenyReason::LocalhostDenied(_) => "localhost_denied",
            DenyReason::TailnetRangeDenied(_) => "tailnet_range_denied",
            DenyReason::PrivateRangeDenied(_) => "private_range_denied",
            DenyReason::LinkLocalDenied(_) => "link_local_denied",
            DenyReason::ReservedRangeDenied(_) => "reserved_range_denied",
        }
    }

    /// The denial for an address of a denied category; `None` for a public one.
    fn for_address(addr: IpAddr, classification: Classification) -> Option<Self> {
        let denied = DeniedAddress { addr, classification };
        Some(match classification.category {
            AddressCategory::Localhost => DenyReason::LocalhostDenied(denied),
            AddressCategory::Tailnet => DenyReason::TailnetRangeDenied(denied),
            AddressCategory::Private => DenyReason::PrivateRangeDenied(denied),
            AddressCategory::LinkLocal => DenyReason::LinkLocalDenied(denied),
            AddressCategory::Reserved => DenyReason::ReservedRangeDenied(denied),
            AddressCategory::Public => return None,
        })
    }
}

/// The outcome of [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum EgressDecision {
    /// Connect to exactly `addrs`, in order, and never re-resolve the name.
    Allow {
        /// The canonical destination.
        host: Host,
        /// The vetted addresses: the resolver's answers, or the literal itself.
        addrs: Vec<IpAddr>,
    },
    /// Do not connect.
    Deny(DenyReason),
}

impl EgressDecision {
    /// Whether the connection may be opened.
    pub fn is_allowed(&self) -> bool {
        matches!(self, EgressDecision::Allow { .. })
    }

    /// `allowed`, or the [`DenyReason::code`].
    pub fn reason_code(&self) -> &'static str {
        match self {
            EgressDecision::Allow { .. } => "allowed",
            EgressDecision::Deny(reason) => reason.code(),
        }
    }
}

impl From<Result<(Host, Vec<IpAddr>), DenyReason>> for EgressDecision {
    fn from(r: Result<(Host, Vec<IpAddr>), DenyReason>) -> Self {
        match r {
            Ok((host, addrs)) => EgressDecision::Allow { host, addrs },
            Err(reason) => EgressDecision::Deny(reason),
        }
    }
}

impl fmt::Display for EgressDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EgressDecision::Allow { host, addrs } => {
                write!(f, "allowed: {host} at ")?;
                for (i, addr) in addrs.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{addr}")?;
                }
                Ok(())
            }
            EgressDecision::Deny(reason) => write!(f, "denied: {reason}"),
        }
    }
}

/// A destination that passed steps 1–5: its host is valid, listed and not a denied
/// literal, its port is allowed and its SNI fits. Only [`admit`] builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    host: Host,
    port: u16,
}

impl Admitted {
    /// The canonical destination.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The admitted port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the proxy must resolve the destination (it is a name, not a literal).
    pub fn needs_dns(&self) -> bool {
        matches!(self.host, Host::Name(_))
    }

    /// Steps 6–7: the addresses to connect to, from the resolver's answers for a name
    /// (`resolved_ips` is ignored for an IP literal).
    ///
    /// One answer in a denied category denies the whole request; bad answers are never
    /// filtered out. Pass the same `constraints` as to [`admit`].
    pub fn vet_addresses(
        &self,
        constraints: &EgressConstraints,
        resolved_ips: &[IpAddr],
    ) -> Result<Vec<IpAddr>, DenyReason> {
        let addrs = match &self.host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => {
                if resolved_ips.is_empty() {
                    return Err(DenyReason::DnsNoAnswer { host: name.clone() });
                }
                if resolved_ips.len() > usize::from(constraints.dns_max_ips) {
                    return Err(DenyReason::DnsMaxIpsExceeded {
                        host: name.clone(),
                        count: resolved_ips.len(),
                        max: constraints.dns_max_ips,
                    });
                }
                resolved_ips.to_vec()
            }
        };
        for &addr in &addrs {
            let classification = classify(addr);
            if constraints.denies(classification.category) {
                if let Some(reason) = DenyReason::for_address(addr, classification) {
                    return Err(reason);
                }
            }
        }
        Ok(addrs)
    }
}

/// Steps 1–3: may this host be asked for at all? The proxy's DNS responder uses it to
/// answer NXDOMAIN for names no entry allows.
pub fn admit_host(constraints: &EgressConstraints, dest_host: &str) -> Result<Host, DenyReason> {
    let host =
        parse_host(dest_host).map_err(|source| DenyReason::HostInvalid { host: dest_host.to_owned(), source })?;
    if matches!(host, Host::Ip(_)) && constraints.deny_ip_literals {
        return Err(DenyReason::IpLiteralDenied { host });
    }
    if !constraints.allows_host(&host) {
        return Err(DenyReason::HostNotAllowed { host });
    }
    Ok(host)
}

/// Steps 1–5, before any DNS lookup: host, port and SNI.
///
/// An SNI, when present, must parse to a name equal to the destination name, even when
/// `require_sni` is off (an SNI naming another host is domain fronting). So an IP-literal
/// destination never passes with `require_sni` set.
pub fn admit(
    constraints: &EgressConstraints,
    dest_host: &str,
    dest_port: u16,
    sni: Option<&str>,
) -> Result<Admitted, DenyReason> {
    let host = admit_host(constraints, dest_host)?;
    if !constraints.allows_port(dest_port) {
        return Err(DenyReason::PortNotAllowed { port: dest_port });
    }
    match sni {
        None if constraints.require_sni => return Err(DenyReason::SniMissing { host }),
        None => {}
        Some(sni) => {
            let names_host =
                matches!((&host, parse_host(sni)), (Host::Name(want), Ok(Host::Name(got))) if *want == got);
            if !names_host {
                return Err(DenyReason::SniMismatch { sni: sni.to_owned(), host });
            }
        }
    }
    Ok(Admitted { host, port: dest_port })
}

/// The whole §5.18 decision: [`admit`], then [`Admitted::vet_addresses`].
pub fn decide(constraints: &EgressConstraints, request: &EgressRequest) -> EgressDecision {
    admit(constraints, &request.dest_host, request.dest_port, request.sni.as_deref())
        .and_then(|admitted| {
            let addrs = admitted.vet_addresses(constraints, &request.resolved_ips)?;
            Ok((admitted.host, addrs))
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::super::range::tests::{any_ip, reference_category};
    use super::*;
    use proptest::prelude::*;

    fn constraints(host_allow: &[&str]) -> EgressConstraints {
        EgressConstraints {
            host_allow: host_allow.iter().map(|h| (*h).to_owned()).collect(),
            port_allow: vec![443],
            deny_localhost: true,
            deny_private_ranges: true,
            deny_tailnet_ranges: true,
            deny_ip_literals: true,
            require_sni: false,
            dns_max_ips: 4,
        }
    }

    fn request(host: &str, ips: &[&str]) -> EgressRequest {
        EgressRequest {
            dest_host: host.to_owned(),
            dest_port: 443,
            resolved_ips: ips.iter().map(|ip| ip.parse().expect("test address")).collect(),
            sni: None,
        }
    }

    fn code(c: &EgressConstraints, r: &EgressRequest) -> &'static str {
        decide(c, r).reason_code()
    }

    fn host(h: &str) -> Host {
        parse_host(h).expect("valid test host")
    }

    #[test]
    fn allows_a_listed_name_with_public_answers_and_returns_them() {
        let c = constraints(&["api.github.com"]);
        let d = decide(&c, &request("API.GitHub.com.", &["140.82.112.6", "140.82.113.5"]));
        assert_eq!(
            d,
            EgressDecision::Allow {
                host: host("api.github.com"),
                addrs: vec!["140.82.112.6".parse().expect("ip"), "140.82.113.5".parse().expect("ip")],
            }
        );
        assert_eq!(d.to_string(), "allowed: api.github.com at 140.82.112.6, 140.82.113.5");
    }

    #[test]
    fn wildcard_matching() {
        let c = constraints(&["*.example.com"]);
        assert_eq!(code(&c, &request("a.example.com", &["8.8.8.8"])), "allowed");
        assert_eq!(code(&c, &request("a.b.example.com", &["8.8.8.8"])), "allowed");
        assert_eq!(code(&c, &request("example.com", &["8.8.8.8"])), "host_not_allowed");
        assert_eq!(code(&c, &request("evilexample.com", &["8.8.8.8"])), "host_not_allowed");
        assert_eq!(code(&c, &request("example.com.evil.org", &["8.8.8.8"])), "host_not_allowed");
        assert_eq!(code(&c, &request("A.EXAMPLE.COM.", &["8.8.8.8"])), "allowed");
    }

    #[test]
    fn entries_are_compared_as_written() {
        assert!(constraints(&["api.github.com"]).allows_host(&host("api.github.com")));
        assert!(!constraints(&["API.github.com"]).allows_host(&host("api.github.com")));
        assert!(!constraints(&["api.github.com."]).allows_host(&host("api.github.com")));
        assert!(!constraints(&["*"]).allows_host(&host("api.github.com")));
        assert!(!constraints(&["*github.com"]).allows_host(&host("api.github.com")));
        assert!(!constraints(&["*.*.com"]).allows_host(&host("api.github.com")));
        assert!(constraints(&["xn--bcher-kva.example.com"]).allows_host(&host("bücher.example.com")));
        assert!(!constraints(&["bücher.example.com"]).allows_host(&host("bücher.example.com")));
    }

    #[test]
    fn ip_entries_match_after_ipv4_mapped_normalisation_only() {
        assert!(constraints(&["8.8.8.8"]).allows_host(&host("::ffff:8.8.8.8")));
        assert!(constraints(&["::ffff:8.8.8.8"]).allows_host(&host("8.8.8.8")));
        assert!(constraints(&["[::ffff:808:808]"]).allows_host(&host("0x08080808")));
        assert!(constraints(&["0x8.8.8.8"]).allows_host(&host("8.8.8.8")));
        assert!(constraints(&["2606:4700:4700::1111"]).allows_host(&host("[2606:4700:4700:0::1111]")));
        assert!(!constraints(&["8.8.8.8"]).allows_host(&host("64:ff9b::8.8.8.8")));
        assert!(!constraints(&["8.8.8.8"]).allows_host(&host("::8.8.8.8")));
        assert!(!constraints(&["8.8.8.8"]).allows_host(&host("8.8.4.4")));
        // A name never matches an IP entry, nor an IP a name entry.
        assert!(!constraints(&["8.8.8.8"]).allows_host(&host("dns.google")));
        assert!(!constraints(&["dns.google"]).allows_host(&host("8.8.8.8")));
    }

    #[test]
    fn ip_literals_are_denied_in_every_encoding_before_the_allow_list() {
        let c = constraints(&["127.0.0.1", "api.github.com"]);
        for h in ["127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::1]", "::ffff:127.0.0.1"] {
            assert_eq!(code(&c, &request(h, &[])), "ip_literal_denied", "{h}");
        }
    }

    #[test]
    fn a_listed_ip_literal_is_still_categorised() {
        let mut c = constraints(&["127.0.0.1", "8.8.8.8", "fd7a:115c:a1e0::1", "169.254.169.254"]);
        c.deny_ip_literals = false;
        assert_eq!(code(&c, &request("127.1", &["8.8.8.8"])), "localhost_denied");
        assert_eq!(code(&c, &request("169.254.169.254", &[])), "link_local_denied");
        assert_eq!(code(&c, &request("[fd7a:115c:a1e0::1]", &[])), "tailnet_range_denied");
        let d = decide(&c, &request("8.8.8.8", &["10.0.0.1"]));
        assert_eq!(d, EgressDecision::Allow { host: host("8.8.8.8"), addrs: vec!["8.8.8.8".parse().expect("ip")] });
        c.deny_tailnet_ranges = false;
        assert_eq!(code(&c, &request("fd7a:115c:a1e0::1", &[])), "allowed");
    }

    #[test]
    fn steps_run_in_order() {
        let mut c = constraints(&["api.github.com"]);
        c.require_sni = true;
        c.dns_max_ips = 1;
        let mut r = request("api_github.com", &["10.0.0.1", "10.0.0.2"]);
        r.dest_port = 80;
        assert_eq!(code(&c, &r), "host_invalid");
        r.dest_host = "gist.github.com".into();
        assert_eq!(code(&c, &r), "host_not_allowed");
        r.dest_host = "api.github.com".into();
        assert_eq!(code(&c, &r), "port_not_allowed");
        r.dest_port = 443;
        assert_eq!(code(&c, &r), "sni_missing");
        r.sni = Some("api.github.com".into());
        assert_eq!(code(&c, &r), "dns_max_ips_exceeded");
        r.resolved_ips.truncate(1);
        assert_eq!(code(&c, &r), "private_range_denied");
        r.resolved_ips = vec![];
        assert_eq!(code(&c, &r), "dns_no_answer");
    }

    #[test]
    fn sni_rules() {
        let mut c = constraints(&["bücher.example.com", "xn--bcher-kva.example.com", "8.8.8.8"]);
        c.deny_ip_literals = false;
        let with_sni = |h: &str, sni: &str| EgressRequest { sni: Some(sni.to_owned()), ..request(h, &["8.8.4.4"]) };
        // U-labels and A-labels meet after parsing, both ways round; case and a trailing dot do not matter.
        assert_eq!(code(&c, &with_sni("xn--bcher-kva.example.com", "bücher.example.com")), "allowed");
        assert_eq!(code(&c, &with_sni("BÜCHER.example.com", "xn--bcher-kva.example.com.")), "allowed");
        // Another host is domain fronting even when SNI is not required.
        assert_eq!(code(&c, &with_sni("xn--bcher-kva.example.com", "evil.example")), "sni_mismatch");
        assert_eq!(code(&c, &with_sni("xn--bcher-kva.example.com", "")), "sni_mismatch");
        assert_eq!(code(&c, &with_sni("xn--bcher-kva.example.com", "bad_sni")), "sni_mismatch");
        // An IP destination never matches an SNI, not even its own address.
        assert_eq!(code(&c, &with_sni("8.8.8.8", "8.8.8.8")), "sni_mismatch");
        assert_eq!(code(&c, &request("8.8.8.8", &[])), "allowed");
        c.require_sni = true;
        assert_eq!(code(&c, &request("8.8.8.8", &[])), "sni_missing");
    }

    #[test]
    fn dns_answer_counts() {
        let mut c = constraints(&["api.github.com"]);
        c.dns_max_ips = 2;
        assert_eq!(code(&c, &request("api.github.com", &[])), "dns_no_answer");
        assert_eq!(code(&c, &request("api.github.com", &["8.8.8.8", "8.8.8.8"])), "allowed");
        assert_eq!(code(&c, &request("api.github.com", &["8.8.8.8", "8.8.8.8", "8.8.8.8"])), "dns_max_ips_exceeded");
    }

    #[test]
    fn one_denied_answer_denies_the_request_and_the_first_one_names_the_reason() {
        let c = constraints(&["api.github.com"]);
        assert_eq!(code(&c, &request("api.github.com", &["140.82.112.6", "10.0.0.5"])), "private_range_denied");
        assert_eq!(code(&c, &request("api.github.com", &["::1", "10.0.0.5"])), "localhost_denied");
        assert_eq!(code(&c, &request("api.github.com", &["10.0.0.5", "::1"])), "private_range_denied");
    }

    #[test]
    fn category_switches() {
        let mut c = constraints(&["api.github.com"]);
        c.deny_localhost = false;
        c.deny_private_ranges = false;
        c.deny_tailnet_ranges = false;
        for ip in ["127.0.0.1", "::1", "10.0.0.1", "fd00::1", "100.100.100.100", "fd7a:115c:a1e0::1"] {
            assert_eq!(code(&c, &request("api.github.com", &[ip])), "allowed", "{ip}");
        }
        assert_eq!(code(&c, &request("api.github.com", &["169.254.169.254"])), "link_local_denied");
        assert_eq!(code(&c, &request("api.github.com", &["fe80::1"])), "link_local_denied");
        assert_eq!(code(&c, &request("api.github.com", &["198.51.100.1"])), "reserved_range_denied");
        assert_eq!(code(&c, &request("api.github.com", &["2002:a00:1::"])), "reserved_range_denied");
        // Tailnet is its own category: allowed while private ranges are denied.
        c.deny_private_ranges = true;
        assert_eq!(code(&c, &request("api.github.com", &["fd7a:115c:a1e0::1"])), "allowed");
        assert_eq!(code(&c, &request("api.github.com", &["64:ff9b::a00:1"])), "private_range_denied");
    }

    #[test]
    fn the_no_network_sentinel_is_never_allowed() {
        let mut c = constraints(&["none.invalid"]);
        c.port_allow = vec![0];
        c.dns_max_ips = 0;
        let at = |h: &str, port: u16, ips: &[&str]| EgressRequest { dest_port: port, ..request(h, ips) };
        assert_eq!(code(&c, &at("none.invalid", 0, &[])), "dns_no_answer");
        assert_eq!(code(&c, &at("none.invalid", 0, &["8.8.8.8"])), "dns_max_ips_exceeded");
        assert_eq!(code(&c, &at("NONE.invalid.", 0, &["8.8.8.8"])), "dns_max_ips_exceeded");
        assert_eq!(code(&c, &at("none.invalid", 443, &["8.8.8.8"])), "port_not_allowed");
        assert_eq!(code(&c, &at("other.invalid", 0, &["8.8.8.8"])), "host_not_allowed");
        assert_eq!(code(&c, &at("0.0.0.0", 0, &[])), "ip_literal_denied");
        c.deny_ip_literals = false;
        assert_eq!(code(&c, &at("0.0.0.0", 0, &[])), "host_not_allowed");
    }

    #[test]
    fn phases_compose_to_decide() {
        let c = constraints(&["api.github.com"]);
        assert_eq!(admit_host(&c, "API.github.com").map(|h| h.to_string()), Ok("api.github.com".to_owned()));
        assert_eq!(admit_host(&c, "gist.github.com").map_err(|r| r.code()), Err("host_not_allowed"));
        let admitted = admit(&c, "api.github.com", 443, Some("api.github.com")).expect("admitted");
        assert!(admitted.needs_dns());
        assert_eq!(admitted.port(), 443);
        assert_eq!(
            admitted.vet_addresses(&c, &["10.0.0.1".parse().expect("ip")]).map_err(|r| r.code()),
            Err("private_range_denied")
        );
        assert_eq!(
            admitted.vet_addresses(&c, &["8.8.8.8".parse().expect("ip")]),
            Ok(vec!["8.8.8.8".parse().expect("ip")])
        );
    }

    #[test]
    fn messages_name_the_offending_value() {
        let mut c = constraints(&["api.github.com"]);
        let msg = |c: &EgressConstraints, r: &EgressRequest| decide(c, r).to_string();
        assert_eq!(
            msg(&c, &request("api_x.com", &[])),
            "denied: destination host \"api_x.com\" is not a valid host name or IP literal"
        );
        assert_eq!(
            msg(&c, &request("127.1", &[])),
            "denied: destination 127.0.0.1 is an IP literal and deny_ip_literals is set"
        );
        assert_eq!(
            msg(&c, &request("gist.github.com", &[])),
            "denied: destination host gist.github.com matches no host_allow entry"
        );
        assert_eq!(
            msg(&c, &request("api.github.com", &["64:ff9b::a00:1"])),
            "denied: address 64:ff9b::a00:1 (embeds 10.0.0.1, in 10.0.0.0/8) is in a private range and deny_private_ranges is set"
        );
        assert_eq!(
            msg(&c, &request("api.github.com", &["169.254.169.254"])),
            "denied: address 169.254.169.254 (in 169.254.0.0/16) is link-local, which is always denied"
        );
        c.dns_max_ips = 0;
        assert_eq!(
            msg(&c, &request("api.github.com", &["8.8.8.8"])),
            "denied: DNS returned 1 addresses for api.github.com, more than dns_max_ips (0)"
        );
        let err = match decide(&c, &request("a..b", &[])) {
            EgressDecision::Deny(reason) => reason,
            other => panic!("expected a denial, got {other:?}"),
        };
        let source = std::error::Error::source(&err).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("name has an empty label"));
    }

    #[test]
    fn every_code_is_distinct_and_from_the_readme() {
        let addr: IpAddr = "10.0.0.1".parse().expect("ip");
        let denied = DeniedAddress { addr, classification: classify(addr) };
        let name = match host("a.com") {
            Host::Name(n) => n,
            Host::Ip(_) => panic!("a.com is a name"),
        };
        let all = [
            DenyReason::HostInvalid { host: String::new(), source: HostError::Empty },
            DenyReason::IpLiteralDenied { host: Host::Ip(addr) },
            DenyReason::HostNotAllowed { host: Host::Ip(addr) },
            DenyReason::PortNotAllowed { port: 1 },
            DenyReason::SniMissing { host: Host::Ip(addr) },
            DenyReason::SniMismatch { sni: String::new(), host: Host::Ip(addr) },
            DenyReason::DnsNoAnswer { host: name.clone() },
            DenyReason::DnsMaxIpsExceeded { host: name, count: 1, max: 0 },
            DenyReason::LocalhostDenied(denied),
            DenyReason::TailnetRangeDenied(denied),
            DenyReason::PrivateRangeDenied(denied),
            DenyReason::LinkLocalDenied(denied),
            DenyReason::ReservedRangeDenied(denied),
        ];
        let codes: Vec<_> = all.iter().map(DenyReason::code).collect();
        assert_eq!(
            codes,
            [
                "host_invalid",
                "ip_literal_denied",
                "host_not_allowed",
                "port_not_allowed",
                "sni_missing",
                "sni_mismatch",
                "dns_no_answer",
                "dns_max_ips_exceeded",
                "localhost_denied",
                "tailnet_range_denied",
                "private_range_denied",
                "link_local_denied",
                "reserved_range_denied",
            ]
        );
    }

    /// Whether the reference table says an address of this category is denied.
    fn reference_denies(c: &EgressConstraints, ip: IpAddr) -> bool {
        match reference_category(ip) {
            AddressCategory::Localhost => c.deny_localhost,
            AddressCategory::Tailnet => c.deny_tailnet_ranges,
            AddressCategory::Private => c.deny_private_ranges,
            AddressCategory::LinkLocal | AddressCategory::Reserved => true,
            AddressCategory::Public => false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn decide_allows_a_name_exactly_when_no_answer_is_in_a_denied_category(
            ips in prop::collection::vec(any_ip(), 1..5),
            deny_localhost in any::<bool>(),
            deny_private_ranges in any::<bool>(),
            deny_tailnet_ranges in any::<bool>(),
        ) {
            let c = EgressConstraints { deny_localhost, deny_private_ranges, deny_tailnet_ranges, ..constraints(&["*.example.com"]) };
            let r = EgressRequest { resolved_ips: ips.clone(), ..request("api.example.com", &[]) };
            let decision = decide(&c, &r);
            let first_denied = ips.iter().copied().find(|ip| reference_denies(&c, *ip));
            match (&decision, first_denied) {
                (EgressDecision::Allow { addrs, .. }, None) => prop_assert_eq!(addrs, &ips),
                (EgressDecision::Deny(reason), Some(ip)) => {
                    let denied = match reason {
                        DenyReason::LocalhostDenied(d) | DenyReason::TailnetRangeDenied(d)
                        | DenyReason::PrivateRangeDenied(d) | DenyReason::LinkLocalDenied(d)
                        | DenyReason::ReservedRangeDenied(d) => d,
                        other => return Err(TestCaseError::fail(format!("unexpected reason {other:?}"))),
                    };
                    prop_assert_eq!(denied.addr, ip);
                    prop_assert_eq!(denied.classification.category, reference_category(ip));
                }
                _ => return Err(TestCaseError::fail(format!("{decision:?} for {ips:?}"))),
            }
        }

        #[test]
        fn decide_allows_a_listed_literal_exactly_when_its_category_is_not_denied(
            ip in any_ip(),
            deny_localhost in any::<bool>(),
            deny_private_ranges in any::<bool>(),
            deny_tailnet_ranges in any::<bool>(),
        ) {
            let listed = ip.to_string();
            let c = EgressConstraints {
                deny_localhost, deny_private_ranges, deny_tailnet_ranges, deny_ip_literals: false,
                ..constraints(&[listed.as_str()])
            };
            let dest = match ip { IpAddr::V4(_) => listed.clone(), IpAddr::V6(_) => format!("[{listed}]") };
            let decision = decide(&c, &request(&dest, &["8.8.8.8"]));
            prop_assert_eq!(decision.is_allowed(), !reference_denies(&c, ip), "{}", decision);
        }
    }
}
