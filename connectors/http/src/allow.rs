//! Which URLs fcp.http may fetch. A URL is parsed once, with the same `http::Uri` parser
//! the client then connects with (so the check and the connection cannot disagree about
//! the host), and its host and port must match an entry of the operator's `allow_hosts`
//! before any socket is opened.
//!
//! Entry syntax: `host`, `host:port`, `*.domain.tld` (subdomains only, not the domain
//! itself), an IPv4 address, or `[IPv6]`, each with an optional `:port`. Without a port
//! an entry allows only the scheme's default port (443, or 80 for plain http). Hosts
//! compare case-insensitively, without a trailing dot; IP addresses compare as
//! addresses. This is a name check only: resolving and range checks (no private or
//! loopback addresses, DNS rebinding) are the egress proxy's, per the manifest's
//! `network_constraints`.

use std::fmt;
use std::net::IpAddr;

use ureq::http::Uri;

/// The longest URL accepted, in bytes.
pub(crate) const MAX_URL_BYTES: usize = 8 * 1024;

/// Why an `allow_hosts` entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RuleError {
    /// An empty entry.
    #[error("empty allow_hosts entry")]
    Empty,
    /// A scheme, path, user or other character a host cannot have.
    #[error("allow_hosts entry {0:?} is not a host name, IP address or *.domain, with an optional :port")]
    Host(String),
    /// A port outside 1–65535.
    #[error("allow_hosts entry {0:?} has a bad port")]
    Port(String),
    /// A wildcard other than a leading `*.` over at least two labels.
    #[error("allow_hosts entry {0:?}: a wildcard must be *.domain.tld")]
    Wildcard(String),
}

/// Why a URL was refused before the allow list was consulted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UrlRejection {
    /// Over [`MAX_URL_BYTES`].
    #[error("longer than {MAX_URL_BYTES} bytes")]
    TooLong,
    /// Not a URL the parser takes.
    #[error("not a valid URL")]
    Parse,
    /// Not absolute.
    #[error("not an absolute http(s) URL")]
    NotAbsolute,
    /// A scheme other than https (or http when the config allows it).
    #[error("scheme {0:?} is not allowed")]
    Scheme(String),
    /// `user:password@` in the authority.
    #[error("credentials in the URL are refused; send an Authorization header")]
    UserInfo,
    /// A host with characters no DNS name or IP literal has (`%`, a zone id, …).
    #[error("host {0:?} is not a DNS name or IP address")]
    Host(String),
}

/// A host as compared: lowercase name without a trailing dot, or an address.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses a host as written in a URL or an entry (IPv6 in brackets).
    fn parse(raw: &str) -> Option<Host> {
        if let Some(v6) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return v6.parse::<std::net::Ipv6Addr>().ok().map(|a| Host::Ip(IpAddr::V6(a)));
        }
        if let Ok(v4) = raw.parse::<std::net::Ipv4Addr>() {
            return Some(Host::Ip(IpAddr::V4(v4)));
        }
        let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        valid.then_some(Host::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// One `allow_hosts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    /// `Some(".example.com")` for `*.example.com`.
    subdomains_of: Option<String>,
    /// The exact host, when not a wildcard.
    host: Option<Host>,
    port: Option<u16>,
}

impl Rule {
    fn parse(entry: &str) -> Result<Rule, RuleError> {
        if entry.is_empty() {
            return Err(RuleError::Empty);
        }
        let bad = || RuleError::Host(entry.to_owned());
        // Split off `:port`, minding the colons inside `[v6]`.
        let (host, port) = match entry.rfind(':') {
            Some(i) if !entry.ends_with(']') && (entry.starts_with('[') || !entry[..i].contains(':')) => {
                let port = entry[i + 1..].parse::<u16>().ok().filter(|&p| p != 0);
                (&entry[..i], Some(port.ok_or_else(|| RuleError::Port(entry.to_owned()))?))
            }
            _ => (entry, None),
        };
        if let Some(suffix) = host.strip_prefix("*.") {
            let Some(Host::Name(suffix)) = Host::parse(suffix) else {
                return Err(RuleError::Wildcard(entry.to_owned()));
            };
            if !suffix.contains('.') {
                return Err(RuleError::Wildcard(entry.to_owned()));
            }
            return Ok(Rule { subdomains_of: Some(format!(".{suffix}")), host: None, port });
        }
        if host.contains('*') {
            return Err(RuleError::Wildcard(entry.to_owned()));
        }
        let host = Host::parse(host).ok_or_else(bad)?;
        Ok(Rule { subdomains_of: None, host: Some(host), port })
    }

    fn allows(&self, target: &Target) -> bool {
        let host_ok = match (&self.subdomains_of, &self.host, &target.host) {
            (Some(suffix), _, Host::Name(name)) => name.len() > suffix.len() && name.ends_with(suffix.as_str()),
            (None, Some(host), target_host) => host == target_host,
            _ => false,
        };
        host_ok && self.port.map_or(target.port == target.default_port, |p| p == target.port)
    }
}

/// The operator's `allow_hosts`. Empty allows nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AllowList {
    rules: Vec<Rule>,
}

impl AllowList {
    /// Parses every entry; one bad entry refuses the whole list (fail closed).
    pub(crate) fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, RuleError> {
        entries.iter().map(|e| Rule::parse(e.as_ref())).collect::<Result<_, _>>().map(|rules| AllowList { rules })
    }

    /// Whether no entry exists (every URL is refused).
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some entry allows `target`.
    pub(crate) fn allows(&self, target: &Target) -> bool {
        self.rules.iter().any(|r| r.allows(target))
    }
}

/// A parsed URL, ready for the allow list and then the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// What the client is given: the very value that was checked.
    pub(crate) uri: Uri,
    host: Host,
    port: u16,
    default_port: u16,
}

