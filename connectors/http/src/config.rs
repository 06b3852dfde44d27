//! The operator's config and the HTTP client built from it.
//!
//! Config (`configure` params), unknown keys refused:
//! `{"allow_hosts": [...], "allow_plain_http": false, "max_response_bytes": 32768, "timeout_ms": 30000,
//! "credential_id": "..."}`. Everything is optional; no `allow_hosts` allows nothing.
//! `credential_id` names a credential the host holds (host-protocol.md §7): every https
//! request carries it as `X-FCP-Credential-ID`, and fcpd's egress proxy swaps in the
//! real credential; the connector never has it.
//!
//! Environment (set by fcpd; the egress issue points them at its proxy): `HTTPS_PROXY`
//! (or `https_proxy`) routes every request, plain http too, through that proxy
//! (`NO_PROXY` is not honoured: nothing bypasses it);
//! `SSL_CERT_FILE` names a PEM bundle that *replaces* the bundled Mozilla roots, as it
//! does for OpenSSL. A value that cannot be used fails `configure` rather than letting
//! requests go out directly or unverified.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fcp_sdk::{ErrorCode, FcpError};
use serde::Deserialize;
use serde_json::{Map, Value};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Proxy};

use crate::allow::{AllowList, RuleError};

/// The default and the largest `max_response_bytes`: what fits the 64 KiB frame
/// (spec/host-protocol.md §2) with the status, headers and envelope.
pub(crate) const MAX_RESPONSE_BYTES: u64 = 32 * 1024;
/// The default `timeout_ms`, for the whole call from connect to the last body byte.
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// The largest `timeout_ms`: the manifest's `total_timeout_ms`.
pub(crate) const MAX_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigInput {
    #[serde(default)]
    allow_hosts: Vec<String>,
    #[serde(default)]
    allow_plain_http: bool,
    max_response_bytes: Option<u64>,
    timeout_ms: Option<u64>,
    credential_id: Option<String>,
}

/// What the connector reads from its environment at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Env {
    /// `HTTPS_PROXY`, else `https_proxy`; empty counts as unset.
    pub(crate) https_proxy: Option<String>,
    /// `SSL_CERT_FILE`; empty counts as unset.
    pub(crate) ssl_cert_file: Option<PathBuf>,
}

impl Env {
    /// Reads this process's environment.
    pub(crate) fn from_process() -> Env {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Env {
            https_proxy: var("HTTPS_PROXY").or_else(|| var("https_proxy")).map(|v| v.to_string_lossy().into_owned()),
            ssl_cert_file: var("SSL_CERT_FILE").map(PathBuf::from),
        }
    }
}

