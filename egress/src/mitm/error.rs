//! [`MitmError`]: one variant per failed step, each blamed on the connector, the upstream
//! or fcpd itself.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use fcp_policy::egress::HostError;

/// Who caused a [`MitmError`] (house style §3.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Blame {
    /// The connector: its TLS, its HTTP, or the way it used the connection.
    Connector,
    /// The upstream server: unreachable, a certificate that does not verify, a response
    /// over a limit.
    Upstream,
    /// fcpd: its configuration (a credential that cannot be sent, a name the CA may not
    /// sign) or a limit it set running out.
    Local,
}

/// Why an interception failed. Request-level refusals (an unknown credential id, a Host
/// header for another name, …) are not errors: they are answered to the connector and
/// reported as [`MitmEvent`](super::MitmEvent)s, and the connection goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MitmError {
    /// rcgen could not build the jail CA.
    #[error("generate the jail CA")]
    GenerateCa {
        /// What rcgen reported.
        #[source]
        source: rcgen::Error,
    },
    /// rcgen could not issue a leaf certificate.
    #[error("issue a leaf certificate for {name}")]
    IssueLeaf {
        /// The name the leaf was for.
        name: String,
        /// What rcgen reported.
        #[source]
        source: rcgen::Error,
    },
    /// The jail CA has expired; fcpd must give the jail a new one.
    #[error("the jail CA {label:?} has expired")]
    CaExpired {
        /// The CA's label.
        label: String,
    },
    /// The name is outside the jail CA's name constraints.
    #[error("{name} is outside the name constraints of the jail CA")]
    NameNotPermitted {
        /// The canonical name.
        name: String,
    },
    /// A server name is not a valid host.
    #[error("server name {name:?} is invalid")]
    InvalidServerName {
        /// The name as given.
        name: String,
        /// Why `parse_host` rejected it.
        #[source]
        source: HostError,
    },
    /// A server name is an IP address: interception (and so credential injection) needs a
    /// DNS name the leaf can carry and the connector can verify.
    #[error("server name {name:?} is an IP address, not a DNS name")]
    ServerNameIsIp {
        /// The name as given.
        name: String,
    },
    /// A host pattern of a credential or of the CA's constraints is neither a DNS name nor
    /// `*.` followed by one.
    #[error("host pattern {pattern:?} is neither a DNS name nor `*.` and a DNS name")]
    HostPattern {
        /// The pattern as given.
        pattern: String,
    },
    /// A credential's secret (or user name, or placeholder) cannot be sent in an HTTP
    /// header: empty, or holding a byte outside visible ASCII and space.
    #[error("credential {id:?} has a value that cannot be sent in an HTTP header")]
    CredentialValue {
        /// The credential id.
        id: String,
    },
    /// A credential names a header it may not set (invalid, or one the proxy owns such as
    /// `Host`, `Content-Length` or `X-FCP-Credential-ID`).
    #[error("credential {id:?} names header {name:?}, which a credential may not set")]
    CredentialHeaderName {
        /// The credential id.
        id: String,
        /// The header name as given.
        name: String,
    },
    /// A credential is bound to no host at all.
    #[error("credential {id:?} is bound to no host")]
    CredentialUnbound {
        /// The credential id.
        id: String,
    },
    /// Two credentials in one set share an id.
    #[error("credential id {id:?} appears twice")]
    DuplicateCredential {
        /// The id.
        id: String,
    },
    /// The default credential of a set is not one of its credentials.
    #[error("default credential {id:?} is not in the set")]
    UnknownDefault {
        /// The id.
        id: String,
    },
    /// rustls rejected a configuration fcpd built (protocol versions, the leaf key).
    #[error("build a TLS configuration")]
    TlsConfig {
        /// What rustls reported.
        #[source]
        source: rustls::Error,
    },
    /// The upstream root store cannot make a verifier (for example, it is empty).
    #[error("build the upstream certificate verifier")]
    UpstreamVerifier {
        /// What rustls reported.
        #[source]
        source: rustls::client::VerifierBuilderError,
    },
    /// The connector's TLS handshake failed (it may have refused our leaf).
    #[error("TLS handshake with the connector")]
    ClientHandshake {
        /// The I/O or TLS error.
        #[source]
        source: io::Error,
    },
    /// The connector did not finish its TLS handshake in time.
    #[error("the connector's TLS handshake took longer than {after:?}")]
    ClientHandshakeTimeout {
        /// The limit.
        after: Duration,
    },
    /// The connector's ClientHello named another server than the one being intercepted.
    #[error("the connector sent SNI {sni:?} on a connection intercepted for {expected}")]
    SniMismatch {
        /// The SNI the connector sent.
        sni: String,
        /// The name being intercepted.
        expected: String,
    },
    /// HTTP/1.1 toward the connector failed: a malformed request, headers over the limit,
    /// a connection cut mid-message.
    #[error("serve HTTP/1.1 to the connector")]
    ServeConnector {
        /// What hyper reported.
        #[source]
        source: hyper::Error,
    },
    /// The TCP connection to the upstream failed.
    #[error("connect to upstream {addr}")]
    UpstreamConnect {
        /// The vetted address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The TCP connection and TLS handshake to the upstream did not finish in time.
    #[error("connecting to upstream {addr} took longer than {after:?}")]
    UpstreamConnectTimeout {
        /// The vetted address.
        addr: SocketAddr,
        /// The limit.
        after: Duration,
    },
    /// The upstream's certificate did not verify against the configured roots and name.
    #[error("upstream certificate for {name} rejected")]
    UpstreamCertificate {
        /// The name it was verified for.
        name: String,
        /// What rustls reported.
        #[source]
        source: rustls::Error,
    },
    /// The upstream's certificate verified, but its key matches none of the SPKI pins.
    #[error("upstream certificate for {name} has SPKI SHA-256 {spki_sha256}, which matches no pin")]
    UpstreamPinMismatch {
        /// The name it was verified for.
        name: String,
        /// The hex SHA-256 of the leaf's SubjectPublicKeyInfo.
        spki_sha256: String,
    },
    /// The TLS session with the upstream failed for another reason than its certificate.
    #[error("TLS with upstream {name}")]
    UpstreamTls {
        /// The upstream name.
        name: String,
        /// The I/O or TLS error.
        #[source]
        source: io::Error,
    },
    /// HTTP/1.1 toward the upstream failed.
    #[error("HTTP/1.1 exchange with the upstream")]
    UpstreamHttp {
        /// What hyper reported.
        #[source]
        source: hyper::Error,
    },
    /// The upstream sent no response head in time.
    #[error("the upstream sent no response within {after:?}")]
    UpstreamResponseTimeout {
        /// The limit.
        after: Duration,
    },
    /// A response body is larger than `max_response_bytes`; the connection was aborted.
    #[error("a response is larger than max_response_bytes ({limit})")]
    ResponseTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The connection outlived `total_timeout` and was cut.
    #[error("the connection outlived its total timeout of {after:?}")]
    TotalTimeout {
        /// The limit.
        after: Duration,
    },
}

