//! [`Upstream`]: how the proxy verifies the real server, and the connection to it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fcp_policy::egress::DnsName;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{provider, MitmError};

/// How the proxy verifies upstream servers: a root store (the webpki roots by default, or
/// an owner-configured CA) and optional SPKI pins. Built once, shared by connections.
#[derive(Clone)]
pub struct Upstream {
    config: Arc<ClientConfig>,
    pins: Arc<[[u8; 32]]>,
    roots: Arc<RootCertStore>,
}

impl Upstream {
    /// Verify against the Mozilla roots bundled in `webpki-roots`, without pins.
    pub fn webpki() -> Result<Upstream, MitmError> {
        let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        Upstream::new(Arc::new(roots), Vec::new())
    }

    /// Verify against the CA certificates of a PEM file (an owner-configured CA), with
    /// `spki_pins`. A file with no certificate fails as an empty root store.
    pub fn from_pem(pem: &[u8], spki_pins: Vec<[u8; 32]>) -> Result<Upstream, MitmError> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert =
                cert.map_err(|e| MitmError::TlsConfig { source: rustls::Error::General(format!("PEM: {e}")) })?;
            roots.add(cert).map_err(|source| MitmError::TlsConfig { source })?;
        }
        Upstream::new(Arc::new(roots), spki_pins)
    }

    /// Verify chains to `roots` and the name the connector asked for; when `spki_pins` is
    /// not empty, the end-entity certificate's SubjectPublicKeyInfo must also hash
    /// (SHA-256 over its DER, the HPKP `pin-sha256` value) to one of them. Only the leaf is
    /// compared: intermediates the server sends are not part of what was verified unless
    /// they chain, and anyone can append a public certificate to a chain.
    pub fn new(roots: Arc<RootCertStore>, spki_pins: Vec<[u8; 32]>) -> Result<Upstream, MitmError> {
        let provider = provider();
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), provider.clone())
            .build()
            .map_err(|source| MitmError::UpstreamVerifier { source })?;
        let pins: Arc<[[u8; 32]]> = spki_pins.into();
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| MitmError::TlsConfig { source })?;
        let mut config = if pins.is_empty() {
            builder.with_webpki_verifier(webpki).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinningVerifier { webpki, pins: pins.clone() }))
                .with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Upstream { config: Arc::new(config), pins, roots })
    }

    /// The same roots with `spki_pins` instead of this one's pins (an operation's
    /// `network_constraints.spki_pins`).
    pub fn with_pins(&self, spki_pins: Vec<[u8; 32]>) -> Result<Upstream, MitmError> {
        Upstream::new(Arc::clone(&self.roots), spki_pins)
    }

    /// The SHA-256 of a certificate's SubjectPublicKeyInfo (DER, with its outer
    /// `SEQUENCE`): the value to pin. `None` when the certificate does not parse.
    pub fn spki_sha256(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
        let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
        Some(Sha256::digest(parsed.subject_public_key_info().as_ref()).into())
    }

    /// TCP to `addr` (TCP_NODELAY), then TLS with SNI `name`, verified; both within
    /// `timeout`.
    pub(crate) async fn connect(
        &self,
        addr: SocketAddr,
        name: &DnsName,
        timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, MitmError> {
        let server_name = ServerName::try_from(name.as_str().to_owned())
            .map_err(|_| MitmError::ServerNameIsIp { name: name.to_string() })?;
        let connecting = async {
            let tcp = TcpStream::connect(addr).await.map_err(|source| MitmError::UpstreamConnect { addr, source })?;
            tcp.set_nodelay(true).map_err(|source| MitmError::UpstreamConnect { addr, source })?;
            TlsConnector::from(self.config.clone())
                .connect(server_name, tcp)
                .await
                .map_err(|e| classify_tls_error(name, e))
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(MitmError::UpstreamConnectTimeout { addr, after: timeout }),
        }
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream").field("spki_pins", &self.pins.len()).finish_non_exhaustive()
    }
}

/// A certificate that verified but whose key is not pinned.
#[derive(Debug, thiserror::Error)]
#[error("SPKI SHA-256 {spki_sha256} matches no pin")]
struct SpkiPinMismatch {
    spki_sha256: String,
}

/// The webpki verifier, then the pin check on the end-entity certificate.
#[derive(Debug)]
struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pins: Arc<[[u8; 32]]>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let spki = Upstream::spki_sha256(end_entity)
            .ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if self.pins.contains(&spki) {
            return Ok(verified);
        }
        let mismatch = SpkiPinMismatch { spki_sha256: spki.iter().map(|b| format!("{b:02x}")).collect() };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(mismatch)))))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Sorts a failed upstream handshake into certificate, pin and other TLS errors.
fn classify_tls_error(name: &DnsName, error: io::Error) -> MitmError {
    let tls = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).cloned();
    match tls {
        Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(other)))) => {
            match other.downcast_ref::<SpkiPinMismatch>() {
                Some(mismatch) => {
                    MitmError::UpstreamPinMismatch { name: name.to_string(), spki_sha256: mismatch.spki_sha256.clone() }
                }
                None => MitmError::UpstreamCertificate {
                    name: name.to_string(),
                    source: rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(other))),
                },
            }
        }
        Some(source @ rustls::Error::InvalidCertificate(_)) => {
            MitmError::UpstreamCertificate { name: name.to_string(), source }
        }
        _ => MitmError::UpstreamTls { name: name.to_string(), source: error },
    }
}
