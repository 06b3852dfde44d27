//! Kinds `capability_token` (`vectors/README.md` §5.12) and `hpke_seal` (§5.13).

use chacha20::cipher::{KeyIvInit, StreamCipher};
use serde_json::Value as Json;

use super::json::{self, check_hex};
use crate::hpke::{self, AadFields, HpkeSealedBox, X25519SecretKey};
use crate::id::{Kid, ObjectId};
use crate::token::{self, CapabilityClaims, Grant, SigningKey, VerifyingKey};

// ---------------------------------------------------------------------------
// capability_token

fn claim_text(name: &str, v: &Json) -> Result<String, String> {
    v.as_str().map(str::to_owned).ok_or_else(|| format!("claim {name} is not text"))
}

fn claim_i64(name: &str, v: &Json) -> Result<i64, String> {
    v.as_i64().ok_or_else(|| format!("claim {name} is not an integer in i64"))
}

fn claim_u64(name: &str, v: &Json) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| format!("claim {name} is not an unsigned integer"))
}

fn claim_hex(name: &str, v: &Json) -> Result<Vec<u8>, String> {
    hex::decode(v.as_str().ok_or_else(|| format!("claim {name} is not hex text"))?)
        .map_err(|e| format!("claim {name}: {e}"))
}

fn claim_object_id(name: &str, bytes: Vec<u8>) -> Result<ObjectId, String> {
    let n = bytes.len();
    bytes.try_into().map(ObjectId).map_err(|_| format!("claim {name} has {n} bytes, not an ObjectId"))
}

fn claim_array<'a>(name: &str, v: &'a Json) -> Result<&'a Vec<Json>, String> {
    v.as_array().ok_or_else(|| format!("claim {name} is not an array"))
}

/// The named claims of a case (the README §5.12 table) as typed claims.
fn claims_of(obj: &Json) -> Result<CapabilityClaims, String> {
    let obj = obj.as_object().ok_or("claims is not an object")?;
    let mut c = CapabilityClaims::default();
    for (name, v) in obj {
        let n = name.as_str();
        match n {
            "iss" => c.iss = Some(claim_text(n, v)?),
            "sub" => c.sub = Some(claim_text(n, v)?),
            "aud" => c.aud = Some(claim_text(n, v)?),
            "exp" => c.exp = Some(claim_i64(n, v)?),
            "nbf" => c.nbf = Some(claim_i64(n, v)?),
            "iat" => c.iat = Some(claim_i64(n, v)?),
            "cti" => c.cti = Some(claim_hex(n, v)?),
            "capability_id" => c.capability_id = Some(claim_text(n, v)?),
            "zone_id" => c.zone_id = Some(claim_text(n, v)?),
            "operations" => {
                c.operations = Some(claim_array(n, v)?.iter().map(|o| claim_text(n, o)).collect::<Result<_, _>>()?)
            }
            "principal_id" => c.principal_id = Some(claim_text(n, v)?),
            "delegation_depth" => c.delegation_depth = Some(claim_u64(n, v)?),
            "parent_token" => c.parent_token = Some(claim_hex(n, v)?),
            "iss_node" => c.iss_node = Some(claim_text(n, v)?),
            "aud_binary" => c.aud_binary = Some(claim_object_id(n, claim_hex(n, v)?)?),
            "grant_object_ids" => {
                let ids = claim_array(n, v)?
                    .iter()
                    .map(|e| match json::to_cbor(e)? {
                        crate::cbor::Value::Bytes(b) => claim_object_id(n, b),
                        _ => Err(format!("claim {n}: element is not {{\"$bytes\": …}}")),
                    })
                    .collect::<Result<_, _>>()?;
                c.grant_object_ids = Some(ids);
            }
            "holder_node" => c.holder_node = Some(claim_text(n, v)?),
            "chk_id" => c.chk_id = Some(claim_hex(n, v)?),
            "chk_seq" => c.chk_seq = Some(claim_u64(n, v)?),
            "constraints" => c.constraints = Some(json::to_cbor(v)?),
            "grants" => {
                let grants = claim_array(n, v)?
                    .iter()
                    .map(|g| {
                        Ok(Grant {
                            capability: json::text(g, "capability")?.to_owned(),
                            operation: json::opt_text(g, "operation")?.map(str::to_owned),
                        })
                    })
                    .collect::<Result<_, String>>()?;
                c.grants = Some(grants);
            }
            "instance_id" => c.instance_id = Some(claim_text(n, v)?),
            "schema_version" => c.schema_version = Some(claim_u64(n, v)?),
            other => return Err(format!("unknown claim name {other:?}")),
        }
    }
    Ok(c)
}

