//! The TPM operations the device side needs, as a trait (house style: privileged
//! operations behind small traits, passed in explicitly). [`tss::TssTpm`] is the real
//! backend over any TCTI; tests run it against their own swtpm.

#[cfg(feature = "tss")]
pub mod tss;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::wire::PcrSelection;
use crate::AttestError;

/// The environment variable naming the TCTI, in TPM2TOOLS_TCTI syntax
/// (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, `tabrmd:bus_type=system`).
pub const TCTI_ENV: &str = "FCP_TCTI";
/// The TCTI used when neither `FCP_TCTI` nor configuration names one: the kernel's
/// resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// A key the TPM created, as it can be loaded again under the same parent: marshalled
/// TPMT_PUBLIC and the TPM2B_PRIVATE contents (encrypted by the parent; useless to
/// anyone without that TPM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBlob {
    /// TPMT_PUBLIC.
    #[serde(with = "serde_bytes")]
    pub public: Vec<u8>,
    /// TPM2B_PRIVATE contents.
    #[serde(with = "serde_bytes")]
    pub private: Vec<u8>,
}

/// What the TPM says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmInfo {
    /// TPM_PT_MANUFACTURER as ASCII (`IBM`, `INTC`, …).
    pub manufacturer: String,
    /// TPM_PT_VENDOR_STRING_1..4 as ASCII.
    pub vendor: String,
    /// TPM_PT_FIRMWARE_VERSION_1 << 32 | _2.
    pub firmware_version: u64,
}

/// A TPM 2.0.
pub trait Tpm {
    /// Manufacturer, vendor and firmware.
    fn info(&mut self) -> Result<TpmInfo, AttestError>;
    /// The ECC P-256 endorsement key (TCG template L-2) as marshalled TPMT_PUBLIC.
    fn ek_public(&mut self) -> Result<Vec<u8>, AttestError>;
    /// The EK certificate from NV, when the manufacturer provisioned one.
    fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, AttestError>;
    /// The name of the storage root key (ECC P-256, derived from the storage seed, so it
    /// changes when the TPM is cleared).
    fn srk_name(&mut self) -> Result<Vec<u8>, AttestError>;
    /// Creates a restricted ECDSA P-256 signing key (noDA) under the SRK.
    fn create_ak(&mut self) -> Result<KeyBlob, AttestError>;
    /// TPM2_Quote by `ak` over `pcrs` with `qualifying` data: (TPMS_ATTEST, TPMT_SIGNATURE).
    fn quote(
        &mut self,
        ak: &KeyBlob,
        qualifying: &[u8],
        pcrs: &PcrSelection,
    ) -> Result<(Vec<u8>, Vec<u8>), AttestError>;
    /// The SHA-256 bank values of `pcrs`, in ascending order.
    fn pcr_read(&mut self, pcrs: &[u8]) -> Result<Vec<[u8; 32]>, AttestError>;
    /// TPM2_ActivateCredential: `ak` is the credentialed key, the EK decrypts.
    fn activate_credential(
        &mut self,
        ak: &KeyBlob,
        id_object: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AttestError>;
    /// Seals `data` (at most 128 bytes) under the SRK, noDA; with `policy_pcrs`
    /// non-empty only while those SHA-256 PCRs hold today's values.
    fn seal(&mut self, data: &[u8], policy_pcrs: &[u8]) -> Result<KeyBlob, AttestError>;
    /// Unseals what [`Tpm::seal`] returned.
    fn unseal(&mut self, blob: &KeyBlob, policy_pcrs: &[u8]) -> Result<Zeroizing<Vec<u8>>, AttestError>;
}

/// The TCTI to use: `configured` (from state or config) unless `FCP_TCTI` is set, then
/// [`DEFAULT_TCTI`].
pub fn tcti_from_env(configured: Option<&str>) -> String {
    std::env::var(TCTI_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| configured.map(str::to_owned))
        .unwrap_or_else(|| DEFAULT_TCTI.to_owned())
}