impl MitmError {
    /// Who is to blame.
    pub fn blame(&self) -> Blame {
        match self {
            MitmError::ClientHandshake { .. }
            | MitmError::ClientHandshakeTimeout { .. }
            | MitmError::SniMismatch { .. }
            | MitmError::ServeConnector { .. } => Blame::Connector,
            MitmError::UpstreamConnect { .. }
            | MitmError::UpstreamConnectTimeout { .. }
            | MitmError::UpstreamCertificate { .. }
            | MitmError::UpstreamPinMismatch { .. }
            | MitmError::UpstreamTls { .. }
            | MitmError::UpstreamHttp { .. }
            | MitmError::UpstreamResponseTimeout { .. }
            | MitmError::ResponseTooLarge { .. } => Blame::Upstream,
            MitmError::GenerateCa { .. }
            | MitmError::IssueLeaf { .. }
            | MitmError::CaExpired { .. }
            | MitmError::NameNotPermitted { .. }
            | MitmError::InvalidServerName { .. }
            | MitmError::ServerNameIsIp { .. }
            | MitmError::HostPattern { .. }
            | MitmError::CredentialValue { .. }
            | MitmError::CredentialHeaderName { .. }
            | MitmError::CredentialUnbound { .. }
            | MitmError::DuplicateCredential { .. }
            | MitmError::UnknownDefault { .. }
            | MitmError::TlsConfig { .. }
            | MitmError::UpstreamVerifier { .. }
            | MitmError::TotalTimeout { .. } => Blame::Local,
        }
    }

    /// A stable snake_case code for audit records and counters.
    pub fn code(&self) -> &'static str {
        match self {
            MitmError::GenerateCa { .. } => "generate_ca",
            MitmError::IssueLeaf { .. } => "issue_leaf",
            MitmError::CaExpired { .. } => "ca_expired",
            MitmError::NameNotPermitted { .. } => "name_not_permitted",
            MitmError::InvalidServerName { .. } => "server_name_invalid",
            MitmError::ServerNameIsIp { .. } => "server_name_ip",
            MitmError::HostPattern { .. } => "host_pattern_invalid",
            MitmError::CredentialValue { .. } => "credential_value_invalid",
            MitmError::CredentialHeaderName { .. } => "credential_header_invalid",
            MitmError::CredentialUnbound { .. } => "credential_unbound",
            MitmError::DuplicateCredential { .. } => "credential_duplicate",
            MitmError::UnknownDefault { .. } => "credential_default_unknown",
            MitmError::TlsConfig { .. } => "tls_config",
            MitmError::UpstreamVerifier { .. } => "upstream_verifier",
            MitmError::ClientHandshake { .. } => "client_handshake",
            MitmError::ClientHandshakeTimeout { .. } => "client_handshake_timeout",
            MitmError::SniMismatch { .. } => "sni_mismatch",
            MitmError::ServeConnector { .. } => "connector_http",
            MitmError::UpstreamConnect { .. } => "upstream_connect",
            MitmError::UpstreamConnectTimeout { .. } => "upstream_connect_timeout",
            MitmError::UpstreamCertificate { .. } => "upstream_certificate",
            MitmError::UpstreamPinMismatch { .. } => "upstream_pin_mismatch",
            MitmError::UpstreamTls { .. } => "upstream_tls",
            MitmError::UpstreamHttp { .. } => "upstream_http",
            MitmError::UpstreamResponseTimeout { .. } => "upstream_response_timeout",
            MitmError::ResponseTooLarge { .. } => "response_too_large",
            MitmError::TotalTimeout { .. } => "total_timeout",
        }
    }
}
