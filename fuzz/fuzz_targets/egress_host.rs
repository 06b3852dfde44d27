//! `parse(h)` of `vectors/README.md` §5.18 on arbitrary UTF-8: it must never panic, a name
//! it returns must be canonical, and every host it returns must print as text that parses
//! back to the same host.

#![no_main]

use fcp_policy::egress::{parse_host, Host, MAX_LABEL_LEN, MAX_NAME_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let Ok(host) = parse_host(input) else { return };
    if let Host::Name(name) = &host {
        let name = name.as_str();
        assert!(name.len() <= MAX_NAME_LEN, "name too long: {name:?}");
        assert!(!name.ends_with('.'), "trailing dot kept: {name:?}");
        for label in name.split('.') {
            assert!((1..=MAX_LABEL_LEN).contains(&label.len()), "bad label length: {name:?}");
            assert!(label.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-')), "bad label: {name:?}");
            assert!(!label.starts_with('-') && !label.ends_with('-'), "hyphen at label edge: {name:?}");
        }
    }
    assert_eq!(parse_host(&host.to_string()).as_ref(), Ok(&host), "does not reparse: {input:?}");
});
