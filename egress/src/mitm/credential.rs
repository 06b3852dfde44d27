//! Credentials a connector instance may have injected, and which one a request gets.
//!
//! A [`Credential`] is plain data from fcpd's secret store; [`CredentialSet::new`] checks
//! every credential once (host patterns, header names, values that fit in a header) and is
//! the only form [`intercept`](super::intercept) takes. Secrets are
//! [`Zeroizing`](zeroize::Zeroizing) and every `Debug` here prints `<redacted>` for them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use fcp_policy::egress::{parse_host, DnsName, Host};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use zeroize::Zeroizing;

use super::redact::Needles;
use super::MitmError;

/// The request header through which an unmodified connector names its credential
/// (host-protocol.md §7). Header names are case-insensitive; every spelling is stripped.
pub const CREDENTIAL_ID_HEADER: &str = "x-fcp-credential-id";

/// Secrets shorter than this are masked in response headers but not searched for in
/// response bodies, where masking every occurrence of a few common bytes would corrupt
/// them. A bearer token or API key is always longer; a short Basic password is not.
pub const MIN_BODY_SECRET_LEN: usize = 8;

/// Headers a [`Auth::Header`] credential may not name: the proxy owns them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "accept-encoding",
    CREDENTIAL_ID_HEADER,
];

/// How a credential authenticates.
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(Zeroizing<String>),
    /// `Authorization: Basic base64(<user>:<password>)`.
    Basic {
        /// The user name (not secret).
        user: String,
        /// The password.
        password: Zeroizing<String>,
    },
    /// `<name>: <value>`, for APIs that take a key in their own header (`x-api-key`).
    Header {
        /// The header name.
        name: String,
        /// The header value.
        value: Zeroizing<String>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { user, .. } => {
                f.debug_struct("Basic").field("user", user).field("password", &Redacted).finish()
            }
            Auth::Header { name, .. } => {
                f.debug_struct("Header").field("name", name).field("value", &Redacted).finish()
            }
        }
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One credential from fcpd's secret store, as configured for a connector instance.
#[derive(Debug)]
pub struct Credential {
    /// The id the connector sends in `X-FCP-Credential-ID` (host-protocol.md §7).
    pub id: String,
    /// The hosts the credential may be sent to: a DNS name (`api.github.com`) or `*.`
    /// followed by one (`*.googleapis.com` matches every name below it, not the name
    /// itself), the same matching rule as `host_allow` (vectors/README.md §5.18 step 3).
    pub hosts: Vec<String>,
    /// The secret and how to send it.
    pub auth: Auth,
    /// A dummy value the connector was configured with instead of the secret. When a
    /// request carries it in the credential's header (`Authorization: Bearer <placeholder>`,
    /// Basic with it as password, or the named header equal to it), the real value
    /// replaces it. Not secret.
    pub placeholder: Option<String>,
}

/// A host pattern in canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this name.
    Exact(DnsName),
    /// Any name that ends in `.` and this name (`*.example.com` holds `example.com`).
    Below(DnsName),
}

impl HostPattern {
    /// Parses `name` or `*.name`, canonicalising the name as `parse_host` does. IP
    /// addresses are refused: interception needs a DNS name.
    pub fn parse(pattern: &str) -> Result<HostPattern, MitmError> {
        let invalid = || MitmError::HostPattern { pattern: pattern.to_owned() };
        let (below, name) = match pattern.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        match parse_host(name) {
            Ok(Host::Name(name)) if below => Ok(HostPattern::Below(name)),
            Ok(Host::Name(name)) => Ok(HostPattern::Exact(name)),
            Ok(Host::Ip(_)) | Err(_) => Err(invalid()),
        }
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &DnsName) -> bool {
        match self {
            HostPattern::Exact(exact) => exact == name,
            HostPattern::Below(parent) => {
                let (name, parent) = (name.as_str(), parent.as_str());
                name.len() > parent.len() + 1
                    && name.ends_with(parent)
                    && name.as_bytes()[name.len() - parent.len() - 1] == b'.'
            }
        }
    }

