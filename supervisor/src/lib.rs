//! fcpd, the FCP supervisor: installs connectors from signed packages, runs each in its
//! own instance bound to one zone, and invokes them only through one default-deny
//! pipeline that ends in a signed receipt and a hash-linked audit event.
//!
//! Nothing depends on this crate but its binary and its tests.

#![forbid(unsafe_code)]

pub mod api;
pub mod connectors;
pub mod credentials;
pub mod daemon;
pub mod egress;
pub mod home;
pub mod store;
