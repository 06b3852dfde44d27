//! [`Tpm`] over the TSS2 ESAPI (tss-esapi, libtss2-esys), through any TCTI.
//!
//! Every object we create is transient and reloaded from its blob under the SRK, which
//! is re-derived with CreatePrimary from the storage seed each time: nothing occupies a
//! persistent handle, and a cleared TPM shows as a different SRK name. Keys and sealed
//! objects carry noDA (their auth is empty, so a lockout would only deny service).
//! Commands the TPM answers with RETRY, YIELDED, TESTING or NV_RATE are retried with
//! exponential backoff; so is opening a TCTI whose device is busy.

use std::str::FromStr;
use std::time::Duration;

use tss_esapi::abstraction::{ek, pcr, AsymmetricAlgorithmSelection};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::constants::{CapabilityType, PropertyTag, SessionType};
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    CapabilityData, Data, Digest, EccPoint, EccScheme, EncryptedSecret, HashScheme, IdObject, KeyedHashScheme,
    PcrSelectionList, PcrSelectionListBuilder, PcrSlot, Private, Public, PublicBuilder, PublicEccParametersBuilder,
    PublicKeyedHashParameters, SensitiveData, SignatureScheme, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::Marshall;
use tss_esapi::traits::UnMarshall;
use tss_esapi::Context;
use zeroize::Zeroizing;

use super::{KeyBlob, Tpm, TpmInfo};
use crate::wire::PcrSelection;
use crate::AttestError;

/// Attempts for a busy TPM or TCTI before giving up.
pub const MAX_ATTEMPTS: u32 = 7;
/// First backoff delay; it doubles up to [`MAX_DELAY`] (≈ 5 s in all).
pub const FIRST_DELAY: Duration = Duration::from_millis(40);
/// Longest single backoff delay.
pub const MAX_DELAY: Duration = Duration::from_millis(1600);

/// Runs `f` until it succeeds, fails with an error `busy` does not accept, or
/// `attempts` runs out; sleeps `first`, `2 × first`, … (at most [`MAX_DELAY`]) between
/// tries. Returns the last error and the number of attempts made.
pub fn with_backoff<T, E>(
    attempts: u32,
    first: Duration,
    busy: impl Fn(&E) -> bool,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<T, (E, u32)> {
    let mut delay = first;
    let mut n = 0;
    loop {
        n += 1;
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if n < attempts && busy(&e) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(MAX_DELAY);
            }
            Err(e) => return Err((e, n)),
        }
    }
}

/// Whether the TPM asked to be asked again.
pub fn is_busy(e: &tss_esapi::Error) -> bool {
    match e {
        tss_esapi::Error::Tss2Error(rc) => matches!(
            rc.kind(),
            Some(
                Tss2ResponseCodeKind::Retry
                    | Tss2ResponseCodeKind::Yielded
                    | Tss2ResponseCodeKind::Testing
                    | Tss2ResponseCodeKind::NvRate
            )
        ),
        tss_esapi::Error::WrapperError(_) => false,
    }
}

fn run<T>(op: &'static str, f: impl FnMut() -> tss_esapi::Result<T>) -> Result<T, AttestError> {
    with_backoff(MAX_ATTEMPTS, FIRST_DELAY, is_busy, f).map_err(|(e, attempts)| {
        if is_busy(&e) {
            AttestError::Busy { op, attempts }
        } else {
            AttestError::Tpm { op, detail: e.to_string() }
        }
    })
}

/// A TPM reached through a TCTI.
pub struct TssTpm {
    ctx: Context,
    tcti: String,
    srk: Option<KeyHandle>,
    ek: Option<KeyHandle>,
}

impl std::fmt::Debug for TssTpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TssTpm").field("tcti", &self.tcti).finish()
    }
}

