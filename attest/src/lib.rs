//! fcp-attest: a device proves to its owner, at enrollment, that its node keys are
//! held by its TPM and in what state it booted; the owner refuses devices that cannot
//! (spec/attest.md).
//!
//! - [`wire`]: strict decoders of the TPM structures an owner reads (pure).
//! - [`credential`]: TPM2_MakeCredential in software, for the owner (pure).
//! - [`evidence`]: the enrollment files (request, challenge, response, grant) and their
//!   bounded decoders (pure).
//! - [`verify`]: the owner's checks, in a fixed order, and the signed result (pure; the
//!   nonce store is a trait, with a directory-backed implementation).
//! - [`tpm`]: the [`tpm::Tpm`] trait the device side needs, and with feature `tss` its
//!   TSS2 ESAPI backend ([`tpm::tss`]) with TCTI selection, retries and error classes.
//! - [`device`]: the device's state directory, the enrollment steps, and what fcpd
//!   calls at start: unsealing the node keys and checking the node's posture.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod credential;
pub mod device;
pub mod evidence;
pub mod tpm;
pub mod verify;
pub mod wire;

use std::path::PathBuf;

/// Everything that can go wrong, by step and by blame: `Peer*`-style refusals are the
/// device's (or an attacker's) doing and carry a stable code; the rest are local.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// No TPM could be reached through the TCTI.
    #[error("no TPM at {tcti}: {reason}")]
    NoTpm {
        /// The TCTI tried.
        tcti: String,
        /// What the TSS said.
        reason: String,
    },
    /// The TPM stayed busy through every retry.
    #[error("TPM busy during {op} after {attempts} attempts")]
    Busy {
        /// The command.
        op: &'static str,
        /// Attempts made.
        attempts: u32,
    },
    /// A TPM command failed.
    #[error("TPM command {op} failed: {detail}")]
    Tpm {
        /// The command.
        op: &'static str,
        /// The TSS's words.
        detail: String,
    },
    /// The TPM's storage seed changed since enrollment: it was cleared.
    #[error(
        "the TPM was cleared since enrollment (its storage root key changed); what it sealed is gone: re-enroll this node (spec/attest.md §5)"
    )]
    TpmCleared,
    /// The TPM's endorsement key changed since enrollment: another TPM.
    #[error("this is not the TPM this node enrolled with (its endorsement key changed): re-enroll this node (spec/attest.md §5)")]
    TpmReplaced,
    /// The sealed node keys did not unseal (PCR policy not met, or another TPM).
    #[error("the sealed node keys do not unseal: {0}")]
    Unseal(String),
    /// The device is not in a state for this step.
    #[error("{0}")]
    State(String),
    /// Evidence from the other side is malformed.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// Which object.
        what: &'static str,
        /// Why.
        why: String,
    },
    /// Evidence decodes but is not acceptable (e.g. a key of the wrong kind).
    #[error("evidence: {0}")]
    Evidence(String),
    /// A verification step refused.
    #[error("{code}: {why}")]
    Refused {
        /// Stable reason code (`attest.*`).
        code: &'static str,
        /// For people.
        why: String,
    },
    /// An identity object from fcp-proto.
    #[error("identity object")]
    Key(#[source] fcp_proto::keys::KeyError),
    /// I/O on a path.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl AttestError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            AttestError::NoTpm { .. } => "attest.no_tpm",
            AttestError::Busy { .. } => "attest.tpm_busy",
            AttestError::Tpm { .. } => "attest.tpm_error",
            AttestError::TpmCleared => "attest.tpm_cleared",
            AttestError::TpmReplaced => "attest.tpm_replaced",
            AttestError::Unseal(_) => "attest.unseal_failed",
            AttestError::State(_) => "attest.state",
            AttestError::Malformed { .. } => "attest.malformed",
            AttestError::Evidence(_) => "attest.bad_evidence",
            AttestError::Refused { code, .. } => code,
            AttestError::Key(e) => e.code(),
            AttestError::Io { .. } => "attest.io",
        }
    }

    pub(crate) fn refused(code: &'static str, why: impl Into<String>) -> Self {
        AttestError::Refused { code, why: why.into() }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AttestError + '_ {
        move |source| AttestError::Io { path: path.to_owned(), source }
    }
}
