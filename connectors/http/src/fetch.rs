//! One request: input checked, URL allowed, sent, and the response cut to fit the 64 KiB
//! frame (spec/host-protocol.md §2).

use std::collections::BTreeMap;
use std::io::Read;

use fcp_sdk::{ErrorCode, FcpError};
use serde::Deserialize;
use serde_json::{json, Value};
use ureq::http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::allow::{Target, UrlRejection};
use crate::config::Client;

/// The header that names a host-held credential (host-protocol.md §7).
const CREDENTIAL_ID_HEADER: &str = "x-fcp-credential-id";

/// The most request headers one call may set.
pub(crate) const MAX_REQUEST_HEADERS: usize = 64;
/// JSON bytes of response headers kept; the rest are dropped (`headers_truncated`).
pub(crate) const HEADER_BUDGET: usize = 8 * 1024;
/// JSON bytes of body text kept; `max_response_bytes` is also in force.
pub(crate) const BODY_BUDGET: usize = 40 * 1024;

/// Headers the caller may not set: framing and connection management belong to the
/// client, `host` must be the URL's (it is what the allow list checked), and proxy
/// headers belong to the egress proxy, as does the credential id (the operator's config
/// names the credential, not the caller).
const FORBIDDEN_HEADERS: &[&str] = &[
    CREDENTIAL_ID_HEADER,
    "connection",
    "content-length",
    "expect",
    "host",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `http.get` and `http.post` input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestInput {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
}

/// A failed `http.*` operation, one variant per failed step.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// The input is not what the operation takes.
    #[error("{0}")]
    BadInput(String),
    /// The URL was refused before the allow list.
    #[error("url {url:?}: {reason}")]
    BadUrl {
        /// As sent (cut to 200 bytes).
        url: String,
        /// Why.
        reason: UrlRejection,
    },
    /// No `allow_hosts` entry allows this host and port.
    #[error("{service} is not in allow_hosts")]
    HostNotAllowed {
        /// `host` or `host:port`.
        service: String,
    },
    /// A header the caller may not set, or not a valid header.
    #[error("header {name:?}: {reason}")]
    BadHeader {
        /// The name as sent.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The whole call took longer than `timeout_ms`.
    #[error("{service} did not answer in time")]
    Timeout {
        /// The host.
        service: String,
    },
    /// Connecting, TLS or the exchange failed.
    #[error("request to {service} failed")]
    Transport {
        /// The host.
        service: String,
        /// The cause.
        #[source]
        source: ureq::Error,
    },
    /// Reading the body failed.
    #[error("reading the response of {service} failed")]
    ReadBody {
        /// The host.
        service: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Bad input is `InvalidRequest` (1003); a host outside the allow list is
/// `ResourceNotAllowed` (3004); a timeout `UpstreamTimeout` (7002); other failures of the
/// far side `External` (7003), retryable when the connection failed or broke.
impl From<HttpError> for FcpError {
    fn from(e: HttpError) -> FcpError {
        let message = match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        };
        match e {
            HttpError::BadInput(_) | HttpError::BadUrl { .. } | HttpError::BadHeader { .. } => {
                FcpError::InvalidRequest { code: ErrorCode::INVALID_PARAMS, message }
            }
            HttpError::HostNotAllowed { .. } => FcpError::ResourceNotAllowed { resource: message },
            HttpError::Timeout { service } => FcpError::UpstreamTimeout { service },
            HttpError::Transport { service, source } => {
                let retryable =
                    matches!(source, ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound);
                FcpError::External { service, message, status_code: None, retryable, retry_after: None }
            }
            HttpError::ReadBody { service, .. } => {
                FcpError::External { service, message, status_code: None, retryable: true, retry_after: None }
            }
        }
    }
}

/// A request that passed every check and may be sent.
#[derive(Debug)]
pub(crate) struct Checked {
    method: Method,
    target: Target,
    headers: HeaderMap,
    body: Option<String>,
}

impl Checked {
    /// Where it goes, for messages.
    pub(crate) fn service(&self) -> String {
        self.target.service()
    }
}

/// Checks `input` for `method` against `client`'s rules, without any I/O.
pub(crate) fn check(client: &Client, method: Method, input: Value) -> Result<Checked, HttpError> {
    let operation = if method == Method::POST { "http.post" } else { "http.get" };
    let input: RequestInput =
        serde_json::from_value(input).map_err(|e| HttpError::BadInput(format!("{operation} input: {e}")))?;
    if method == Method::GET && input.body.is_some() {
        return Err(HttpError::BadInput("http.get takes no body; use http.post".into()));
    }
    let target = Target::parse(&input.url, client.allow_plain_http)
        .map_err(|reason| HttpError::BadUrl { url: input.url.chars().take(200).collect(), reason })?;
    if !client.allow.allows(&target) {
        return Err(HttpError::HostNotAllowed { service: target.service() });
    }
    if input.headers.len() > MAX_REQUEST_HEADERS {
        return Err(HttpError::BadInput(format!("at most {MAX_REQUEST_HEADERS} headers")));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in input.headers {
        let bad = |reason| HttpError::BadHeader { name: name.clone(), reason };
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("not a header name"))?;
        if FORBIDDEN_HEADERS.contains(&header.as_str()) {
            return Err(bad("set by the connector, not the caller"));
        }
        let value = HeaderValue::from_str(&value).map_err(|_| bad("not a valid header value"))?;
        headers.append(header, value);
    }
    Ok(Checked { method, target, headers, body: input.body })
}

/// Sends `request` and returns `{status, headers, body, truncated, headers_truncated}`.
pub(crate) fn send(client: &Client, request: Checked) -> Result<Value, HttpError> {
    let service = request.service();
    let transport = |source| match source {
        ureq::Error::Timeout(_) => HttpError::Timeout { service: service.clone() },
        source => HttpError::Transport { service: service.clone(), source },
    };
    let uri = request.target.uri;
    // The credential's id, never a secret, and only where the proxy intercepts (TLS).
    let credential = client.credential_id.as_deref().filter(|_| uri.scheme_str() == Some("https"));
    let mut response = if request.method == Method::POST {
        let mut builder = client.agent.post(uri);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(id) = credential {
            builder = builder.header(CREDENTIAL_ID_HEADER, id);
        }
        builder.send(request.body.unwrap_or_default().as_bytes()).map_err(transport)?
    } else {
        let mut builder = client.agent.get(uri);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(id) = credential {
            builder = builder.header(CREDENTIAL_ID_HEADER, id);
        }
        builder.call().map_err(transport)?
    };
    let status = response.status().as_u16();
    let (headers, headers_truncated) = header_json(response.headers());
    // Read one byte more than is kept, to know whether there was more.
    let limit = client.max_response_bytes;
    let mut bytes = Vec::with_capacity(limit.min(64 * 1024) + 1);
    response
        .body_mut()
        .as_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| HttpError::ReadBody { service: service.clone(), source })?;
    let over_limit = bytes.len() > limit;
    bytes.truncate(limit);
    let (body, cut) = body_text(&bytes, BODY_BUDGET);
    Ok(json!({
        "status": status,
        "headers": headers,
        "body": body,
        "truncated": over_limit || cut,
        "headers_truncated": headers_truncated,
    }))
}

/// Response headers as `{name: value}`, repeated names joined with `", "`, within
/// [`HEADER_BUDGET`]; and whether any were dropped.
fn header_json(headers: &HeaderMap) -> (BTreeMap<String, String>, bool) {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut used = 0;
    let mut dropped = false;
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        let cost = name.as_str().len() + value.len() + 8;
        if used + cost > HEADER_BUDGET {
            dropped = true;
            continue;
        }
        used += cost;
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    (out, dropped)
}

/// The body as text: UTF-8, with invalid bytes replaced (U+FFFD); a character cut by the
/// byte limit is dropped; cut again where the escaped JSON passes `budget`. Returns the
/// text and whether it was cut.
fn body_text(bytes: &[u8], budget: usize) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        };
        if used > budget {
            return (text.get(..i).unwrap_or_default().to_owned(), true);
        }
    }
    (text.into_owned(), false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{configure, Env};
    use serde_json::Map;

    fn client(allow: &[&str], plain: bool) -> Client {
        let config = json!({"allow_hosts": allow, "allow_plain_http": plain});
        let Value::Object(config) = config else { panic!("object") };
        configure(&config, &Env::default()).expect("config")
    }

    #[test]
    fn unlisted_hosts_are_refused_before_any_connection() {
        let empty = configure(&Map::new(), &Env::default()).expect("config");
        let e = check(&empty, Method::GET, json!({"url": "https://api.github.com/"})).expect_err("refused");
        assert!(matches!(&e, HttpError::HostNotAllowed { service } if service == "api.github.com"));
        assert_eq!(
            FcpError::from(e),
            FcpError::ResourceNotAllowed { resource: "api.github.com is not in allow_hosts".into() }
        );
        let github = client(&["api.github.com"], false);
        let ok = check(&github, Method::GET, json!({"url": "https://api.github.com/zen"})).expect("allowed");
        assert_eq!(ok.service(), "api.github.com");
        let e = check(&github, Method::GET, json!({"url": "https://api.github.com:444/"})).expect_err("refused");
        assert!(matches!(e, HttpError::HostNotAllowed { service } if service == "api.github.com:444"));
        let e = check(&github, Method::GET, json!({"url": "http://api.github.com/"})).expect_err("plain http");
        assert!(matches!(e, HttpError::BadUrl { reason: UrlRejection::Scheme(_), .. }));
    }

    #[test]
    fn inputs_and_headers_are_checked() {
        let c = client(&["example.com"], false);
        let url = "https://example.com/";
        let code = |m: Method, v: Value| FcpError::from(check(&c, m, v).expect_err("refused")).code();
        assert_eq!(code(Method::GET, json!({"url": url, "body": "x"})), ErrorCode::INVALID_PARAMS);
        assert_eq!(code(Method::GET, json!({"url": url, "method": "DELETE"})), ErrorCode::INVALID_PARAMS);
        assert_eq!(code(Method::GET, json!({"headers": {}})), ErrorCode::INVALID_PARAMS);
        for forbidden in ["Host", "content-length", "Transfer-Encoding", "Proxy-Authorization"] {
            let e = check(&c, Method::GET, json!({"url": url, "headers": {forbidden: "x"}})).expect_err("refused");
            assert!(matches!(e, HttpError::BadHeader { reason: "set by the connector, not the caller", .. }));
        }
        let e = check(&c, Method::GET, json!({"url": url, "headers": {"x-a": "line\nbreak"}})).expect_err("refused");
        assert!(matches!(e, HttpError::BadHeader { reason: "not a valid header value", .. }));
        let e = check(&c, Method::GET, json!({"url": url, "headers": {"bad name": "v"}})).expect_err("refused");
        assert!(matches!(e, HttpError::BadHeader { reason: "not a header name", .. }));
        let many: Map<String, Value> = (0..=MAX_REQUEST_HEADERS).map(|i| (format!("x-{i}"), json!("v"))).collect();
        assert_eq!(code(Method::GET, json!({"url": url, "headers": many})), ErrorCode::INVALID_PARAMS);
        let ok = check(&c, Method::POST, json!({"url": url, "headers": {"Authorization": "Bearer t"}, "body": "{}"}))
            .expect("allowed");
        assert_eq!(ok.headers.get("authorization").map(HeaderValue::as_bytes), Some(&b"Bearer t"[..]));
    }

    #[test]
    fn failures_map_to_the_taxonomy() {
        let timeout = HttpError::Timeout { service: "a.example".into() };
        assert_eq!(FcpError::from(timeout).code(), ErrorCode::UPSTREAM_TIMEOUT);
        let refused = HttpError::Transport { service: "a.example".into(), source: ureq::Error::ConnectionFailed };
        let e = FcpError::from(refused);
        assert_eq!((e.code(), e.retryable()), (ErrorCode::DEPENDENCY_UNAVAILABLE, true));
        let tls = HttpError::Transport { service: "a.example".into(), source: ureq::Error::Tls("bad certificate") };
        assert!(!FcpError::from(tls).retryable());
    }

    #[test]
    fn bodies_and_headers_fit_their_budgets() {
        assert_eq!(body_text(b"plain", 100), ("plain".to_owned(), false));
        assert_eq!(body_text(b"a\xffb", 100), ("a\u{fffd}b".to_owned(), false));
        assert_eq!(body_text(b"\x01\x01\x01", 13), ("\x01\x01".to_owned(), true));
        let mut headers = HeaderMap::new();
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        let (json, dropped) = header_json(&headers);
        assert_eq!((json.get("set-cookie").map(String::as_str), dropped), (Some("a=1, b=2"), false));
        let mut big = HeaderMap::new();
        let long = HeaderValue::from_str(&"v".repeat(5000)).expect("value");
        big.append("x-one", long.clone());
        big.append("x-two", long);
        let (json, dropped) = header_json(&big);
        assert_eq!((json.len(), dropped), (1, true));
    }
}
