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
//! - The decision procedure follows.

mod host;
mod range;
pub mod vectors;

pub use host::{parse_host, DnsName, Host, HostError, MAX_LABEL_LEN, MAX_NAME_LEN};
pub use range::{category, classify, effective_address, AddressCategory, Classification, Prefix};