/// A configured client.
#[derive(Debug)]
pub(crate) struct Client {
    /// Hosts that may be fetched.
    pub(crate) allow: AllowList,
    /// Whether `http://` URLs are accepted.
    pub(crate) allow_plain_http: bool,
    /// Body bytes kept per response.
    pub(crate) max_response_bytes: usize,
    /// The HTTP agent: no redirects followed, statuses returned as data.
    pub(crate) agent: Agent,
    /// The host-held credential to name on https requests.
    pub(crate) credential_id: Option<String>,
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// Not the shape above.
    #[error(
        "fcp.http config takes {{\"allow_hosts\"?: [host], \"allow_plain_http\"?: bool, \"max_response_bytes\"?: integer, \"timeout_ms\"?: integer, \"credential_id\"?: string}}"
    )]
    Parse(#[source] serde_json::Error),
    /// A bad `allow_hosts` entry.
    #[error("fcp.http config")]
    AllowHosts(#[source] RuleError),
    /// `max_response_bytes` outside 1..=[`MAX_RESPONSE_BYTES`].
    #[error("fcp.http config: max_response_bytes must be 1 to {MAX_RESPONSE_BYTES}")]
    MaxResponseBytes,
    /// `credential_id` is empty or cannot be a header value.
    #[error("fcp.http config: credential_id must be 1 to 128 of A-Z a-z 0-9 . _ -")]
    CredentialId,
    /// `timeout_ms` outside 1..=[`MAX_TIMEOUT_MS`].
    #[error("fcp.http config: timeout_ms must be 1 to {MAX_TIMEOUT_MS}")]
    Timeout,
    /// `HTTPS_PROXY` is not a proxy URL.
    #[error("HTTPS_PROXY is not a usable proxy URL")]
    Proxy(#[source] ureq::Error),
    /// `SSL_CERT_FILE` cannot be read.
    #[error("read SSL_CERT_FILE {0:?}")]
    ReadCertFile(PathBuf, #[source] std::io::Error),
    /// `SSL_CERT_FILE` is not PEM.
    #[error("SSL_CERT_FILE {0:?} is not a PEM file")]
    ParseCertFile(PathBuf, #[source] ureq::Error),
    /// `SSL_CERT_FILE` holds no certificate.
    #[error("SSL_CERT_FILE {0:?} holds no certificate")]
    NoCertificates(PathBuf),
}

/// A config error is the operator's: `InvalidRequest` with code 1001 ("bad config"), its
/// cause in the message.
impl From<ConfigError> for FcpError {
    fn from(e: ConfigError) -> FcpError {
        let message = match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        };
        FcpError::InvalidRequest { code: ErrorCode::INVALID_JSON, message }
    }
}

/// Builds the client `config` and `env` describe.
pub(crate) fn configure(config: &Map<String, Value>, env: &Env) -> Result<Client, ConfigError> {
    let input: ConfigInput = serde_json::from_value(Value::Object(config.clone())).map_err(ConfigError::Parse)?;
    let allow = AllowList::parse(&input.allow_hosts).map_err(ConfigError::AllowHosts)?;
    let max_response_bytes = input.max_response_bytes.unwrap_or(MAX_RESPONSE_BYTES);
    if !(1..=MAX_RESPONSE_BYTES).contains(&max_response_bytes) {
        return Err(ConfigError::MaxResponseBytes);
    }
    if let Some(id) = &input.credential_id {
        let ok = (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !ok {
            return Err(ConfigError::CredentialId);
        }
    }
    let timeout_ms = input.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ConfigError::Timeout);
    }
    let proxy = env.https_proxy.as_deref().map(Proxy::new).transpose().map_err(ConfigError::Proxy)?;
    let mut tls = TlsConfig::builder();
    if let Some(path) = &env.ssl_cert_file {
        tls = tls.root_certs(RootCerts::new_with_certs(&read_roots(path)?));
    }
    let agent_config = Agent::config_builder()
        .proxy(proxy)
        .tls_config(tls.build())
        .https_only(!input.allow_plain_http)
        // A status is data for the caller, not an error of ours.
        .http_status_as_error(false)
        // A redirect could lead to a host the allow list refuses: return the 3xx and let
        // the caller ask for the Location, which is checked like any URL.
        .max_redirects(0)
        .timeout_global(Some(Duration::from_millis(timeout_ms)))
        .user_agent(concat!("fcp.http/", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(Client {
        allow,
        allow_plain_http: input.allow_plain_http,
        max_response_bytes: usize::try_from(max_response_bytes).unwrap_or(usize::MAX),
        agent: Agent::new_with_config(agent_config),
        credential_id: input.credential_id,
    })
}

/// The certificates of a PEM bundle; other PEM items (keys) are ignored.
fn read_roots(path: &Path) -> Result<Vec<Certificate<'static>>, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| ConfigError::ReadCertFile(path.to_owned(), e))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => return Err(ConfigError::ParseCertFile(path.to_owned(), e)),
        }
    }
    if certs.is_empty() {
        return Err(ConfigError::NoCertificates(path.to_owned()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn defaults_allow_nothing() {
        let client = configure(&Map::new(), &Env::default()).expect("empty config");
        assert!(client.allow.is_empty());
        assert!(!client.allow_plain_http);
        assert_eq!(client.max_response_bytes, MAX_RESPONSE_BYTES as usize);
        assert_eq!(client.agent.config().max_redirects(), 0);
        assert!(client.agent.config().https_only());
        assert!(!client.agent.config().http_status_as_error());
        assert!(client.agent.config().proxy().is_none(), "the process environment is not read here");
    }

    #[test]
    fn bad_configs_are_refused() {
        let env = Env::default();
        let refused = |v: Value| configure(&config(v), &env).map(drop).expect_err("refused");
        assert!(matches!(refused(json!({"allow_host": ["a.example"]})), ConfigError::Parse(_)));
        assert!(matches!(refused(json!({"allow_hosts": "a.example"})), ConfigError::Parse(_)));
        assert!(matches!(refused(json!({"allow_hosts": ["https://a.example"]})), ConfigError::AllowHosts(_)));
        assert!(matches!(refused(json!({"max_response_bytes": 0})), ConfigError::MaxResponseBytes));
        assert!(matches!(refused(json!({"max_response_bytes": 32769})), ConfigError::MaxResponseBytes));
        assert!(matches!(refused(json!({"timeout_ms": 60001})), ConfigError::Timeout));
        let e = FcpError::from(refused(json!({"allow_hosts": [""]})));
        assert_eq!(e.code(), ErrorCode::INVALID_JSON);
        assert_eq!(e.to_string(), "Invalid request: fcp.http config: empty allow_hosts entry");
    }

    #[test]
    fn the_proxy_comes_from_the_environment() {
        let env = Env { https_proxy: Some("http://127.0.0.1:3128".into()), ssl_cert_file: None };
        let client = configure(&Map::new(), &env).expect("proxy");
        let proxy = client.agent.config().proxy().expect("a proxy");
        assert_eq!((proxy.host(), proxy.port()), ("127.0.0.1", 3128));
        let env = Env { https_proxy: Some("not a proxy url at all".into()), ssl_cert_file: None };
        assert!(matches!(configure(&Map::new(), &env), Err(ConfigError::Proxy(_))));
    }

    #[test]
    fn ssl_cert_file_replaces_the_roots_or_fails_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bundle = dir.path().join("ca.pem");
        // Any DER inside a CERTIFICATE block; rustls parses it when connecting.
        std::fs::write(&bundle, "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n").expect("write");
        let env = Env { https_proxy: None, ssl_cert_file: Some(bundle) };
        let client = configure(&Map::new(), &env).expect("a bundle");
        assert!(matches!(client.agent.config().tls_config().root_certs(), RootCerts::Specific(c) if c.len() == 1));

        let missing = Env { https_proxy: None, ssl_cert_file: Some(dir.path().join("missing.pem")) };
        assert!(matches!(configure(&Map::new(), &missing), Err(ConfigError::ReadCertFile(..))));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").expect("write");
        let empty = Env { https_proxy: None, ssl_cert_file: Some(empty) };
        assert!(matches!(configure(&Map::new(), &empty), Err(ConfigError::NoCertificates(_))));
    }
}
