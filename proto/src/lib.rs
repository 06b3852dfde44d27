//! FCP protocol core (spec: `shared/spec/digest.md`, cited as "digest §n").
//!
//! Every FCP object, its deterministic CBOR, ids, signatures, capability tokens,
//! the decision function, the audit chain and the frame codecs. Sans-IO: no sockets,
//! files, clocks, threads, global RNG or async runtime; time and randomness are
//! arguments. No unsafe code.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod audit;
pub mod capability;
pub mod cbor;
pub mod conformance;
pub mod control;
pub mod decision;
pub mod fcpc;
pub mod fcps;
pub mod host;
pub mod hpke;
pub mod id;
pub mod keys;
pub mod object;
pub mod operation;
pub mod package;
pub mod provenance;
pub mod revocation;
pub mod role;
pub mod schema;
pub mod session;
pub mod token;
pub mod zone;