    /// The name the pattern is rooted at (for an X.509 name constraint).
    pub fn root(&self) -> &DnsName {
        match self {
            HostPattern::Exact(name) | HostPattern::Below(name) => name,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => write!(f, "{name}"),
            HostPattern::Below(name) => write!(f, "*.{name}"),
        }
    }
}

/// A checked credential.
struct Bound {
    hosts: Vec<HostPattern>,
    header: HeaderName,
    auth: Auth,
    placeholder: Option<String>,
}

impl Bound {
    fn check(credential: Credential) -> Result<(String, Bound), MitmError> {
        let Credential { id, hosts, auth, placeholder } = credential;
        let hosts = hosts.iter().map(|h| HostPattern::parse(h)).collect::<Result<Vec<_>, _>>()?;
        if hosts.is_empty() {
            return Err(MitmError::CredentialUnbound { id });
        }
        let header = match &auth {
            Auth::Bearer(_) | Auth::Basic { .. } => header::AUTHORIZATION,
            Auth::Header { name, .. } => match HeaderName::from_bytes(name.as_bytes()) {
                Ok(header) if !RESERVED_HEADERS.contains(&header.as_str()) => header,
                _ => return Err(MitmError::CredentialHeaderName { id, name: name.clone() }),
            },
        };
        let fits = |s: &str| !s.is_empty() && s.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        let values_fit = match &auth {
            Auth::Bearer(token) => fits(token),
            // The user may be empty (`:token` is common); a colon in it would move the split.
            Auth::Basic { user, password } => (user.is_empty() || fits(user)) && !user.contains(':') && fits(password),
            Auth::Header { value, .. } => fits(value),
        };
        if !values_fit || placeholder.as_deref().is_some_and(|p| !fits(p)) {
            return Err(MitmError::CredentialValue { id });
        }
        Ok((id, Bound { hosts, header, auth, placeholder }))
    }

    fn bound_to(&self, name: &DnsName) -> bool {
        self.hosts.iter().any(|h| h.matches(name))
    }

