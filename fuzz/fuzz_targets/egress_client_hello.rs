//! The first bytes of a jail's connection (fcp_egress::hello): `parse` never panics on
//! arbitrary bytes; a ClientHello's SNI is UTF-8 and came from a handshake record (the
//! input starts with 0x16); bytes after a complete ClientHello change nothing, and a cut
//! of the input is either still incomplete or already gives the same answer.
#![no_main]
use fcp_egress::hello::{parse, Hello};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(got) = parse(data) else { return };
    match &got {
        Hello::Tls { sni, .. } => {
            assert_eq!(data.first(), Some(&0x16), "a ClientHello from a non-handshake record");
            if let Some(name) = sni {
                assert!(std::str::from_utf8(name.as_bytes()).is_ok());
            }
            let mut longer = data.to_vec();
            longer.extend_from_slice(&[0x17, 3, 3, 0, 1, 0]);
            assert_eq!(parse(&longer).as_ref(), Ok(&got), "trailing bytes changed a complete ClientHello");
            for cut in [data.len() / 2, data.len() - 1] {
                let prefix = parse(&data[..cut]);
                assert!(
                    prefix == Ok(Hello::Incomplete) || prefix.as_ref() == Ok(&got),
                    "a {cut}-byte prefix gave {prefix:?}, the whole {got:?}"
                );
            }
        }
        Hello::NotTls => assert_ne!(data.first(), Some(&0x16)),
        Hello::Incomplete => {}
    }
});
