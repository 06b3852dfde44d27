//! Capability-id lint and sandbox path rules (digest §11.1).
//!
//! Host and port restrictions belong in `network_constraints`, never in capability
//! ids; these checks reject ids that look like they carry network addressing.

/// URL schemes a capability id must not start with.
const URL_SCHEMES: &[&str] = &["http:", "https:", "ftp:", "ws:", "wss:"];
/// Last dot-segments that mark a hostname.
const HOST_TLDS: &[&str] = &["com", "org", "net", "edu", "gov", "mil"];

/// Why `id` looks like it embeds network addressing, or `None` when it is clean.
///
/// The four checks of \[I\], in its order: a URL-scheme prefix; a `:port` (2–5 digits,
/// 1–65535) after the last `:` of any dot-segment; a last dot-segment (before any `:`)
/// that is a well-known TLD when there are at least two segments; four consecutive
/// all-digit segments of 1–3 characters.
pub(crate) fn capability_lint(id: &str) -> Option<String> {
    if let Some(scheme) = URL_SCHEMES.iter().find(|s| id.starts_with(**s)) {
        return Some(format!(
            "capability id {id:?} starts with the url scheme {scheme:?}; put addressing in network_constraints"
        ));
    }
    let segments: Vec<&str> = id.split('.').collect();
    for segment in &segments {
        if let Some((_, after)) = segment.rsplit_once(':') {
            if (2..=5).contains(&after.len())
                && after.bytes().all(|b| b.is_ascii_digit())
                && after.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p))
            {
                return Some(format!(
                    "capability id {id:?} contains the port :{after}; put addressing in network_constraints"
                ));
            }
        }
    }
    if let [_, .., last] = segments.as_slice() {
        let tld = last.split(':').next().unwrap_or(last);
        if HOST_TLDS.contains(&tld) {
            return Some(format!(
                "capability id {id:?} ends like a hostname (.{tld}); put addressing in network_constraints"
            ));
        }
    }
    let octet = |s: &&str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    if segments.windows(4).any(|w| w.iter().all(octet)) {
        return Some(format!("capability id {id:?} contains an ipv4 address; put addressing in network_constraints"));
    }
    None
}

/// Does a `network.*` capability id encode a host or port (a `:`)?
pub(crate) fn is_network_capability_with_host(id: &str) -> bool {
    id.starts_with("network.") && id.contains(':')
}

/// What a sandbox filesystem path means, or `None` when it is neither absolute nor
/// `$CONNECTOR_STATE[/normal/components]` (digest §11.1).
pub(crate) fn sandbox_path(path: &str) -> Option<SandboxPathKind<'_>> {
    const STATE: &str = "$CONNECTOR_STATE";
    if path == STATE {
        return Some(SandboxPathKind::ConnectorState(""));
    }
    if let Some(sub) = path.strip_prefix("$CONNECTOR_STATE/") {
        return only_normal_components(sub).then_some(SandboxPathKind::ConnectorState(sub));
    }
    is_absolute(path).then_some(SandboxPathKind::Absolute)
}

/// The two accepted forms of a sandbox path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SandboxPathKind<'a> {
    Absolute,
    /// The text after `$CONNECTOR_STATE/` (empty for `$CONNECTOR_STATE` itself).
    ConnectorState(&'a str),
}

/// Absolute as \[I\] decides it on Unix: a leading `/`, a UNC `\\` prefix, or a drive letter
/// followed by `:` and a separator.
fn is_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with('/')
        || path.starts_with("\\\\")
        || (b.first().is_some_and(u8::is_ascii_alphabetic)
            && b.get(1) == Some(&b':')
            && matches!(b.get(2), Some(b'\\' | b'/')))
}

/// Rust's Unix `Path::components`, reduced to the question \[I\] asks: are all components
/// normal names? The splitter drops empty pieces and interior `.`, but reports a leading
/// `/` (root), a leading `.` (current dir) and any `..` (parent).
fn only_normal_components(sub: &str) -> bool {
    if sub.starts_with('/') {
        return false;
    }
    sub.split('/').enumerate().all(|(i, piece)| match piece {
        ".." => false,
        "." => i != 0,
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint_flags_addressing() {
        for bad in [
            "https:api",
            "ws:x",
            "network.egress:api.example.com:443",
            "svc.host:8080",
            "svc.example.com",
            "svc.example.org:99",
            "net.10.0.0.1",
            "a.1.2.3.4.b",
        ] {
            assert!(capability_lint(bad).is_some(), "{bad}");
        }
        for ok in [
            "telegram.send_message",
            "network.egress",
            "com",
            "a.b:0",
            "a.b:00",
            "a.b:70000",
            "a.b:123456",
            "a.b:1x",
            "a.80:x",
            "x.1.2.3",
            "x.1.2.3.4444",
            "x.com.y",
        ] {
            assert_eq!(capability_lint(ok), None, "{ok}");
        }
    }

    #[test]
    fn network_host_rule() {
        assert!(is_network_capability_with_host("network.egress:api.example.com"));
        assert!(!is_network_capability_with_host("network.egress"));
        assert!(!is_network_capability_with_host("storage:x"));
    }

    #[test]
    fn sandbox_paths_follow_the_reference() {
        for ok in [
            "/usr",
            "/usr/../etc",
            "\\\\server\\share",
            "C:\\x",
            "c:/x",
            "$CONNECTOR_STATE",
            "$CONNECTOR_STATE/",
            "$CONNECTOR_STATE/a//b",
            "$CONNECTOR_STATE/a/./b",
            "$CONNECTOR_STATE/a/.",
            "$CONNECTOR_STATE/cache",
        ] {
            assert!(sandbox_path(ok).is_some(), "{ok}");
        }
        for bad in [
            "data/cache",
            "./cache",
            "",
            "C:x",
            "$CONNECTOR_STATE/./a",
            "$CONNECTOR_STATE//a",
            "$CONNECTOR_STATE/a/../b",
            "$CONNECTOR_STATE/..",
            "$CONNECTOR_STATE/.",
            "$CONNECTOR_STATEX",
            "$HOME/x",
        ] {
            assert_eq!(sandbox_path(bad), None, "{bad}");
        }
        assert_eq!(sandbox_path("$CONNECTOR_STATE/a//b"), Some(SandboxPathKind::ConnectorState("a//b")));
    }
}
