//! The first bytes of a connection the proxy cannot read past: is it TLS, and which
//! name does its ClientHello ask for?
//!
//! A thin layer over `tls-parser`: the records of the handshake are collected (a
//! ClientHello may span several), the handshake message is parsed by `tls-parser`, and
//! its extensions give the SNI and whether the client offered Encrypted Client Hello
//! (which the proxy refuses: it would hide the name the policy decides on). The bytes
//! read are kept, so the proxy can forward them unchanged.

use tls_parser::{
    parse_tls_extensions, parse_tls_message_handshake, SNIType, TlsExtension, TlsMessage, TlsMessageHandshake,
};

/// The largest ClientHello accepted (the handshake message, all records together).
pub const MAX_HELLO: usize = 64 * 1024;

/// TLS record content type `handshake`.
const HANDSHAKE: u8 = 22;
/// The `encrypted_client_hello` extension (RFC 9460 / draft-ietf-tls-esni).
const ECH: u16 = 0xfe0d;

/// What the first bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// More bytes are needed to tell.
    Incomplete,
    /// Not TLS (the first byte is not a handshake record).
    NotTls,
    /// A ClientHello.
    Tls {
        /// The `host_name` of the server_name extension, if any.
        sni: Option<String>,
        /// Whether the client offered Encrypted Client Hello.
        ech: bool,
    },
}

/// Why the first bytes are refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// A handshake record that is not a well-formed ClientHello.
    #[error("malformed TLS ClientHello: {0}")]
    Malformed(&'static str),
    /// Longer than [`MAX_HELLO`].
    #[error("TLS ClientHello longer than {MAX_HELLO} bytes")]
    TooLong,
}

/// Reads `bytes` (everything received so far). Never panics, whatever the input.
pub fn parse(bytes: &[u8]) -> Result<Hello, HelloError> {
    let Some(&first) = bytes.first() else { return Ok(Hello::Incomplete) };
    if first != HANDSHAKE {
        return Ok(Hello::NotTls);
    }
    // Reassemble the handshake message from consecutive handshake records.
    let mut handshake = Vec::new();
    let mut rest = bytes;
    loop {
        if rest.len() < 5 {
            return Ok(Hello::Incomplete);
        }
        if rest[0] != HANDSHAKE {
            return Err(HelloError::Malformed("a non-handshake record before the ClientHello ended"));
        }
        if rest[1] != 3 {
            return Err(HelloError::Malformed("not a TLS record version"));
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 || len > 16384 + 2048 {
            return Err(HelloError::Malformed("bad record length"));
        }
        let Some(fragment) = rest.get(5..5 + len) else { return Ok(Hello::Incomplete) };
        handshake.extend_from_slice(fragment);
        rest = &rest[5 + len..];
        if handshake.len() < 4 {
            continue;
        }
        if handshake[0] != 1 {
            return Err(HelloError::Malformed("the first handshake message is not a ClientHello"));
        }
        let want = 4 + (usize::from(handshake[1]) << 16 | usize::from(handshake[2]) << 8 | usize::from(handshake[3]));
        if want > MAX_HELLO {
            return Err(HelloError::TooLong);
        }
        if handshake.len() >= want {
            return client_hello(&handshake[..want]);
        }
    }
}

fn client_hello(message: &[u8]) -> Result<Hello, HelloError> {
    let hello = match parse_tls_message_handshake(message) {
        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(hello)))) => hello,
        _ => return Err(HelloError::Malformed("tls-parser could not read the ClientHello")),
    };
    let mut sni = None;
    let mut ech = false;
    if let Some(ext) = hello.ext {
        let (_, extensions) = parse_tls_extensions(ext).map_err(|_| HelloError::Malformed("unreadable extensions"))?;
        for extension in extensions {
            match extension {
                TlsExtension::SNI(names) => {
                    for (kind, name) in names {
                        if kind == SNIType::HostName {
                            let name = std::str::from_utf8(name)
                                .map_err(|_| HelloError::Malformed("a server_name that is not UTF-8"))?;
                            if sni.replace(name.to_owned()).is_some() {
                                return Err(HelloError::Malformed("two host names in server_name"));
                            }
                        }
                    }
                }
                TlsExtension::Unknown(kind, _) if kind.0 == ECH => ech = true,
                _ => {}
            }
        }
    }
    Ok(Hello::Tls { sni, ech })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A minimal TLS 1.2-style ClientHello with `extensions` (type, data).
    pub(crate) fn client_hello(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7u8; 32]); // random
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        let mut ext = Vec::new();
        for (kind, data) in extensions {
            ext.extend_from_slice(&kind.to_be_bytes());
            ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
            ext.extend_from_slice(data);
        }
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut message = vec![1];
        message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        message
    }

    pub(crate) fn sni(name: &str) -> (u16, Vec<u8>) {
        let mut entry = vec![0];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name.as_bytes());
        let mut data = (entry.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&entry);
        (0, data)
    }

    /// `message` in records of at most `chunk` bytes.
    pub(crate) fn records(message: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in message.chunks(chunk) {
            out.extend_from_slice(&[HANDSHAKE, 3, 1]);
            out.extend_from_slice(&(part.len() as u16).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    #[test]
    fn the_sni_of_a_client_hello_is_read_across_records_and_prefixes() {
        let hello = records(&client_hello(&[sni("api.example.com")]), 16384);
        let want = Hello::Tls { sni: Some("api.example.com".into()), ech: false };
        assert_eq!(parse(&hello), Ok(want.clone()));
        for cut in 0..hello.len() {
            assert_eq!(parse(&hello[..cut]), Ok(Hello::Incomplete), "a prefix of {cut} bytes");
        }
        assert_eq!(parse(&records(&client_hello(&[sni("api.example.com")]), 7)), Ok(want), "fragmented");
    }

    #[test]
    fn ech_and_missing_sni_are_reported() {
        let hello = records(&client_hello(&[sni("a.example"), (ECH, vec![0; 8])]), 16384);
        assert_eq!(parse(&hello), Ok(Hello::Tls { sni: Some("a.example".into()), ech: true }));
        assert_eq!(parse(&records(&client_hello(&[]), 16384)), Ok(Hello::Tls { sni: None, ech: false }));
    }

    #[test]
    fn other_bytes_are_not_tls_or_malformed() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Ok(Hello::NotTls));
        assert_eq!(parse(b""), Ok(Hello::Incomplete));
        let mut server_hello = client_hello(&[]);
        server_hello[0] = 2;
        assert!(matches!(parse(&records(&server_hello, 16384)), Err(HelloError::Malformed(_))));
        assert!(matches!(parse(&[22, 3, 1, 0, 0]), Err(HelloError::Malformed(_))), "an empty record");
        let huge = [22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff];
        assert_eq!(parse(&huge), Err(HelloError::TooLong));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn arbitrary_names_round_trip(name in "[a-z0-9]{1,20}(\\.[a-z0-9]{1,20}){0,3}", chunk in 1usize..300) {
            let hello = records(&client_hello(&[sni(&name)]), chunk);
            prop_assert_eq!(parse(&hello), Ok(Hello::Tls { sni: Some(name), ech: false }));
        }
    }
}