fn selection(pcrs: &[u8]) -> Result<PcrSelectionList, AttestError> {
    let slots = pcrs
        .iter()
        .map(|p| {
            let bit = 1u32.checked_shl(u32::from(*p)).unwrap_or(0);
            PcrSlot::try_from(bit).map_err(|_| AttestError::State(format!("PCR {p} cannot be selected")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(|e| AttestError::State(format!("PCR selection: {e}")))
}

fn local(op: &'static str) -> impl FnOnce(tss_esapi::Error) -> AttestError {
    move |e| AttestError::Tpm { op, detail: e.to_string() }
}

impl TssTpm {
    /// Opens the TPM behind `tcti` (TPM2TOOLS_TCTI syntax), retrying a busy device.
    pub fn open(tcti: &str) -> Result<Self, AttestError> {
        let conf = TctiNameConf::from_str(tcti)
            .map_err(|e| AttestError::NoTpm { tcti: tcti.to_owned(), reason: format!("not a TCTI ({e})") })?;
        // Opening fails the same way for "busy" and "absent"; a few quick retries cover a
        // device another process holds for a moment without stalling a machine that has
        // no TPM for long.
        let ctx = with_backoff(4, FIRST_DELAY, |_: &tss_esapi::Error| true, || Context::new(conf.clone()))
            .map_err(|(e, n)| AttestError::NoTpm {
                tcti: tcti.to_owned(),
                reason: format!(
                    "the TCTI did not open after {n} attempts ({e}): no TPM device, no simulator listening, or the device is held by another process"
                ),
            })?;
        let mut tpm = TssTpm { ctx, tcti: tcti.to_owned(), srk: None, ek: None };
        // A TPM that is present answers a property read; one that is not fails here.
        tpm.property(PropertyTag::Manufacturer)
            .map_err(|e| AttestError::NoTpm { tcti: tcti.to_owned(), reason: e.to_string() })?;
        Ok(tpm)
    }

    /// The TCTI this TPM was opened with.
    pub fn tcti(&self) -> &str {
        &self.tcti
    }

    fn property(&mut self, tag: PropertyTag) -> Result<u32, AttestError> {
        let ctx = &mut self.ctx;
        Ok(run("GetCapability", || ctx.get_tpm_property(tag))?.unwrap_or(0))
    }

    fn srk(&mut self) -> Result<KeyHandle, AttestError> {
        if let Some(h) = self.srk {
            return Ok(h);
        }
        let attrs = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_no_da(true)
            .with_restricted(true)
            .with_decrypt(true)
            .build()
            .map_err(local("srk template"))?;
        let public = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_ecc_parameters(
                PublicEccParametersBuilder::new_restricted_decryption_key(
                    SymmetricDefinitionObject::AES_128_CFB,
                    EccCurve::NistP256,
                )
                .build()
                .map_err(local("srk template"))?,
            )
            .with_ecc_unique_identifier(EccPoint::default())
            .build()
            .map_err(local("srk template"))?;
        let ctx = &mut self.ctx;
        let h = run("CreatePrimary(owner)", || {
            ctx.execute_with_nullauth_session(|c| {
                c.create_primary(Hierarchy::Owner, public.clone(), None, None, None, None)
            })
        })?
        .key_handle;
        self.srk = Some(h);
        Ok(h)
    }

    fn ek(&mut self) -> Result<KeyHandle, AttestError> {
        if let Some(h) = self.ek {
            return Ok(h);
        }
        let ctx = &mut self.ctx;
        let h = run("CreatePrimary(endorsement)", || {
            ek::create_ek_object_2(ctx, AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256), None)
        })?;
        self.ek = Some(h);
        Ok(h)
    }

    fn load(&mut self, blob: &KeyBlob) -> Result<KeyHandle, AttestError> {
        let srk = self.srk()?;
        let public = Public::unmarshall(&blob.public).map_err(local("unmarshal public"))?;
        let private = Private::try_from(blob.private.clone()).map_err(local("private blob"))?;
        let ctx = &mut self.ctx;
        run("Load", || ctx.execute_with_nullauth_session(|c| c.load(srk, private.clone(), public.clone())))
    }

    fn flush(&mut self, h: impl Into<ObjectHandle>) {
        // A handle we cannot flush is freed when the connection closes.
        let _ = self.ctx.flush_context(h.into());
    }

    fn create(&mut self, public: Public, data: Option<SensitiveData>) -> Result<KeyBlob, AttestError> {
        let srk = self.srk()?;
        let ctx = &mut self.ctx;
        let made = run("Create", || {
            ctx.execute_with_nullauth_session(|c| c.create(srk, public.clone(), None, data.clone(), None, None))
        })?;
        Ok(KeyBlob {
            public: made.out_public.marshall().map_err(local("marshal public"))?,
            private: made.out_private.value().to_vec(),
        })
    }

    fn policy_session(&mut self, kind: SessionType) -> Result<AuthSession, AttestError> {
        let ctx = &mut self.ctx;
        run("StartAuthSession", || {
            ctx.start_auth_session(None, None, None, kind, SymmetricDefinition::AES_128_CFB, HashingAlgorithm::Sha256)
        })?
        .ok_or_else(|| AttestError::State("the TPM returned no session".into()))
    }

    fn flush_session(&mut self, s: AuthSession) {
        let _ = self.ctx.flush_context(SessionHandle::from(s).into());
    }

    /// Runs PolicyPCR over `pcrs` (current values) in `session`.
    fn policy_pcr(&mut self, session: AuthSession, pcrs: &[u8]) -> Result<(), AttestError> {
        let sel = selection(pcrs)?;
        let ps = PolicySession::try_from(session).map_err(local("policy session"))?;
        let ctx = &mut self.ctx;
        run("PolicyPCR", || ctx.policy_pcr(ps, Digest::default(), sel.clone()))
    }

    /// The policy digest binding `pcrs` to their current values (trial session).
    fn pcr_policy_digest(&mut self, pcrs: &[u8]) -> Result<Digest, AttestError> {
        let s = self.policy_session(SessionType::Trial)?;
        let r = self.policy_pcr(s, pcrs).and_then(|()| {
            let ps = PolicySession::try_from(s).map_err(local("policy session"))?;
            let ctx = &mut self.ctx;
            run("PolicyGetDigest", || ctx.policy_get_digest(ps))
        });
        self.flush_session(s);
        r
    }

    /// Extends a SHA-256 PCR (tests and tooling; fcp-attest itself never extends).
    pub fn pcr_extend(&mut self, pcr: u8, digest: [u8; 32]) -> Result<(), AttestError> {
        use tss_esapi::handles::PcrHandle;
        use tss_esapi::structures::DigestValues;
        let handle = PcrHandle::try_from(u32::from(pcr)).map_err(local("pcr handle"))?;
        let mut values = DigestValues::new();
        values.set(HashingAlgorithm::Sha256, Digest::try_from(digest.to_vec()).map_err(local("digest"))?);
        let ctx = &mut self.ctx;
        run("PCR_Extend", || ctx.execute_with_nullauth_session(|c| c.pcr_extend(handle, values.clone())))
    }
}

impl Drop for TssTpm {
    fn drop(&mut self) {
        for h in [self.srk.take(), self.ek.take()].into_iter().flatten() {
            self.flush(h);
        }
    }
}

fn ascii(words: &[u32]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    bytes
        .iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|b| char::from(*b))
        .collect::<String>()
        .trim()
        .to_owned()
}

impl Tpm for TssTpm {
    fn info(&mut self) -> Result<TpmInfo, AttestError> {
        let manufacturer = ascii(&[self.property(PropertyTag::Manufacturer)?]);
        let mut v = Vec::new();
        for tag in [
            PropertyTag::VendorString1,
            PropertyTag::VendorString2,
            PropertyTag::VendorString3,
            PropertyTag::VendorString4,
        ] {
            v.push(self.property(tag)?);
        }
        let fw = (u64::from(self.property(PropertyTag::FirmwareVersion1)?) << 32)
            | u64::from(self.property(PropertyTag::FirmwareVersion2)?);
        Ok(TpmInfo { manufacturer, vendor: ascii(&v), firmware_version: fw })
    }

    fn ek_public(&mut self) -> Result<Vec<u8>, AttestError> {
        let ek = self.ek()?;
        let ctx = &mut self.ctx;
        let (public, _, _) = run("ReadPublic(ek)", || ctx.read_public(ek))?;
        public.marshall().map_err(local("marshal ek"))
    }

    fn ek_certificate(&mut self) -> Result<Option<Vec<u8>>, AttestError> {
        // An NV index that is not defined is the common case (swtpm without
        // --create-ek-cert, many firmware TPMs): no certificate.
        const ECC_EK_CERT_INDEX: u32 = 0x01c0_000a;
        let ctx = &mut self.ctx;
        let (handles, _) =
            run("GetCapability(handles)", || ctx.get_capability(CapabilityType::Handles, ECC_EK_CERT_INDEX, 1))?;
        let defined =
            matches!(handles, CapabilityData::Handles(list) if list.iter().any(|h| u32::from(*h) == ECC_EK_CERT_INDEX));
        if !defined {
            return Ok(None);
        }
        Ok(ek::retrieve_ek_pubcert(&mut self.ctx, AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256)).ok())
    }

    fn srk_name(&mut self) -> Result<Vec<u8>, AttestError> {
        let srk = self.srk()?;
        let ctx = &mut self.ctx;
        let (_, name, _) = run("ReadPublic(srk)", || ctx.read_public(srk))?;
        Ok(name.value().to_vec())
    }

    fn create_ak(&mut self) -> Result<KeyBlob, AttestError> {
        let attrs = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_no_da(true)
            .with_restricted(true)
            .with_sign_encrypt(true)
            .build()
            .map_err(local("ak template"))?;
        let scheme = EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256));
        let public = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_ecc_parameters(
                PublicEccParametersBuilder::new()
                    .with_symmetric(SymmetricDefinitionObject::Null)
                    .with_ecc_scheme(scheme)
                    .with_curve(EccCurve::NistP256)
                    .with_key_derivation_function_scheme(tss_esapi::structures::KeyDerivationFunctionScheme::Null)
                    .with_is_signing_key(true)
                    .with_restricted(true)
                    .build()
                    .map_err(local("ak template"))?,
            )
            .with_ecc_unique_identifier(EccPoint::default())
            .build()
            .map_err(local("ak template"))?;
        self.create(public, None)
    }

    fn quote(
        &mut self,
        ak: &KeyBlob,
        qualifying: &[u8],
        pcrs: &PcrSelection,
    ) -> Result<(Vec<u8>, Vec<u8>), AttestError> {
        let indices: Vec<u8> = pcrs.slots().map(|(_, p)| p).collect();
        let sel = selection(&indices)?;
        let data = Data::try_from(qualifying.to_vec()).map_err(local("qualifying data"))?;
        let h = self.load(ak)?;
        let ctx = &mut self.ctx;
        let r = run("Quote", || {
            ctx.execute_with_nullauth_session(|c| c.quote(h, data.clone(), SignatureScheme::Null, sel.clone()))
        });
        self.flush(h);
        let (attest, sig) = r?;
        Ok((attest.marshall().map_err(local("marshal attest"))?, sig.marshall().map_err(local("marshal signature"))?))
    }

    fn pcr_read(&mut self, pcrs: &[u8]) -> Result<Vec<[u8; 32]>, AttestError> {
        let sel = selection(pcrs)?;
        let ctx = &mut self.ctx;
        let data = run("PCR_Read", || pcr::read_all(ctx, sel.clone()))?;
        let bank = data
            .pcr_bank(HashingAlgorithm::Sha256)
            .ok_or_else(|| AttestError::State("the TPM has no SHA-256 PCR bank".into()))?;
        let mut sorted = pcrs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        sorted
            .iter()
            .map(|p| {
                let slot = PcrSlot::try_from(1u32.checked_shl(u32::from(*p)).unwrap_or(0))
                    .map_err(|_| AttestError::State(format!("PCR {p} cannot be selected")))?;
                let d = bank.get_digest(slot).ok_or_else(|| AttestError::State(format!("PCR {p} was not read")))?;
                d.value().try_into().map_err(|_| AttestError::State(format!("PCR {p} is not 32 bytes")))
            })
            .collect()
    }

    fn activate_credential(
        &mut self,
        ak: &KeyBlob,
        id_object: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, AttestError> {
        let id = IdObject::try_from(id_object.to_vec()).map_err(local("id object"))?;
        let secret = EncryptedSecret::try_from(encrypted_secret.to_vec()).map_err(local("encrypted secret"))?;
        let ek = self.ek()?;
        let akh = self.load(ak)?;
        let s = self.policy_session(SessionType::Policy)?;
        let r = (|| {
            let ps = PolicySession::try_from(s).map_err(local("policy session"))?;
            let ctx = &mut self.ctx;
            // The TCG EK policy: PolicySecret(TPM_RH_ENDORSEMENT), empty endorsement auth.
            run("PolicySecret", || {
                ctx.execute_with_nullauth_session(|c| {
                    c.policy_secret(
                        ps,
                        AuthHandle::Endorsement,
                        Default::default(),
                        Default::default(),
                        Default::default(),
                        None,
                    )
                })
            })?;
            run("ActivateCredential", || {
                ctx.execute_with_sessions((Some(AuthSession::Password), Some(s), None), |c| {
                    c.activate_credential(akh, ek, id.clone(), secret.clone())
                })
            })
        })();
        self.flush_session(s);
        self.flush(akh);
        Ok(Zeroizing::new(r?.value().to_vec()))
    }

    fn seal(&mut self, data: &[u8], policy_pcrs: &[u8]) -> Result<KeyBlob, AttestError> {
        let policy = if policy_pcrs.is_empty() { None } else { Some(self.pcr_policy_digest(policy_pcrs)?) };
        let attrs = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_no_da(true)
            .with_user_with_auth(policy.is_none())
            .build()
            .map_err(local("seal template"))?;
        let mut b = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::KeyedHash)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attrs)
            .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
            .with_keyed_hash_unique_identifier(Digest::default());
        if let Some(p) = policy {
            b = b.with_auth_policy(p);
        }
        let public = b.build().map_err(local("seal template"))?;
        let sensitive = SensitiveData::try_from(data.to_vec()).map_err(local("sealed data"))?;
        self.create(public, Some(sensitive))
    }

    fn unseal(&mut self, blob: &KeyBlob, policy_pcrs: &[u8]) -> Result<Zeroizing<Vec<u8>>, AttestError> {
        let h = self.load(blob).map_err(|e| {
            AttestError::Unseal(format!(
                "the TPM refuses to load it ({e}); it was sealed by another TPM or before a clear"
            ))
        })?;
        let r = if policy_pcrs.is_empty() {
            let ctx = &mut self.ctx;
            run("Unseal", || ctx.execute_with_nullauth_session(|c| c.unseal(h.into())))
        } else {
            let s = self.policy_session(SessionType::Policy)?;
            let r = self.policy_pcr(s, policy_pcrs).and_then(|()| {
                let ctx = &mut self.ctx;
                run("Unseal", || ctx.execute_with_session(Some(s), |c| c.unseal(h.into())))
            });
            self.flush_session(s);
            r
        };
        self.flush(h);
        match r {
            Ok(d) => Ok(Zeroizing::new(d.value().to_vec())),
            Err(AttestError::Tpm { detail, .. }) => Err(AttestError::Unseal(format!(
                "the TPM refused ({detail}); with a PCR policy this means the measured boot state changed since sealing"
            ))),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn backoff_retries_busy_then_succeeds_and_stops_on_other_errors() {
        let calls = Cell::new(0);
        let r: Result<u32, (&str, u32)> = with_backoff(
            5,
            Duration::from_millis(1),
            |e: &&str| *e == "busy",
            || {
                calls.set(calls.get() + 1);
                if calls.get() < 3 {
                    Err("busy")
                } else {
                    Ok(7)
                }
            },
        );
        assert_eq!(r, Ok(7));
        assert_eq!(calls.get(), 3);
        let r: Result<u32, (&str, u32)> =
            with_backoff(5, Duration::from_millis(1), |e: &&str| *e == "busy", || Err("bad"));
        assert_eq!(r, Err(("bad", 1)), "a non-busy error is not retried");
        let r: Result<u32, (&str, u32)> = with_backoff(4, Duration::from_millis(1), |_: &&str| true, || Err("busy"));
        assert_eq!(r, Err(("busy", 4)), "gives up after the attempts");
    }
}