    /// The header value to send. It ends up in hyper's header map and write buffer, which
    /// are not zeroized; the secret itself lives only in `Zeroizing` storage.
    fn value(&self) -> Option<HeaderValue> {
        let text: Zeroizing<String> = match &self.auth {
            Auth::Bearer(token) => Zeroizing::new(format!("Bearer {}", token.as_str())),
            Auth::Basic { user, password } => {
                let pair = Zeroizing::new(format!("{user}:{}", password.as_str()));
                Zeroizing::new(format!("Basic {}", BASE64.encode(pair.as_bytes())))
            }
            Auth::Header { value, .. } => Zeroizing::new(value.as_str().to_owned()),
        };
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// The byte strings that must not come back: the secret, and for Basic the encoded
    /// pair as well.
    fn needles(&self) -> Vec<Zeroizing<Vec<u8>>> {
        match &self.auth {
            Auth::Bearer(token) => vec![Zeroizing::new(token.as_bytes().to_vec())],
            Auth::Basic { user, password } => {
                let pair = Zeroizing::new(format!("{user}:{}", password.as_str()));
                vec![
                    Zeroizing::new(password.as_bytes().to_vec()),
                    Zeroizing::new(BASE64.encode(pair.as_bytes()).into_bytes()),
                ]
            }
            Auth::Header { value, .. } => vec![Zeroizing::new(value.as_bytes().to_vec())],
        }
    }

    /// Whether the request's value of this credential's header is its placeholder.
    fn placeholder_in(&self, headers: &HeaderMap) -> bool {
        let Some(placeholder) = self.placeholder.as_deref() else {
            return false;
        };
        headers.get_all(&self.header).iter().any(|value| carries_placeholder(value.as_bytes(), placeholder))
    }
}

/// `value` is the placeholder, or `<scheme> <placeholder>`, or Basic with it as password.
fn carries_placeholder(value: &[u8], placeholder: &str) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let value = value.trim();
    if value == placeholder {
        return true;
    }
    let Some((scheme, rest)) = value.split_once(' ') else {
        return false;
    };
    let rest = rest.trim();
    if rest == placeholder {
        return true;
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = BASE64.decode(rest) else {
        return false;
    };
    let decoded = Zeroizing::new(decoded);
    std::str::from_utf8(&decoded).ok().and_then(|pair| pair.split_once(':')).is_some_and(|(_, pw)| pw == placeholder)
}

/// The credentials one connector instance may use: by id, plus an optional default for
/// connectors that send no auth header at all (stripe, the Google family).
pub struct CredentialSet {
    by_id: BTreeMap<String, Bound>,
    default: Option<String>,
    header_needles: Arc<Needles>,
    body_needles: Arc<Needles>,
}

/// What [`CredentialSet::select`] decided for a request.
pub(crate) enum Selection {
    /// Forward without injecting anything.
    None,
    /// Inject this credential.
    Inject {
        /// Its id.
        id: String,
        /// The header to set, replacing any value the connector sent.
        header: HeaderName,
        /// The value.
        value: HeaderValue,
    },
    /// Refuse the request.
    Deny {
        /// Why.
        reason: super::DenyReason,
        /// The id the connector asked for, when it asked for one.
        id: Option<String>,
    },
}

impl CredentialSet {
    /// Checks every credential: host patterns parse, an [`Auth::Header`] names a header
    /// the proxy does not own, values fit in a header, ids are unique, and `default` (when
    /// given) is one of them.
    pub fn new(credentials: Vec<Credential>, default: Option<&str>) -> Result<CredentialSet, MitmError> {
        let mut by_id = BTreeMap::new();
        for credential in credentials {
            let (id, bound) = Bound::check(credential)?;
            if by_id.contains_key(&id) {
                return Err(MitmError::DuplicateCredential { id });
            }
            by_id.insert(id, bound);
        }
        if let Some(id) = default {
            if !by_id.contains_key(id) {
                return Err(MitmError::UnknownDefault { id: id.to_owned() });
            }
        }
        let header_needles = Needles::new(by_id.values().flat_map(Bound::needles));
        let body_needles = header_needles.at_least(MIN_BODY_SECRET_LEN);
        Ok(CredentialSet {
            by_id,
            default: default.map(str::to_owned),
            header_needles: Arc::new(header_needles),
            body_needles: Arc::new(body_needles),
        })
    }

    /// A set with no credentials: nothing is injected and nothing masked.
    pub fn empty() -> CredentialSet {
        CredentialSet {
            by_id: BTreeMap::new(),
            default: None,
            header_needles: Arc::new(Needles::default()),
            body_needles: Arc::new(Needles::default()),
        }
    }

    /// The credential ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.by_id.keys().map(String::as_str)
    }

    /// Whether some credential of the set is bound to `name`.
    pub fn any_bound_to(&self, name: &DnsName) -> bool {
        self.by_id.values().any(|b| b.bound_to(name))
    }

    pub(crate) fn header_needles(&self) -> &Arc<Needles> {
        &self.header_needles
    }

    pub(crate) fn body_needles(&self) -> &Arc<Needles> {
        &self.body_needles
    }

    /// Whether responses must be searched for secrets at all.
    pub(crate) fn has_secrets(&self) -> bool {
        !self.header_needles.is_empty()
    }

