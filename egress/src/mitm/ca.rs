//! [`JailCa`]: the short-lived certificate authority a jail trusts, and the leaves it
//! issues for the names the proxy intercepts.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use fcp_policy::egress::DnsName;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use zeroize::Zeroize;

use super::credential::HostPattern;
use super::{canonical_name, provider, MitmError};

/// How long a jail CA is valid by default.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);

/// How far back a certificate's `notBefore` is set, for clocks a little behind ours.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Most leaves kept per CA. A jail with wildcard hosts could ask for many names; past this
/// a leaf is issued for each connection and not kept (an ECDSA key and a signature).
pub const MAX_CACHED_LEAVES: usize = 256;

/// How a [`JailCa`] is made.
#[derive(Clone, Debug)]
pub struct CaParams {
    /// Validity from now; leaves never outlive the CA.
    pub validity: Duration,
    /// When not empty, the CA carries an X.509 name constraint permitting only these
    /// names (a `*.name` pattern permits `name` and everything below it, as RFC 5280
    /// subtrees do), and [`JailCa::server_config_for`] refuses any other name. Give the
    /// manifest's `host_allow` names so a leaked CA cannot vouch for anything else to a
    /// client that enforces name constraints (rustls-webpki and OpenSSL do).
    pub permitted: Vec<String>,
}

impl Default for CaParams {
    fn default() -> Self {
        CaParams { validity: DEFAULT_CA_VALIDITY, permitted: Vec::new() }
    }
}

/// A per-jail certificate authority: ECDSA P-256, valid for a day by default. Its private
/// key stays in fcpd's memory: never serialised by this type, absent from `Debug`, and its
/// PKCS#8 copy inside rcgen's `KeyPair` zeroized on drop (ring's own key schedule is
/// not). The jail gets [`ca_pem`](JailCa::ca_pem) as its trust store.
pub struct JailCa {
    label: String,
    /// The CA's parameters, for [`Issuer::from_params`]: its name and key identifier.
    params: CertificateParams,
    key: KeyPair,
    cert: CertificateDer<'static>,
    pem: String,
    not_after: SystemTime,
    permitted: Vec<HostPattern>,
    leaves: Mutex<HashMap<DnsName, Arc<ServerConfig>>>,
}

impl JailCa {
    /// A fresh CA for the jail `label` with [`CaParams::default`] (no name constraints).
    pub fn generate(label: &str) -> Result<JailCa, MitmError> {
        JailCa::generate_with(label, &CaParams::default(), SystemTime::now())
    }

    /// A fresh CA valid from `now` for `params.validity`, optionally name-constrained.
    pub fn generate_with(label: &str, params: &CaParams, now: SystemTime) -> Result<JailCa, MitmError> {
        let permitted = params.permitted.iter().map(|p| HostPattern::parse(p)).collect::<Result<Vec<_>, _>>()?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| MitmError::GenerateCa { source })?;
        let not_after = now + params.validity;
        let mut cert_params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "FCP egress");
        dn.push(DnType::CommonName, format!("FCP jail CA {label}"));
        cert_params.distinguished_name = dn;
        cert_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        cert_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        cert_params.not_before = OffsetDateTime::from(now - BACKDATE);
        cert_params.not_after = OffsetDateTime::from(not_after);
        if !permitted.is_empty() {
            cert_params.name_constraints = Some(NameConstraints {
                permitted_subtrees: permitted.iter().map(|p| GeneralSubtree::DnsName(p.root().to_string())).collect(),
                excluded_subtrees: Vec::new(),
            });
        }
        let cert = cert_params.self_signed(&key).map_err(|source| MitmError::GenerateCa { source })?;
        let pem = cert.pem();
        let cert = cert.der().clone();
        Ok(JailCa {
            label: label.to_owned(),
            params: cert_params,
            key,
            cert,
            pem,
            not_after,
            permitted,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate in PEM, for the jail's trust store (the file `SSL_CERT_FILE`
    /// names). Public.
    pub fn ca_pem(&self) -> String {
        self.pem.clone()
    }

    /// The CA certificate in DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The label the CA was made for.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// When the CA (and every leaf) expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// A rustls server configuration presenting a leaf for exactly `name` (canonicalised
    /// as `parse_host` does), made on first use and kept (up to [`MAX_CACHED_LEAVES`]). It
    /// speaks TLS 1.2 and 1.3 and offers only ALPN `http/1.1`.
    pub fn server_config_for(&self, name: &str) -> Result<Arc<ServerConfig>, MitmError> {
        let name = canonical_name(name)?;
        if let Some(config) = self.leaves.lock().unwrap_or_else(PoisonError::into_inner).get(&name) {
            return Ok(config.clone());
        }
        let config = Arc::new(self.issue(&name, SystemTime::now())?);
        let mut leaves = self.leaves.lock().unwrap_or_else(PoisonError::into_inner);
        if leaves.len() < MAX_CACHED_LEAVES {
            leaves.insert(name, config.clone());
        }
        Ok(config)
    }

    fn issue(&self, name: &DnsName, now: SystemTime) -> Result<ServerConfig, MitmError> {
        if now >= self.not_after {
            return Err(MitmError::CaExpired { label: self.label.clone() });
        }
        if !self.permitted.is_empty() && !self.permitted.iter().any(|p| p.root() == name || p.matches(name)) {
            return Err(MitmError::NameNotPermitted { name: name.to_string() });
        }
        let leaf_error = |source| MitmError::IssueLeaf { name: name.to_string(), source };
        let mut key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(leaf_error)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name.as_str());
        params.distinguished_name = dn;
        let san = name.as_str().to_owned().try_into().map_err(leaf_error)?;
        params.subject_alt_names = vec![SanType::DnsName(san)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = OffsetDateTime::from(now - BACKDATE);
        params.not_after = OffsetDateTime::from(self.not_after);
        let leaf = params.signed_by(&key, &Issuer::from_params(&self.params, &self.key)).map_err(leaf_error)?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        key.zeroize();
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| MitmError::TlsConfig { source })?
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key_der)
            .map_err(|source| MitmError::TlsConfig { source })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl Drop for JailCa {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// Label, expiry, constraints and the certificate's SHA-256; never the key.
impl fmt::Debug for JailCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = Sha256::digest(self.cert.as_ref());
        let fingerprint: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        f.debug_struct("JailCa")
            .field("label", &self.label)
            .field("cert_sha256", &fingerprint)
            .field("not_after", &self.not_after)
            .field("permitted", &self.permitted.iter().map(|p| p.to_string()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