fn token_sign(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let sk = SigningKey::from_bytes(&json::array::<32>(case, "signing_seed")?);
    let pk = sk.verifying_key();
    let claims = claims_of(json::field(case, "claims")?)?;
    let signed = token::sign(&sk, &claims).map_err(|e| format!("sign: {e}"))?;
    check_hex(exp, "public_key", pk.as_bytes())?;
    check_hex(exp, "kid", &Kid::of(pk.as_bytes()).0)?;
    check_hex(exp, "claims_cbor", &claims.to_cbor().map_err(|e| e.to_string())?)?;
    check_hex(exp, "protected", signed.protected())?;
    check_hex(exp, "payload", signed.payload())?;
    check_hex(exp, "sig_structure", &signed.sig_structure())?;
    check_hex(exp, "signature", signed.signature())?;
    check_hex(exp, "token", signed.as_bytes())?;
    // What we sign, we accept, and the typed reader reads back what was signed.
    let verified = token::verify_cose(signed.as_bytes(), &pk).map_err(|e| format!("own token: {}", e.code()))?;
    let back = verified.claims().map_err(|e| format!("own token claims: {e}"))?;
    let mut want = claims;
    if want.aud.is_none() {
        want.aud = want.zone_id.clone();
    }
    want.schema_version = want.schema_version.or(Some(token::CLAIMS_SCHEMA_VERSION));
    if back != want {
        return Err(format!("own token reads back as {back:?}"));
    }
    Ok(())
}

fn token_verify(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let pk = VerifyingKey::from_bytes(&json::array::<32>(case, "public_key")?)
        .map_err(|e| format!("public_key is not an Ed25519 point: {e}"))?;
    let result = match token::verify_cose(&json::bytes(case, "token")?, &pk) {
        Ok(_) => "valid",
        Err(e) => e.code(),
    };
    json::check_json(exp, "result", &Json::from(result))
}

pub(super) fn capability_token(case: &Json) -> Result<(), String> {
    match json::text(case, "variant")? {
        "sign" => token_sign(case),
        "verify" => token_verify(case),
        other => Err(format!("unknown variant {other:?}")),
    }
}

// ---------------------------------------------------------------------------
// hpke_seal

/// The deterministic ephemeral-key source of the vectors: the ChaCha20 keystream with
/// key = seed, nonce 0, counter 0 (what rand_chacha's `ChaCha20Rng::from_seed` yields).
/// Only ever fed with vector seeds; it is not a CSPRNG for real use.
struct VectorRng(chacha20::ChaCha20);

impl VectorRng {
    fn from_seed(seed: [u8; 32]) -> Self {
        VectorRng(chacha20::ChaCha20::new(&seed.into(), &[0u8; 12].into()))
    }
}

impl rand_core::RngCore for VectorRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
        self.0.apply_keystream(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for VectorRng {}

fn aad_of(case: &Json) -> Result<AadFields, String> {
    Ok(AadFields {
        zone_id: json::text(case, "zone_id")?.to_owned(),
        recipient_node_id: json::text(case, "recipient_node_id")?.to_owned(),
        purpose: json::text(case, "purpose")?.parse().map_err(|e: hpke::HpkeError| e.to_string())?,
        issued_at: json::uint(case, "issued_at")?,
    })
}

fn hpke_seal_case(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let sk = X25519SecretKey::from(json::array::<32>(case, "recipient_sk")?);
    let seed = json::array::<32>(case, "rng_seed")?;
    let aad = aad_of(case)?;
    let mut ikm_e = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut VectorRng::from_seed(seed), &mut ikm_e);
    let plaintext = json::bytes(case, "plaintext")?;
    let sealed = hpke::seal(&mut VectorRng::from_seed(seed), &hpke::public_key(&sk), &plaintext, &aad)
        .map_err(|e| format!("seal: {e}"))?;
    check_hex(exp, "recipient_pk", hpke::public_key(&sk).as_bytes())?;
    check_hex(exp, "ikm_e", &ikm_e)?;
    check_hex(exp, "aad", &aad.encode())?;
    check_hex(exp, "enc", &sealed.enc)?;
    check_hex(exp, "ciphertext", &sealed.ciphertext)?;
    let opened = hpke::open(&sk, &sealed, &aad).map_err(|e| format!("own box: {}", e.code()))?;
    if opened.as_slice() != plaintext.as_slice() {
        return Err("own box opens to other bytes".into());
    }
    Ok(())
}

fn hpke_open_case(case: &Json) -> Result<(), String> {
    let exp = json::expected(case)?;
    let sk = X25519SecretKey::from(json::array::<32>(case, "recipient_sk")?);
    let sealed = HpkeSealedBox { enc: json::bytes(case, "enc")?, ciphertext: json::bytes(case, "ciphertext")? };
    match hpke::open(&sk, &sealed, &aad_of(case)?) {
        Ok(pt) => {
            json::check_error(exp, Ok(()))?;
            check_hex(exp, "plaintext", &pt)
        }
        Err(e) => json::check_error(exp, Err(e.code())),
    }
}

pub(super) fn hpke_seal(case: &Json) -> Result<(), String> {
    match json::text(case, "variant")? {
        "seal" => hpke_seal_case(case),
        "aad" => check_hex(json::expected(case)?, "aad", &aad_of(case)?.encode()),
        "open" => hpke_open_case(case),
        other => Err(format!("unknown variant {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore as _, SeedableRng};

    #[test]
    fn vector_rng_is_rand_chacha_stream() {
        for seed in [[0u8; 32], [0xaa; 32], [0x5c; 32]] {
            let mut ours = VectorRng::from_seed(seed);
            let mut theirs = rand_chacha::ChaCha20Rng::from_seed(seed);
            let (mut a, mut b) = ([0u8; 200], [0u8; 200]);
            rand_core::RngCore::fill_bytes(&mut ours, &mut a);
            theirs.fill_bytes(&mut b);
            assert_eq!(a, b);
        }
    }
}