    /// Decides the credential for a request to `name` and strips every
    /// `X-FCP-Credential-ID` from `headers`, in this order:
    ///
    /// 1. an `X-FCP-Credential-ID` names it: unknown → deny, not bound to `name` → deny;
    ///    several different ids → deny;
    /// 2. else a credential whose placeholder the request carries in that credential's
    ///    header: not bound to `name` → deny;
    /// 3. else the default credential, when it is bound to `name` and the request does not
    ///    set its header;
    /// 4. else nothing: the request goes on as the connector wrote it.
    pub(crate) fn select(&self, name: &DnsName, headers: &mut HeaderMap) -> Selection {
        let mut asked: Vec<String> = Vec::new();
        let mut unreadable = false;
        for value in headers.get_all(CREDENTIAL_ID_HEADER).iter() {
            match value.to_str().map(str::trim) {
                Ok(id) if !id.is_empty() => {
                    if !asked.iter().any(|a| a == id) {
                        asked.push(id.to_owned());
                    }
                }
                _ => unreadable = true,
            }
        }
        headers.remove(CREDENTIAL_ID_HEADER);
        if unreadable || asked.len() > 1 {
            return Selection::Deny { reason: super::DenyReason::CredentialIdInvalid, id: asked.into_iter().next() };
        }
        if let Some(id) = asked.pop() {
            let Some(bound) = self.by_id.get(&id) else {
                return Selection::Deny { reason: super::DenyReason::CredentialUnknown, id: Some(id) };
            };
            return self.inject(id, bound, name);
        }
        if let Some((id, bound)) = self.by_id.iter().find(|(_, b)| b.placeholder_in(headers)) {
            return self.inject(id.clone(), bound, name);
        }
        if let Some(id) = &self.default {
            if let Some(bound) = self.by_id.get(id) {
                if bound.bound_to(name) && !headers.contains_key(&bound.header) {
                    return self.inject(id.clone(), bound, name);
                }
            }
        }
        Selection::None
    }

    fn inject(&self, id: String, bound: &Bound, name: &DnsName) -> Selection {
        if !bound.bound_to(name) {
            return Selection::Deny { reason: super::DenyReason::CredentialHostUnbound, id: Some(id) };
        }
        match bound.value() {
            Some(value) => Selection::Inject { id, header: bound.header.clone(), value },
            // Checked by `Bound::check`; refuse rather than send without it.
            None => Selection::Deny { reason: super::DenyReason::CredentialIdInvalid, id: Some(id) },
        }
    }
}

impl fmt::Debug for CredentialSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Hosts<'a>(&'a [HostPattern]);
        impl fmt::Debug for Hosts<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.iter().map(|h| format!("{h}"))).finish()
            }
        }
        let mut map = f.debug_map();
        for (id, bound) in &self.by_id {
            map.entry(id, &(Hosts(&bound.hosts), &bound.auth));
        }
        map.finish()?;
        if let Some(default) = &self.default {
            write!(f, " default={default:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> DnsName {
        match parse_host(s) {
            Ok(Host::Name(n)) => n,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn patterns_match_like_host_allow() {
        let below = HostPattern::parse("*.Example.com.").unwrap_or_else(|e| panic!("{e}"));
        assert!(below.matches(&name("a.example.com")));
        assert!(below.matches(&name("a.b.example.com")));
        assert!(!below.matches(&name("example.com")));
        assert!(!below.matches(&name("evilexample.com")));
        let exact = HostPattern::parse("api.example.com").unwrap_or_else(|e| panic!("{e}"));
        assert!(exact.matches(&name("api.example.com")));
        assert!(!exact.matches(&name("x.api.example.com")));
        assert!(HostPattern::parse("10.0.0.1").is_err());
        assert!(HostPattern::parse("*.").is_err());
        assert!(HostPattern::parse("a.*.com").is_err());
    }

    #[test]
    fn placeholder_forms() {
        assert!(carries_placeholder(b"Bearer PH", "PH"));
        assert!(carries_placeholder(b"PH", "PH"));
        assert!(carries_placeholder(format!("Basic {}", BASE64.encode("me:PH")).as_bytes(), "PH"));
        assert!(!carries_placeholder(b"Bearer PHX", "PH"));
    }

    #[test]
    fn reserved_headers_are_refused() {
        let credential = Credential {
            id: "c".into(),
            hosts: vec!["api.example.com".into()],
            auth: Auth::Header { name: "Host".into(), value: Zeroizing::new("x".into()) },
            placeholder: None,
        };
        assert!(matches!(CredentialSet::new(vec![credential], None), Err(MitmError::CredentialHeaderName { .. })));
    }
}