impl Target {
    /// Parses `url`; `https` only, unless `allow_plain_http`.
    pub(crate) fn parse(url: &str, allow_plain_http: bool) -> Result<Target, UrlRejection> {
        if url.len() > MAX_URL_BYTES {
            return Err(UrlRejection::TooLong);
        }
        let uri: Uri = url.parse().map_err(|_| UrlRejection::Parse)?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(UrlRejection::NotAbsolute);
        };
        let default_port = match scheme {
            "https" => 443,
            "http" if allow_plain_http => 80,
            other => return Err(UrlRejection::Scheme(other.to_owned())),
        };
        if authority.as_str().contains('@') {
            return Err(UrlRejection::UserInfo);
        }
        let raw_host = authority.host();
        let host = Host::parse(raw_host).ok_or_else(|| UrlRejection::Host(raw_host.to_owned()))?;
        let port = authority.port_u16().unwrap_or(default_port);
        Ok(Target { uri, host, port, default_port })
    }

    /// `host` or `host:port` (non-default port), for messages and error `service`s.
    pub(crate) fn service(&self) -> String {
        if self.port == self.default_port {
            self.host.to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::parse(url, true).expect("valid URL")
    }

    fn allows(entries: &[&str], url: &str) -> bool {
        AllowList::parse(entries).expect("valid list").allows(&target(url))
    }

    #[test]
    fn exact_hosts_and_default_ports() {
        let list = ["api.github.com"];
        assert!(allows(&list, "https://api.github.com/repos"));
        assert!(allows(&list, "https://API.GitHub.com./repos"), "case and a trailing dot do not matter");
        assert!(allows(&list, "https://api.github.com:443/"));
        assert!(!allows(&list, "https://api.github.com:8443/"), "another port needs its own entry");
        assert!(!allows(&list, "http://api.github.com:443/"), "443 is not plain http's default port");
        assert!(!allows(&list, "https://github.com/"));
        assert!(!allows(&list, "https://api.github.com.evil.example/"));
        assert!(!allows(&list, "https://evilapi.github.com/"));
        assert!(allows(&["example.com:8443"], "https://example.com:8443/x"));
        assert!(!allows(&["example.com:8443"], "https://example.com/x"));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let list = ["*.example.com"];
        assert!(allows(&list, "https://a.example.com/"));
        assert!(allows(&list, "https://a.b.example.com/"));
        assert!(!allows(&list, "https://example.com/"));
        assert!(!allows(&list, "https://aexample.com/"));
        for bad in ["*.com", "*example.com", "a.*.com", "*"] {
            assert_eq!(AllowList::parse(&[bad]), Err(RuleError::Wildcard(bad.into())), "{bad}");
        }
    }

    #[test]
    fn ip_addresses_compare_as_addresses() {
        assert!(allows(&["127.0.0.1:8080"], "http://127.0.0.1:8080/"));
        assert!(!allows(&["127.0.0.1:8080"], "http://127.0.0.1:8081/"));
        assert!(allows(&["[::1]:8080"], "http://[0:0::1]:8080/"));
        assert!(allows(&["[::1]"], "https://[::1]/"));
        // Shorthand forms a resolver would accept are not the address: refused.
        assert!(!allows(&["127.0.0.1"], "https://127.1/"));
        assert!(!allows(&["127.0.0.1"], "https://2130706433/"));
    }

    #[test]
    fn bad_entries_are_refused() {
        assert_eq!(AllowList::parse(&[""]), Err(RuleError::Empty));
        for bad in ["https://example.com", "example.com/path", "user@example.com", "exa mple.com", "[::1", "::1"] {
            assert!(matches!(AllowList::parse(&[bad]), Err(RuleError::Host(_) | RuleError::Port(_))), "{bad}");
        }
        for bad in ["example.com:0", "example.com:65536", "example.com:x", "example.com:"] {
            assert_eq!(AllowList::parse(&[bad]), Err(RuleError::Port(bad.into())), "{bad}");
        }
        assert!(AllowList::parse::<&str>(&[]).expect("empty").is_empty());
        assert!(!AllowList::parse::<&str>(&[]).expect("empty").allows(&target("https://example.com/")));
    }

    #[test]
    fn urls_are_refused_before_the_list() {
        let parse = |u: &str| Target::parse(u, false);
        assert_eq!(parse("http://example.com/"), Err(UrlRejection::Scheme("http".into())));
        assert_eq!(Target::parse("http://example.com/", true).map(|t| t.service()), Ok("example.com".into()));
        assert_eq!(parse("ftp://example.com/"), Err(UrlRejection::Scheme("ftp".into())));
        assert_eq!(parse("file:///etc/passwd"), Err(UrlRejection::Parse));
        assert_eq!(parse("/relative"), Err(UrlRejection::NotAbsolute));
        assert_eq!(parse("example.com"), Err(UrlRejection::NotAbsolute));
        assert_eq!(parse("https://user:pw@example.com/"), Err(UrlRejection::UserInfo));
        // Hosts the URL parser takes but no DNS name has; what it refuses itself is Parse.
        assert_eq!(parse("https://a!b.example/"), Err(UrlRejection::Host("a!b.example".into())));
        assert_eq!(parse("https://exa%6dple.com/"), Err(UrlRejection::Parse));
        assert_eq!(parse("not a url"), Err(UrlRejection::Parse));
        assert_eq!(parse(&format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES))), Err(UrlRejection::TooLong));
        let t = parse("https://Example.com:8443/a?b=c").expect("valid");
        assert_eq!((t.service(), t.uri.path()), ("example.com:8443".to_owned(), "/a"));
    }
}
