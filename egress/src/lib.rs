//! FCP egress: each connector's only way out.
//!
//! - `net`: the per-jail network. A veth pair per jail, its jail end in the connector's
//!   network namespace with a default route to its host end, addresses from a pool fcpd
//!   owns, and one nftables table that redirects every TCP connection from a jail to the
//!   proxy and DNS to its responder, and drops the rest (counted).
//! - `proxy`: the transparent proxy. It knows the connector from the veth a connection
//!   arrived on, decides each connection with `fcp_policy::egress` (the code `fcp egress
//!   check` and the vectors run), answers DNS only for allowed names and pins the answers.
//! - [`mitm`]: TLS interception for credential injection: a short-lived CA per jail, a
//!   leaf per allowed name, upstream TLS of its own, and the credential swapped in only
//!   toward the hosts it is bound to.

#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod hello;
pub mod mitm;
pub mod net;
pub mod proxy;
#[allow(unsafe_code)]
mod sys;
