//! FCP policy: turns a connector manifest (schema 2.1, digest §11) into typed values,
//! validates it with the reference implementation's rules, computes its
//! interface_hash, and decides egress (`vectors/README.md` §5.18). It compiles the
//! `[sandbox]` section into the Linux [`jail`] plan, and into the macOS and Windows
//! profiles of [`platform`].
//!
//! Pure: it reads no files, opens no sockets and applies nothing.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod conformance;
pub mod egress;
pub mod jail;
pub mod manifest;
pub mod platform;
