//! Egress decision (`vectors/README.md` §5.18, digest §11.3): may the egress proxy open a
//! connection for an operation, and to which addresses?
//!
//! Pure: no sockets and no DNS. The caller passes what the connector asked for and what its
//! own resolver returned; the decision names the addresses to connect to, so the proxy
//! never re-resolves (no DNS rebinding).
//!
//! - [`parse_host`] canonicalises a requested host or SNI (IDNA, lowercase, every IPv4
//!   number form).
//! - [`category`] places an address in the category table.
//! - [`admit`] (steps 1–5, before DNS) and [`Admitted::vet_addresses`] (steps 6–7) are the
//!   two phases the proxy runs; [`decide`] composes them.
//!
//! ```
//! use fcp_policy::egress::{decide, EgressConstraints, EgressRequest};
//!
//! let constraints = EgressConstraints {
//!     host_allow: vec!["*.example.com".into()],
//!     port_allow: vec![443],
//!     deny_localhost: true,
//!     deny_private_ranges: true,
//!     deny_tailnet_ranges: true,
//!     deny_ip_literals: true,
//!     require_sni: true,
//!     dns_max_ips: 4,
//! };
//! let request = EgressRequest {
//!     dest_host: "API.Example.com.".into(),
//!     dest_port: 443,
//!     resolved_ips: vec!["93.184.215.14".parse()?, "10.0.0.5".parse()?],
//!     sni: Some("api.example.com".into()),
//! };
//! let decision = decide(&constraints, &request);
//! assert_eq!(decision.reason_code(), "private_range_denied");
//! assert_eq!(
//!     decision.to_string(),
//!     "denied: address 10.0.0.5 (in 10.0.0.0/8) is in a private range and deny_private_ranges is set"
//! );
//! # Ok::<(), std::net::AddrParseError>(())
//! ```

mod decision;
mod host;
mod range;
pub mod vectors;

pub use decision::{
    admit, admit_host, decide, Admitted, DeniedAddress, DenyReason, EgressConstraints, EgressDecision, EgressRequest,
};
pub use host::{parse_host, DnsName, Host, HostError, MAX_LABEL_LEN, MAX_NAME_LEN};
pub use range::{category, classify, effective_address, AddressCategory, Classification, Prefix};
