//! TPM2_MakeCredential in software, for an ECC P-256 endorsement key (TPM 2.0 Part 1
//! §24 "Credential Protection", Part 1 §11.4.10 KDFa/KDFe). The owner needs only the
//! EK's public part and the AK's name; the TPM that holds both keys, and no other,
//! recovers the secret with TPM2_ActivateCredential.

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand_core::CryptoRngCore;
use sha2::{Digest as _, Sha256};

use crate::wire::{attr, EccPublic, ALG_AES, ALG_CFB, ALG_NULL};
use crate::AttestError;

type HmacSha256 = Hmac<Sha256>;

/// KDFa with SHA-256 (SP 800-108 counter mode, HMAC), returning `bits / 8` bytes.
pub(crate) fn kdfa(key: &[u8], label: &str, context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let want = (bits / 8) as usize;
    let mut out = Vec::with_capacity(want + 32);
    let mut counter: u32 = 1;
    while out.len() < want {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(key) else { break };
        mac.update(&counter.to_be_bytes());
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(context_u);
        mac.update(context_v);
        mac.update(&bits.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
        counter += 1;
    }
    out.truncate(want);
    out
}

/// KDFe with SHA-256 (SP 800-56A concatenation KDF), returning `bits / 8` bytes.
fn kdfe(z: &[u8], label: &str, party_u: &[u8], party_v: &[u8], bits: u32) -> Vec<u8> {
    let want = (bits / 8) as usize;
    let mut out = Vec::with_capacity(want + 32);
    let mut counter: u32 = 1;
    while out.len() < want {
        let mut h = Sha256::new();
        h.update(counter.to_be_bytes());
        h.update(z);
        h.update(label.as_bytes());
        h.update([0]);
        h.update(party_u);
        h.update(party_v);
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(want);
    out
}

/// What TPM2_MakeCredential returns: the `TPM2B_ID_OBJECT` and `TPM2B_ENCRYPTED_SECRET`
/// contents (without their outer size fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MadeCredential {
    /// integrityHMAC (as TPM2B_DIGEST) followed by encIdentity.
    pub id_object: Vec<u8>,
    /// The ephemeral ECC point, as TPMS_ECC_POINT.
    pub encrypted_secret: Vec<u8>,
}

/// Checks that `ek` is an endorsement key we can make credentials for: a restricted
/// decryption ECC P-256 key, fixed to its TPM, with AES-128-CFB as its symmetric
/// algorithm (the TCG EK template L-2).
pub fn check_ek(ek: &EccPublic) -> Result<(), AttestError> {
    let want = attr::FIXED_TPM | attr::FIXED_PARENT | attr::RESTRICTED | attr::DECRYPT;
    if !ek.has(want) || ek.has(attr::SIGN) {
        return Err(AttestError::Evidence("endorsement key is not a fixed, restricted decryption key".into()));
    }
    if ek.symmetric != ALG_AES || ek.symmetric_bits_mode != Some((128, ALG_CFB)) || ek.scheme != ALG_NULL {
        return Err(AttestError::Evidence("endorsement key is not AES-128-CFB with no scheme".into()));
    }
    Ok(())
}

/// Wraps `secret` (at most 32 bytes) so that only the TPM holding `ek` and an object
/// named `object_name` can recover it.
pub fn make_credential(
    ek: &EccPublic,
    object_name: &[u8],
    secret: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<MadeCredential, AttestError> {
    check_ek(ek)?;
    if secret.len() > 32 {
        return Err(AttestError::Evidence("credential longer than 32 bytes".into()));
    }
    let ek_point = p256::PublicKey::from_sec1_bytes(&ek.sec1())
        .map_err(|_| AttestError::Evidence("endorsement key is not a point on P-256".into()))?;
    let eph = p256::ecdh::EphemeralSecret::random(rng);
    let eph_pub = eph.public_key().to_encoded_point(false);
    let (Some(ex), Some(ey)) = (eph_pub.x(), eph_pub.y()) else {
        return Err(AttestError::Evidence("ephemeral point at infinity".into()));
    };
    let shared = eph.diffie_hellman(&ek_point);
    let z = shared.raw_secret_bytes();
    let seed = zeroize::Zeroizing::new(kdfe(z.as_slice(), "IDENTITY", ex.as_slice(), &ek.x, 256));
    let sym_key = zeroize::Zeroizing::new(kdfa(&seed, "STORAGE", object_name, &[], 128));
    let mut enc_identity = Vec::with_capacity(2 + secret.len());
    enc_identity.extend_from_slice(&(secret.len() as u16).to_be_bytes());
    enc_identity.extend_from_slice(secret);
    let cipher = cfb_mode::Encryptor::<aes::Aes128>::new_from_slices(&sym_key, &[0u8; 16])
        .map_err(|_| AttestError::Evidence("aes key length".into()))?;
    cipher.encrypt(&mut enc_identity);
    let hmac_key = zeroize::Zeroizing::new(kdfa(&seed, "INTEGRITY", &[], &[], 256));
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(&hmac_key).map_err(|_| AttestError::Evidence("hmac key length".into()))?;
    mac.update(&enc_identity);
    mac.update(object_name);
    let integrity = mac.finalize().into_bytes();
    let mut id_object = Vec::with_capacity(2 + 32 + enc_identity.len());
    id_object.extend_from_slice(&32u16.to_be_bytes());
    id_object.extend_from_slice(&integrity);
    id_object.extend_from_slice(&enc_identity);
    let mut encrypted_secret = Vec::with_capacity(68);
    for c in [ex.as_slice(), ey.as_slice()] {
        encrypted_secret.extend_from_slice(&(c.len() as u16).to_be_bytes());
        encrypted_secret.extend_from_slice(c);
    }
    Ok(MadeCredential { id_object, encrypted_secret })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_matches_its_definition_for_two_blocks() {
        // Two HMAC blocks, the second with counter 2, truncated to 40 bytes.
        let out = kdfa(b"key", "STORAGE", b"u", b"v", 320);
        assert_eq!(out.len(), 40);
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"key").expect("key");
        mac.update(&2u32.to_be_bytes());
        mac.update(b"STORAGE\0uv");
        mac.update(&320u32.to_be_bytes());
        assert_eq!(&out[32..], &mac.finalize().into_bytes()[..8]);
    }
}
