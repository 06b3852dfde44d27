//! A small "internet" for egress tests: a network namespace joined to the host by a
//! veth, holding a real DNS server (hickory's wire format) and real TCP servers at a
//! public-looking address, 11.22.33.2 (the host end is 11.22.33.1). Removed on drop.
//!
//! Names it answers: `api.test.example` → 11.22.33.2; `evil.test.example` → 10.1.2.3 and
//! 11.22.33.2 (a private answer, for rebinding); `many.test.example` → twenty addresses
//! 11.22.33.10–29; anything else NXDOMAIN. Servers on 11.22.33.2: an echo server on 443
//! (it sends `echo:` then echoes), an HTTP/1.1 server on 80, and the same over TLS on 8443
//! with a certificate for `api.test.example` from a test CA of its own
//! ([`Internet::ca_pem`]). The HTTP servers answer every request with its request head
//! as the body, and record it ([`Internet::requests`]).
//!
//! A test target includes it with `#[path = "../support/internet.rs"] mod internet;`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

/// The servers' address.
pub(crate) const UPSTREAM: Ipv4Addr = Ipv4Addr::new(11, 22, 33, 2);
/// The host end of the internet's link.
pub(crate) const HOST_SIDE: Ipv4Addr = Ipv4Addr::new(11, 22, 33, 1);

/// Whether this test can run: root, or (when `FCP_REQUIRE_PRIVILEGED=1`) a failure.
pub(crate) fn privileged(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(std::env::var("FCP_REQUIRE_PRIVILEGED").as_deref() != Ok("1"), "{test}: needs root");
    eprintln!("SKIPPED {test}: needs root");
    false
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (install iproute2)");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// The running internet.
pub(crate) struct Internet {
    name: String,
    link: String,
    queries: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<String>>>,
    ca_pem: String,
}

impl Internet {
    /// Starts it; `tag` keeps the namespaces of concurrent tests apart.
    pub(crate) fn start(tag: &str) -> Internet {
        let name = format!("fcpt-net-{}-{tag}", std::process::id());
        let link = format!("fcptu{}{tag}", std::process::id() % 10_000);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        ip(&["link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &name]);
        ip(&["addr", "add", &format!("{HOST_SIDE}/24"), "dev", &link]);
        ip(&["link", "set", &link, "up"]);
        ip(&["-n", &name, "addr", "add", &format!("{UPSTREAM}/24"), "dev", "eth0"]);
        ip(&["-n", &name, "link", "set", "eth0", "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        let queries = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let ns: OwnedFd = std::fs::File::open(format!("/var/run/netns/{name}")).expect("netns").into();
        let (q, r, ready) = (Arc::clone(&queries), Arc::clone(&requests), std::sync::mpsc::channel());
        let (tls_config, ca_pem) = test_tls("api.test.example");
        let r_tls = Arc::clone(&requests);
        thread::spawn(move || {
            rustix::thread::move_into_link_name_space(ns.as_fd(), None).expect("enter the internet");
            let dns = UdpSocket::bind((UPSTREAM, 53)).expect("bind dns");
            let echo = TcpListener::bind((UPSTREAM, 443)).expect("bind 443");
            let http = TcpListener::bind((UPSTREAM, 80)).expect("bind 80");
            let https = TcpListener::bind((UPSTREAM, 8443)).expect("bind 8443");
            ready.0.send(()).expect("ready");
            thread::spawn(move || {
                for stream in https.incoming().flatten() {
                    let (r, config) = (Arc::clone(&r_tls), Arc::clone(&tls_config));
                    thread::spawn(move || {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                        http_server(rustls::StreamOwned::new(conn, stream), r);
                    });
                }
            });
            thread::spawn(move || dns_server(dns, q));
            thread::spawn(move || {
                for stream in http.incoming().flatten() {
                    let r = Arc::clone(&r);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    thread::spawn(move || http_server(stream, r));
                }
            });
            for stream in echo.incoming().flatten() {
                thread::spawn(move || echo_server(stream));
            }
        });
        ready.1.recv_timeout(Duration::from_secs(5)).expect("the internet started");
        Internet { name, link, queries, requests, ca_pem }
    }

    /// The PEM of the CA that issued the TLS server's certificate.
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Whether the DNS server was asked for `name`.
    pub(crate) fn queried(&self, name: &str) -> bool {
        self.queries.lock().expect("queries").iter().any(|q| q == name)
    }

    /// The request heads the HTTP server received.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests").clone()
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        // The server threads keep the namespace alive: delete the link, so nothing can
        // reach them (and the next internet's addresses are its alone).
        let _ = Command::new("ip").args(["link", "del", &self.link]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

fn dns_server(socket: UdpSocket, queries: Arc<Mutex<Vec<String>>>) {
    let mut buf = [0u8; 2048];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf) else { return };
        let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
        let Some(q) = request.queries().first().cloned() else { continue };
        let name = q.name().to_ascii().trim_end_matches('.').to_owned();
        queries.lock().expect("queries").push(name.clone());
        let mut response = Message::new();
        response.set_id(request.id()).set_message_type(MessageType::Response).add_query(q.clone());
        let addrs: Vec<Ipv4Addr> = match name.as_str() {
            "api.test.example" => vec![UPSTREAM],
            "evil.test.example" => vec![Ipv4Addr::new(10, 1, 2, 3), UPSTREAM],
            "many.test.example" => (10..30).map(|i| Ipv4Addr::new(11, 22, 33, i)).collect(),
            _ => {
                response.set_response_code(ResponseCode::NXDomain);
                Vec::new()
            }
        };
        if q.query_type() == RecordType::A {
            for a in addrs {
                response.add_answer(Record::from_rdata(q.name().clone(), 30, RData::A(a.into())));
            }
        }
        let _ = socket.send_to(&response.to_vec().expect("encode"), from);
    }
}

fn echo_server(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    let mut first = true;
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        if first {
            let _ = stream.write_all(b"echo:");
            first = false;
        }
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// A server config for `name` from a fresh test CA, and the CA's PEM.
fn test_tls(name: &str) -> (Arc<rustls::ServerConfig>, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256};
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("leaf key");
    let leaf = CertificateParams::new(vec![name.to_owned()]).expect("leaf params").signed_by(&leaf_key, &issuer);
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![leaf.expect("leaf").der().clone()], key.into())
        .expect("server config");
    (Arc::new(config), ca_pem)
}

fn http_server(mut stream: impl Read + Write, requests: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    requests.lock().expect("requests").push(head.clone());
    let body = format!("hello from upstream\n{head}");
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}
