//! The proxy's `CONNECT host:port HTTP/1.x` request line (fcp_egress::proxy::connect_target)
//! on arbitrary UTF-8: it never panics; a target it returns has a non-empty host without
//! spaces, a port whose digits in the request line are that number (so it fits a u16), and
//! the request line formed back from it parses to the same target.
#![no_main]
use fcp_egress::proxy::connect_target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(head) = std::str::from_utf8(data) else { return };
    let Some((host, port)) = connect_target(head) else { return };
    assert!(!host.is_empty(), "an empty host from {head:?}");
    assert!(!host.contains(' ') && !host.contains('\n'), "a host with a separator: {host:?}");
    let line = head.lines().next().expect("a target comes from the first line");
    assert!(line.starts_with("CONNECT "), "not a CONNECT line: {line:?}");
    let target = line.split(' ').nth(1).expect("the target is the second word");
    let digits = target.rsplit_once(':').expect("host:port").1;
    assert_eq!(digits.trim_start_matches('+').parse::<u32>().ok(), Some(u32::from(port)), "{line:?}");
    let bracketed = host.contains(':') || (host.starts_with('[') && host.ends_with(']'));
    let again = if bracketed {
        format!("CONNECT [{host}]:{port} HTTP/1.1\r\n\r\n")
    } else {
        format!("CONNECT {host}:{port} HTTP/1.1\r\n\r\n")
    };
    assert_eq!(connect_target(&again), Some((host.clone(), port)), "{again:?} from {head:?}");
});
