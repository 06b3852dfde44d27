//! The transparent egress proxy and its DNS responder: the only things a jail reaches.
//!
//! **Who is talking.** The nftables table redirects a jail's TCP to the proxy's port
//! and its DNS to the responder's, on the host end of the jail's own link. So a TCP
//! connection arrives on the host address of exactly one jail ([`Proxy::register`]),
//! and its peer must be that jail's address (the link's reverse-path filter drops any
//! other source before it gets here; the proxy checks again). Nothing the connector
//! sends names it.
//!
//! **What it may reach.** fcpd tells the proxy which operation is running in each jail
//! ([`JailHandle::set_operation`]); with none, nothing is allowed. Every connection is
//! decided by `fcp_policy::egress` with that operation's `network_constraints`, the
//! code `fcp egress check` and the golden vectors run:
//! - transparent connections (the jail connected to an address): the destination
//!   address must be one the responder itself returned for an allowed name (pinned);
//!   the name is that one, checked with the ClientHello's SNI when there is one. An
//!   address the responder never returned is decided as an IP literal.
//! - explicit connections (`HTTPS_PROXY`: `CONNECT host:port`): the proxy resolves the
//!   name itself and vets the answers.
//! - a ClientHello offering Encrypted Client Hello is refused (it hides the name);
//!   `require_sni` refuses a connection without an SNI.
//!
//! **DNS.** Only names some `host_allow` entry allows are resolved; any other query is
//! answered NXDOMAIN and never forwarded. Answers in denied ranges are dropped
//! (rebinding), at most `dns_max_ips` are returned, and each returned address is pinned
//! to its name. AAAA and other types get empty answers (the jail has no IPv6).
//!
//! **Bounds.** Per jail: concurrent connections; per connection: the connect and total
//! timeouts of the operation, an idle timeout while reading a request, a header size
//! limit, and `max_response_bytes` on what flows back. TCP_NODELAY on both legs. Each
//! connection and DNS answer, allowed or denied, is an [`EgressEvent`] and counted.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use fcp_policy::egress::{admit, admit_host, DenyReason, DnsName, EgressConstraints, Host};
use fcp_policy::manifest::NetworkConstraints;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};

use crate::hello::{self, Hello};

/// Most addresses pinned per jail.
const MAX_PINNED: usize = 4096;
/// Most names pinned per address.
const MAX_NAMES_PER_ADDRESS: usize = 16;
use crate::net::Ports;

/// What one operation may reach: its `network_constraints`, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationPolicy {
    /// The operation.
    pub operation: String,
    /// The decision's inputs.
    pub constraints: EgressConstraints,
    /// `connect_timeout_ms`.
    pub connect_timeout: Duration,
    /// `total_timeout_ms`: how long one connection may last.
    pub total_timeout: Duration,
    /// `max_response_bytes`: how much may flow back on one connection.
    pub max_response_bytes: u64,
    /// `max_redirects`, for the HTTP-speaking interception path.
    pub max_redirects: u8,
    /// `spki_pins` (SHA-256 of the upstream's SubjectPublicKeyInfo), checked where the
    /// proxy terminates TLS (interception); an entry that is not 32 bytes matches nothing.
    pub spki_pins: Vec<Vec<u8>>,
}

impl OperationPolicy {
    /// The policy of `operation` from its validated `network_constraints`.
    pub fn from_manifest(operation: &str, nc: &NetworkConstraints) -> OperationPolicy {
        OperationPolicy {
            operation: operation.to_owned(),
            constraints: EgressConstraints::from_manifest(nc),
            connect_timeout: Duration::from_millis(u64::from(nc.connect_timeout_ms)),
            total_timeout: Duration::from_millis(u64::from(nc.total_timeout_ms)),
            max_response_bytes: nc.max_response_bytes,
            max_redirects: nc.max_redirects,
            spki_pins: nc.spki_pins.clone(),
        }
    }
}

/// The proxy's own bounds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Concurrent connections per jail.
    pub connections_per_jail: usize,
    /// The longest `CONNECT` request head.
    pub max_request_head: usize,
    /// How long the proxy waits for a request head or a ClientHello.
    pub idle_timeout: Duration,
    /// How long a pinned DNS answer stays usable.
    pub pin_for: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_per_jail: 64,
            max_request_head: 16 * 1024,
            idle_timeout: Duration::from_secs(10),
            pin_for: Duration::from_secs(3600),
        }
    }
}

/// How the proxy starts.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it listens (on every address; only jails' host ends are served).
    pub ports: Ports,
    /// Upstream resolvers; empty: the host's `/etc/resolv.conf`.
    pub upstream_dns: Vec<SocketAddr>,
    /// Bounds.
    pub limits: Limits,
}

/// One decision the proxy made, for the audit chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EgressEvent {
    /// The connector whose jail it was.
    pub connector: String,
    /// Its zone.
    pub zone: String,
    /// The operation running then, if any.
    pub operation: Option<String>,
    /// `connect` or `dns`.
    pub kind: &'static str,
    /// The host asked for (a name, or an address as text).
    pub host: String,
    /// The port (0 for DNS).
    pub port: u16,
    /// The address connected to, or the addresses answered.
    pub ips: Vec<IpAddr>,
    /// Whether it was allowed.
    pub allowed: bool,
    /// `allowed`, or the reason code.
    pub reason: String,
    /// The reason in words.
    pub detail: String,
    /// Bytes to and from upstream (connections that were allowed).
    pub bytes_up: u64,
    /// Bytes from upstream.
    pub bytes_down: u64,
}

/// One jail's counters.
#[derive(Debug, Default)]
struct Counters {
    allowed: AtomicU64,
    denied: AtomicU64,
    dns_answered: AtomicU64,
    dns_refused: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// A jail's counters and identity, for `fcp egress status`.
#[derive(Clone, Debug, Serialize)]
pub struct JailStatus {
    /// Connector id.
    pub connector: String,
    /// Zone.
    pub zone: String,
    /// Host-side link.
    pub link: String,
    /// Host end address.
    pub host_addr: Ipv4Addr,
    /// Jail address.
    pub jail_addr: Ipv4Addr,
    /// The operation running, if any.
    pub operation: Option<String>,
    /// Connections allowed.
    pub allowed: u64,
    /// Connections denied.
    pub denied: u64,
    /// DNS queries answered.
    pub dns_answered: u64,
    /// DNS queries refused (NXDOMAIN).
    pub dns_refused: u64,
    /// Bytes sent upstream.
    pub bytes_up: u64,
    /// Bytes received from upstream.
    pub bytes_down: u64,
    /// Names pinned.
    pub pinned: usize,
}

/// What the proxy needs to intercept a jail's TLS and inject its credentials: the
/// jail's own CA (whose certificate is the jail's trust store), the credentials its
/// instance may use, and how to verify upstreams. A jail registered with one has every
/// TLS connection intercepted (its clients trust only the jail CA); one without has its
/// TLS passed through untouched, and never gets a credential.
#[derive(Debug)]
pub struct Interception {
    /// The jail's CA.
    pub ca: crate::mitm::JailCa,
    /// The credentials of the jail's instance.
    pub credentials: crate::mitm::CredentialSet,
    /// Upstream roots and pins.
    pub upstream: Arc<crate::mitm::Upstream>,
}

/// A registered jail.
#[derive(Debug)]
struct Jail {
    mitm: Option<Arc<Interception>>,
    connector: String,
    zone: String,
    link: String,
    host_addr: Ipv4Addr,
    jail_addr: Ipv4Addr,
    /// The operation running; connections opened under one end when it does.
    policy: tokio::sync::watch::Sender<Option<Arc<OperationPolicy>>>,
    /// address → [(name, until)]: the addresses the responder returned, and for which
    /// names (one address may serve several).
    pins: Mutex<HashMap<IpAddr, Vec<(DnsName, Instant)>>>,
    counters: Counters,
    connections: Semaphore,
}

impl Jail {
    fn policy(&self) -> Option<Arc<OperationPolicy>> {
        self.policy.borrow().clone()
    }

    /// The names the responder returned `ip` for, still pinned.
    fn pinned_names(&self, ip: IpAddr) -> Vec<DnsName> {
        let pins = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        pins.get(&ip).into_iter().flatten().filter(|(_, until)| *until > now).map(|(n, _)| n.clone()).collect()
    }

    /// Pins `ip` to `name` until `until`.
    fn pin(&self, ip: IpAddr, name: &DnsName, until: Instant) {
        let mut pins = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        pins.retain(|_, names| {
            names.retain(|(_, t)| *t > now);
            !names.is_empty()
        });
        if pins.len() >= MAX_PINNED && !pins.contains_key(&ip) {
            return;
        }
        let names = pins.entry(ip).or_default();
        names.retain(|(n, _)| n != name);
        if names.len() < MAX_NAMES_PER_ADDRESS {
            names.push((name.clone(), until));
        }
    }
}

struct Shared {
    /// By the host end's address.
    jails: RwLock<HashMap<Ipv4Addr, Arc<Jail>>>,
    /// Jail address → host end address.
    by_jail: RwLock<HashMap<Ipv4Addr, Ipv4Addr>>,
    resolver: TokioResolver,
    events: mpsc::UnboundedSender<EgressEvent>,
    limits: Limits,
}

impl Shared {
    fn jail_by_host(&self, host: Ipv4Addr) -> Option<Arc<Jail>> {
        self.jails.read().unwrap_or_else(PoisonError::into_inner).get(&host).cloned()
    }

    fn jail_by_source(&self, source: Ipv4Addr) -> Option<Arc<Jail>> {
        let host = *self.by_jail.read().unwrap_or_else(PoisonError::into_inner).get(&source)?;
        self.jail_by_host(host)
    }

    fn emit(&self, jail: &Jail, event: Outcome) {
        let counters = &jail.counters;
        match (event.kind, event.allowed) {
            ("connect", true) => counters.allowed.fetch_add(1, Ordering::Relaxed),
            ("connect", false) => counters.denied.fetch_add(1, Ordering::Relaxed),
            (_, true) => counters.dns_answered.fetch_add(1, Ordering::Relaxed),
            (_, false) => counters.dns_refused.fetch_add(1, Ordering::Relaxed),
        };
        counters.bytes_up.fetch_add(event.bytes_up, Ordering::Relaxed);
        counters.bytes_down.fetch_add(event.bytes_down, Ordering::Relaxed);
        if event.allowed {
            tracing::debug!(connector = %jail.connector, host = %event.host, port = event.port, "egress allowed");
        } else {
            tracing::info!(connector = %jail.connector, host = %event.host, port = event.port, reason = %event.reason, "egress denied");
        }
        let _ = self.events.send(EgressEvent {
            connector: jail.connector.clone(),
            zone: jail.zone.clone(),
            operation: event.operation,
            kind: event.kind,
            host: event.host,
            port: event.port,
            ips: event.ips,
            allowed: event.allowed,
            reason: event.reason,
            detail: event.detail,
            bytes_up: event.bytes_up,
            bytes_down: event.bytes_down,
        });
    }
}

/// What [`Shared::emit`] records.
struct Outcome {
    operation: Option<String>,
    kind: &'static str,
    host: String,
    port: u16,
    ips: Vec<IpAddr>,
    allowed: bool,
    reason: String,
    detail: String,
    bytes_up: u64,
    bytes_down: u64,
}

impl Outcome {
    fn denied(
        kind: &'static str,
        policy: Option<&OperationPolicy>,
        host: String,
        port: u16,
        reason: &str,
        detail: String,
    ) -> Outcome {
        Outcome {
            operation: policy.map(|p| p.operation.clone()),
            kind,
            host,
            port,
            ips: Vec::new(),
            allowed: false,
            reason: reason.to_owned(),
            detail,
            bytes_up: 0,
            bytes_down: 0,
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// A listening socket could not be bound.
    #[error("listen on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The upstream resolver could not be configured.
    #[error("resolver: {0}")]
    Resolver(String),
}

/// The running proxy (cheap to clone).
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy").field("jails", &self.shared.jails.read().map(|j| j.len()).unwrap_or(0)).finish()
    }
}

impl Proxy {
    /// Binds the proxy's and the responder's ports and starts serving on the current
    /// tokio runtime. Events arrive on the returned receiver.
    pub async fn start(config: Config) -> Result<(Proxy, mpsc::UnboundedReceiver<EgressEvent>), ProxyError> {
        let resolver = if config.upstream_dns.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| ProxyError::Resolver(e.to_string()))?.build()
        } else {
            let mut group = NameServerConfigGroup::new();
            for addr in &config.upstream_dns {
                group.merge(NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true));
            }
            let rc = ResolverConfig::from_parts(None, Vec::new(), group);
            TokioResolver::builder_with_config(rc, TokioConnectionProvider::default()).build()
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            jails: RwLock::new(HashMap::new()),
            by_jail: RwLock::new(HashMap::new()),
            resolver,
            events: tx,
            limits: config.limits,
        });
        let any = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        let tcp = TcpListener::bind(any(config.ports.proxy))
            .await
            .map_err(|source| ProxyError::Listen { addr: any(config.ports.proxy), source })?;
        let udp = UdpSocket::bind(any(config.ports.dns))
            .await
            .map_err(|source| ProxyError::Listen { addr: any(config.ports.dns), source })?;
        let dns_tcp = TcpListener::bind(any(config.ports.dns))
            .await
            .map_err(|source| ProxyError::Listen { addr: any(config.ports.dns), source })?;
        tokio::spawn(accept_loop(Arc::clone(&shared), tcp));
        tokio::spawn(dns_udp_loop(Arc::clone(&shared), udp));
        tokio::spawn(dns_tcp_loop(Arc::clone(&shared), dns_tcp));
        Ok((Proxy { shared }, rx))
    }

    /// Starts serving the jail whose link has `host_addr` and `jail_addr`; the returned
    /// handle unregisters it when dropped.
    pub fn register(
        &self,
        connector: &str,
        zone: &str,
        link: &crate::net::JailLink,
        mitm: Option<Arc<Interception>>,
    ) -> JailHandle {
        let jail = Arc::new(Jail {
            mitm,
            connector: connector.to_owned(),
            zone: zone.to_owned(),
            link: link.host_if().to_owned(),
            host_addr: link.host_addr(),
            jail_addr: link.jail_addr(),
            policy: tokio::sync::watch::Sender::new(None),
            pins: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            connections: Semaphore::new(self.shared.limits.connections_per_jail),
        });
        self.shared.jails.write().unwrap_or_else(PoisonError::into_inner).insert(jail.host_addr, Arc::clone(&jail));
        self.shared.by_jail.write().unwrap_or_else(PoisonError::into_inner).insert(jail.jail_addr, jail.host_addr);
        JailHandle { shared: Arc::clone(&self.shared), jail }
    }

    /// Every registered jail's counters.
    pub fn status(&self) -> Vec<JailStatus> {
        let jails = self.shared.jails.read().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<JailStatus> = jails.values().map(|j| status(j)).collect();
        out.sort_by(|a, b| a.link.cmp(&b.link));
        out
    }
}

fn status(j: &Jail) -> JailStatus {
    let c = &j.counters;
    JailStatus {
        connector: j.connector.clone(),
        zone: j.zone.clone(),
        link: j.link.clone(),
        host_addr: j.host_addr,
        jail_addr: j.jail_addr,
        operation: j.policy().map(|p| p.operation.clone()),
        allowed: c.allowed.load(Ordering::Relaxed),
        denied: c.denied.load(Ordering::Relaxed),
        dns_answered: c.dns_answered.load(Ordering::Relaxed),
        dns_refused: c.dns_refused.load(Ordering::Relaxed),
        bytes_up: c.bytes_up.load(Ordering::Relaxed),
        bytes_down: c.bytes_down.load(Ordering::Relaxed),
        pinned: j.pins.lock().unwrap_or_else(PoisonError::into_inner).len(),
    }
}

/// A registered jail; dropping it unregisters the jail.
pub struct JailHandle {
    shared: Arc<Shared>,
    jail: Arc<Jail>,
}

impl fmt::Debug for JailHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JailHandle").field("connector", &self.jail.connector).field("link", &self.jail.link).finish()
    }
}

impl JailHandle {
    /// Sets the operation running in the jail (`None`: none, nothing is allowed).
    pub fn set_operation(&self, policy: Option<OperationPolicy>) {
        // Every connection opened under the previous operation is ended (see `connection`).
        self.jail.policy.send_replace(policy.map(Arc::new));
    }

    /// The jail's counters.
    pub fn status(&self) -> JailStatus {
        status(&self.jail)
    }
}

impl Drop for JailHandle {
    fn drop(&mut self) {
        let mut jails = self.shared.jails.write().unwrap_or_else(PoisonError::into_inner);
        if jails.get(&self.jail.host_addr).is_some_and(|j| Arc::ptr_eq(j, &self.jail)) {
            jails.remove(&self.jail.host_addr);
            self.shared.by_jail.write().unwrap_or_else(PoisonError::into_inner).remove(&self.jail.jail_addr);
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move { connection(shared, stream, peer).await });
            }
            Err(e) => {
                tracing::warn!("egress proxy accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One connection from a jail, from accept to close.
async fn connection(shared: Arc<Shared>, mut client: TcpStream, peer: SocketAddr) {
    let Ok(SocketAddr::V4(local)) = client.local_addr() else { return };
    let Some(jail) = shared.jail_by_host(*local.ip()) else {
        tracing::debug!(%peer, %local, "egress proxy: a connection not from a jail's link, closed");
        return;
    };
    if peer.ip() != IpAddr::V4(jail.jail_addr) {
        let detail = format!("source {peer} is not the jail's address {}", jail.jail_addr);
        shared.emit(&jail, Outcome::denied("connect", None, peer.ip().to_string(), 0, "source_spoofed", detail));
        return;
    }
    let Ok(_permit) = jail.connections.try_acquire() else {
        let detail = format!("more than {} concurrent connections", shared.limits.connections_per_jail);
        shared.emit(
            &jail,
            Outcome::denied("connect", jail.policy().as_deref(), String::new(), 0, "too_many_connections", detail),
        );
        return;
    };
    let _ = client.set_nodelay(true);
    let original = match rustix::net::sockopt::ip_original_dst(&client) {
        Ok(addr) => addr,
        Err(e) => {
            tracing::warn!("egress proxy: SO_ORIGINAL_DST: {e}");
            return;
        }
    };
    let Some(policy) = jail.policy() else {
        let detail = "no operation is running in this jail".to_owned();
        shared.emit(
            &jail,
            Outcome::denied("connect", None, original.ip().to_string(), original.port(), "no_operation", detail),
        );
        if original == local {
            let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        }
        return;
    };
    // A connection lives no longer than the operation it was allowed for: a kept-alive
    // connection must not carry requests (or credentials) into the next operation, or
    // past the end of this one.
    let mut changed = jail.policy.subscribe();
    changed.mark_unchanged();
    let handled = async {
        if original == local {
            explicit(&shared, &jail, &policy, &mut client).await
        } else {
            transparent(&shared, &jail, &policy, &mut client, original).await
        }
    };
    let result = tokio::select! {
        r = handled => r,
        _ = changed.changed() => {
            tracing::debug!(connector = %jail.connector, "operation {} ended: its connection is closed", policy.operation);
            Ok(())
        }
    };
    if let Err(outcome) = result {
        shared.emit(&jail, *outcome);
    }
}

/// A refusal, already formed as the event to record.
type Refused = Box<Outcome>;

fn refuse(policy: &OperationPolicy, host: String, port: u16, reason: &DenyReason) -> Refused {
    Box::new(Outcome::denied("connect", Some(policy), host, port, reason.code(), reason.to_string()))
}

/// A connection the jail addressed to a destination, redirected here.
async fn transparent(
    shared: &Shared,
    jail: &Jail,
    policy: &OperationPolicy,
    client: &mut TcpStream,
    original: SocketAddrV4,
) -> Result<(), Refused> {
    let ip = IpAddr::V4(*original.ip());
    let port = original.port();
    let (first, hello) = read_hello(client, shared.limits.idle_timeout).await;
    let sni = match &hello {
        Ok(Hello::Tls { ech: true, .. }) => {
            let detail = "the ClientHello offers Encrypted Client Hello, which would hide the name".to_owned();
            return Err(Box::new(Outcome::denied(
                "connect",
                Some(policy),
                ip.to_string(),
                port,
                "ech_refused",
                detail,
            )));
        }
        Ok(Hello::Tls { sni, .. }) => sni.clone(),
        Ok(_) => None,
        Err(e) => {
            return Err(Box::new(Outcome::denied(
                "connect",
                Some(policy),
                ip.to_string(),
                port,
                "tls_malformed",
                e.to_string(),
            )));
        }
    };
    // The name: the SNI when the responder returned this address for it; else the first
    // name it was returned for that the operation admits (or the first, to report why
    // not); else the address itself, decided as an IP literal.
    let names = jail.pinned_names(ip);
    let sni_name = sni.as_deref().map(|s| s.trim_end_matches('.').to_ascii_lowercase());
    let host = match names.iter().find(|n| sni_name.as_deref() == Some(n.as_str())) {
        Some(n) => n.as_str().to_owned(),
        None => names
            .iter()
            .find(|n| admit(&policy.constraints, n.as_str(), port, sni.as_deref()).is_ok())
            .or(names.first())
            .map_or_else(|| ip.to_string(), |n| n.as_str().to_owned()),
    };
    let admitted =
        admit(&policy.constraints, &host, port, sni.as_deref()).map_err(|r| refuse(policy, host.clone(), port, &r))?;
    let addrs =
        admitted.vet_addresses(&policy.constraints, &[ip]).map_err(|r| refuse(policy, host.clone(), port, &r))?;
    if let (Some(mitm), Ok(Hello::Tls { sni: Some(name), .. })) = (&jail.mitm, &hello) {
        intercept(shared, jail, policy, mitm, client, &first, name, SocketAddr::new(ip, port)).await;
        return Ok(());
    }
    let upstream = connect(policy, &addrs, port).await.map_err(|e| {
        Box::new(Outcome::denied("connect", Some(policy), host.clone(), port, "upstream_unreachable", e.to_string()))
    })?;
    splice(shared, jail, policy, client, upstream, &first, host_text(admitted.host()), port).await;
    Ok(())
}

/// `CONNECT host:port`, from a connector that honours `HTTPS_PROXY`.
async fn explicit(
    shared: &Shared,
    jail: &Jail,
    policy: &OperationPolicy,
    client: &mut TcpStream,
) -> Result<(), Refused> {
    let head = match read_head(client, shared.limits.max_request_head, shared.limits.idle_timeout).await {
        Ok(head) => head,
        Err(e) => {
            let _ = client.write_all(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n").await;
            return Err(Box::new(Outcome::denied("connect", Some(policy), String::new(), 0, "bad_request", e)));
        }
    };
    let Some((host, port)) = connect_target(&head) else {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nconnection: close\r\n\r\n").await;
        let detail = "only CONNECT is served on the proxy port".to_owned();
        return Err(Box::new(Outcome::denied("connect", Some(policy), String::new(), 0, "bad_request", detail)));
    };
    let admitted = match admit(&policy.constraints, &host, port, None) {
        Ok(a) => a,
        Err(reason) => return Err(deny_connect(client, policy, &host, port, reason).await),
    };
    let resolved = match admitted.host() {
        Host::Ip(ip) => vec![*ip],
        Host::Name(name) => resolve_v4(&shared.resolver, name.as_str())
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(ip, _)| ip)
            .collect(),
    };
    let addrs = match admitted.vet_addresses(&policy.constraints, &resolved) {
        Ok(a) => a,
        Err(reason) => return Err(deny_connect(client, policy, &host, port, reason).await),
    };
    let upstream = match connect(policy, &addrs, port).await {
        Ok(s) => s,
        Err(e) => {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\n\r\n").await;
            return Err(Box::new(Outcome::denied(
                "connect",
                Some(policy),
                host.clone(),
                port,
                "upstream_unreachable",
                e.to_string(),
            )));
        }
    };
    if client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await.is_err() {
        return Ok(());
    }
    // The tunnel's first bytes: a ClientHello naming the same host, or nothing TLS at all.
    let (first, hello) = read_hello(client, shared.limits.idle_timeout).await;
    match hello {
        Ok(Hello::Tls { ech: true, .. }) => {
            let detail = "the ClientHello offers Encrypted Client Hello, which would hide the name".to_owned();
            return Err(Box::new(Outcome::denied("connect", Some(policy), host, port, "ech_refused", detail)));
        }
        Ok(Hello::Tls { sni, .. }) => {
            if let Err(reason) = admit(&policy.constraints, &host, port, sni.as_deref()) {
                return Err(refuse(policy, host, port, &reason));
            }
            if let (Some(mitm), Some(name), Ok(addr)) = (&jail.mitm, &sni, upstream.peer_addr()) {
                // The connection opened to vet the address is not the one intercept uses.
                drop(upstream);
                intercept(shared, jail, policy, mitm, client, &first, name, addr).await;
                return Ok(());
            }
        }
        Ok(_) if policy.constraints.require_sni => {
            let reason = DenyReason::SniMissing { host: admitted.host().clone() };
            return Err(refuse(policy, host, port, &reason));
        }
        Ok(_) => {}
        Err(e) => {
            return Err(Box::new(Outcome::denied("connect", Some(policy), host, port, "tls_malformed", e.to_string())))
        }
    }
    splice(shared, jail, policy, client, upstream, &first, host_text(admitted.host()), port).await;
    Ok(())
}

/// Answers a refused `CONNECT` with 403 and the reason, and forms its event.
async fn deny_connect(
    client: &mut TcpStream,
    policy: &OperationPolicy,
    host: &str,
    port: u16,
    reason: DenyReason,
) -> Refused {
    let body = format!("{}: {reason}\n", reason.code());
    let response =
        format!("HTTP/1.1 403 Forbidden\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
    let _ = client.write_all(response.as_bytes()).await;
    refuse(policy, host.to_owned(), port, &reason)
}

/// Hands an allowed TLS connection to [`crate::mitm::intercept`]: the connector's TLS is
/// terminated with the jail CA's leaf for `name`, its requests get their credentials,
/// and each request becomes an `egress.request` event.
#[allow(clippy::too_many_arguments)]
async fn intercept(
    shared: &Shared,
    jail: &Jail,
    policy: &OperationPolicy,
    mitm: &Interception,
    client: &mut TcpStream,
    first: &[u8],
    name: &str,
    upstream: SocketAddr,
) {
    let limits = crate::mitm::Limits {
        connect_timeout: policy.connect_timeout,
        total_timeout: policy.total_timeout,
        max_response_bytes: policy.max_response_bytes,
        max_redirects: policy.max_redirects,
        idle_timeout: shared.limits.idle_timeout,
        ..crate::mitm::Limits::default()
    };
    // The operation's pins, when it declares any; a pin of the wrong length matches no
    // certificate, so the connection fails closed.
    let pinned;
    let upstream_cfg = if policy.spki_pins.is_empty() {
        &*mitm.upstream
    } else {
        let pins = policy.spki_pins.iter().map(|p| <[u8; 32]>::try_from(p.as_slice()).unwrap_or([0; 32])).collect();
        match mitm.upstream.with_pins(pins) {
            Ok(u) => {
                pinned = u;
                &pinned
            }
            Err(e) => {
                shared.emit(
                    jail,
                    Outcome::denied("connect", Some(policy), name.to_owned(), upstream.port(), e.code(), e.to_string()),
                );
                return;
            }
        }
    };
    let stream = Prefixed { first: first.to_vec(), at: 0, inner: client };
    // Each request is recorded as it ends, not when the (kept-alive) connection does.
    let record = |event: crate::mitm::MitmEvent| {
        let (allowed, reason, detail, up, down) = match &event.outcome {
            crate::mitm::Outcome::Forwarded { status, request_bytes, response_bytes, redacted, .. } => (
                true,
                "allowed".to_owned(),
                format!("{} {} -> {status}; {redacted} secret occurrences masked", event.method, event.path),
                *request_bytes,
                *response_bytes,
            ),
            crate::mitm::Outcome::Denied { status, reason } => (
                false,
                reason.code().to_owned(),
                format!("{} {} -> {status}: {reason}", event.method, event.path),
                0,
                0,
            ),
            crate::mitm::Outcome::Failed { status, code } => {
                (false, (*code).to_owned(), format!("{} {} -> {status}", event.method, event.path), 0, 0)
            }
        };
        let credential = event.credential_id.map(|id| format!("; credential {id}")).unwrap_or_default();
        shared.emit(
            jail,
            Outcome {
                operation: Some(policy.operation.clone()),
                kind: "request",
                host: event.host,
                port: upstream.port(),
                ips: vec![upstream.ip()],
                allowed,
                reason,
                detail: format!("{detail}{credential}"),
                bytes_up: up,
                bytes_down: down,
            },
        );
    };
    let result =
        crate::mitm::intercept(stream, name, upstream, &mitm.ca, upstream_cfg, &mitm.credentials, &limits, record)
            .await;
    if let Err(e) = result {
        shared.emit(
            jail,
            Outcome::denied("connect", Some(policy), name.to_owned(), upstream.port(), e.code(), e.to_string()),
        );
    }
}

/// A stream whose first bytes were already read (the peeked ClientHello): they are
/// read again first.
struct Prefixed<'a> {
    first: Vec<u8>,
    at: usize,
    inner: &'a mut TcpStream,
}

impl AsyncRead for Prefixed<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if self.at < self.first.len() {
            let n = (self.first.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.first[at..at + n]);
            self.at += n;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut *self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Name(n) => n.as_str().to_owned(),
        Host::Ip(ip) => ip.to_string(),
    }
}

/// Reads the first bytes until they tell whether this is a ClientHello (or the idle
/// timeout passes, or the client stops sending).
async fn read_hello(client: &mut TcpStream, idle: Duration) -> (Vec<u8>, Result<Hello, hello::HelloError>) {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + idle;
    loop {
        match hello::parse(&buf) {
            Ok(Hello::Incomplete) => {}
            other => return (buf, other),
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, client.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                // Nothing (more) came: whatever there is, it is not a complete ClientHello.
                let verdict = if buf.is_empty() { Ok(Hello::NotTls) } else { hello::parse(&buf) };
                let verdict = match verdict {
                    Ok(Hello::Incomplete) => Err(hello::HelloError::Malformed("a truncated ClientHello")),
                    other => other,
                };
                return (buf, verdict);
            }
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > hello::MAX_HELLO + 1024 {
                    return (buf, Err(hello::HelloError::TooLong));
                }
            }
        }
    }
}

/// Reads an HTTP request head (up to the blank line).
async fn read_head(client: &mut TcpStream, max: usize, idle: Duration) -> Result<String, String> {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + idle;
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() >= max {
            return Err(format!("request head longer than {max} bytes"));
        }
        let mut byte = [0u8; 1];
        match tokio::time::timeout_at(deadline, client.read(&mut byte)).await {
            Ok(Ok(1)) => buf.push(byte[0]),
            Ok(Ok(_)) => return Err("the client closed before the request head ended".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("the request head did not arrive in time".into()),
        }
    }
    String::from_utf8(buf).map_err(|_| "the request head is not UTF-8".into())
}

/// `CONNECT host:port HTTP/1.x` → (host, port). IPv6 literals come in brackets.
pub fn connect_target(head: &str) -> Option<(String, u16)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if method != "CONNECT" || !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let (host, port) = target.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    // Digits only (no sign, no leading zero), 1 to 65535.
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.starts_with('0') {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

async fn connect(policy: &OperationPolicy, addrs: &[IpAddr], port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for &ip in addrs {
        match tokio::time::timeout(policy.connect_timeout, TcpStream::connect((ip, port))).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = e,
            Err(_) => last = io::Error::new(io::ErrorKind::TimedOut, format!("connect to {ip}:{port} timed out")),
        }
    }
    Err(last)
}

/// Copies both ways until either side closes, the total timeout passes, or more than
/// `max_response_bytes` came back; then records the connection.
#[allow(clippy::too_many_arguments)]
async fn splice(
    shared: &Shared,
    jail: &Jail,
    policy: &OperationPolicy,
    client: &mut TcpStream,
    mut upstream: TcpStream,
    first: &[u8],
    host: String,
    port: u16,
) {
    let ip = upstream.peer_addr().map(|a| a.ip()).ok();
    // Recorded when allowed: the connection may be cut (its operation ended) before it
    // closes by itself.
    let event = |reason: &str, detail: String, up: u64, down: u64| Outcome {
        operation: Some(policy.operation.clone()),
        kind: "connect",
        host: host.clone(),
        port,
        ips: ip.into_iter().collect(),
        allowed: true,
        reason: reason.to_owned(),
        detail,
        bytes_up: up,
        bytes_down: down,
    };
    shared.emit(jail, event("allowed", String::new(), 0, 0));
    let (mut up, mut down) = (first.len() as u64, 0u64);
    let mut cut = None;
    if upstream.write_all(first).await.is_ok() {
        let (mut cr, mut cw) = client.split();
        let (mut ur, mut uw) = upstream.split();
        let max = policy.max_response_bytes;
        let to_upstream = copy_counted(&mut cr, &mut uw, u64::MAX);
        let to_client = copy_counted(&mut ur, &mut cw, max);
        let both = async { tokio::join!(to_upstream, to_client) };
        match tokio::time::timeout(policy.total_timeout, both).await {
            Ok(((u, _), (d, capped))) => {
                up += u;
                down += d;
                if capped {
                    cut = Some((
                        "max_response_bytes",
                        format!("more than {max} bytes came back; the connection was cut"),
                    ));
                }
            }
            Err(_) => cut = Some(("total_timeout", format!("the connection outlived {:?}", policy.total_timeout))),
        }
    }
    jail.counters.bytes_up.fetch_add(up, Ordering::Relaxed);
    jail.counters.bytes_down.fetch_add(down, Ordering::Relaxed);
    if let Some((reason, detail)) = cut {
        // The cut, as a second record of the same connection (counted once above).
        let mut e = event(reason, detail, up, down);
        e.allowed = false;
        let _ = shared.events.send(EgressEvent {
            connector: jail.connector.clone(),
            zone: jail.zone.clone(),
            operation: e.operation,
            kind: e.kind,
            host: e.host,
            port: e.port,
            ips: e.ips,
            allowed: false,
            reason: e.reason,
            detail: e.detail,
            bytes_up: up,
            bytes_down: down,
        });
    }
}

/// Copies until EOF or past `max` bytes (then shuts both down); (bytes, capped).
async fn copy_counted<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(r: &mut R, w: &mut W, max: u64) -> (u64, bool) {
    let mut total = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n as u64;
        if total > max {
            let _ = w.shutdown().await;
            return (total, true);
        }
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
    (total, false)
}

async fn resolve_v4(resolver: &TokioResolver, name: &str) -> Result<Vec<(IpAddr, u32)>, String> {
    let fqdn = format!("{name}.");
    let lookup = resolver.ipv4_lookup(fqdn.as_str()).await.map_err(|e| e.to_string())?;
    Ok(lookup
        .as_lookup()
        .record_iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some((IpAddr::V4(a.0), r.ttl())),
            _ => None,
        })
        .collect())
}

async fn dns_udp_loop(shared: Arc<Shared>, socket: UdpSocket) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("egress dns: {e}");
                continue;
            }
        };
        let SocketAddr::V4(source) = from else { continue };
        let Some(jail) = shared.jail_by_source(*source.ip()) else { continue };
        let query = buf[..n].to_vec();
        let (shared, socket) = (Arc::clone(&shared), Arc::clone(&socket));
        tokio::spawn(async move {
            if let Some(answer) = answer(&shared, &jail, &query).await {
                let _ = socket.send_to(&answer, from).await;
            }
        });
    }
}

async fn dns_tcp_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((mut stream, peer)) = listener.accept().await else { continue };
        let SocketAddr::V4(source) = peer else { continue };
        let Some(jail) = shared.jail_by_source(*source.ip()) else { continue };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let idle = shared.limits.idle_timeout;
            loop {
                let mut len = [0u8; 2];
                if tokio::time::timeout(idle, stream.read_exact(&mut len)).await.map_or(true, |r| r.is_err()) {
                    return;
                }
                let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if tokio::time::timeout(idle, stream.read_exact(&mut query)).await.map_or(true, |r| r.is_err()) {
                    return;
                }
                let Some(answer) = answer(&shared, &jail, &query).await else { return };
                let Ok(len) = u16::try_from(answer.len()) else { return };
                if stream.write_all(&len.to_be_bytes()).await.is_err() || stream.write_all(&answer).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The responder's answer to one query (`None`: not even a DNS message to answer).
async fn answer(shared: &Shared, jail: &Jail, query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    if request.message_type() != MessageType::Query {
        return None;
    }
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true);
    let Some(q) = request.queries().first().cloned() else {
        response.set_response_code(ResponseCode::FormErr);
        return response.to_vec().ok();
    };
    response.add_query(q.clone());
    let name = q.name().to_ascii();
    let name = name.trim_end_matches('.').to_owned();
    let policy = jail.policy();
    let refused =
        |reason: &str, detail: String| Outcome::denied("dns", policy.as_deref(), name.clone(), 0, reason, detail);
    let Some(policy) = policy.clone() else {
        shared.emit(jail, refused("no_operation", "no operation is running in this jail".into()));
        response.set_response_code(ResponseCode::NXDomain);
        return response.to_vec().ok();
    };
    let host = match admit_host(&policy.constraints, &name) {
        Ok(Host::Name(n)) => n,
        Ok(Host::Ip(_)) | Err(_) => {
            let detail = match admit_host(&policy.constraints, &name) {
                Err(reason) => reason.to_string(),
                Ok(_) => "an address is not a name to look up".into(),
            };
            shared.emit(jail, refused("host_not_allowed", detail));
            response.set_response_code(ResponseCode::NXDomain);
            return response.to_vec().ok();
        }
    };
    if q.query_type() != RecordType::A {
        // The jail has no IPv6, and nothing else is needed: an empty answer.
        return response.to_vec().ok();
    }
    let answers = match resolve_v4(&shared.resolver, host.as_str()).await {
        Ok(a) => a,
        Err(e) => {
            shared.emit(jail, refused("dns_no_answer", e));
            response.set_response_code(ResponseCode::NXDomain);
            return response.to_vec().ok();
        }
    };
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (ip, ttl) in answers {
        if policy.constraints.denies(fcp_policy::egress::category(ip)) {
            dropped.push(ip);
        } else if kept.len() < usize::from(policy.constraints.dns_max_ips) {
            kept.push((ip, ttl));
        }
    }
    let until = Instant::now() + shared.limits.pin_for;
    for (ip, _) in &kept {
        jail.pin(*ip, &host, until);
    }
    for (ip, ttl) in &kept {
        if let IpAddr::V4(v4) = ip {
            response.add_answer(Record::from_rdata(q.name().clone(), (*ttl).min(60), RData::A((*v4).into())));
        }
    }
    let ips: Vec<IpAddr> = kept.iter().map(|(ip, _)| *ip).collect();
    let (reason, detail) = if dropped.is_empty() {
        ("allowed".to_owned(), String::new())
    } else {
        ("answers_dropped".to_owned(), format!("answers in denied ranges dropped: {dropped:?}"))
    };
    shared.emit(
        jail,
        Outcome {
            operation: Some(policy.operation.clone()),
            kind: "dns",
            host: name,
            port: 0,
            ips,
            allowed: true,
            reason,
            detail,
            bytes_up: 0,
            bytes_down: 0,
        },
    );
    response.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_targets_are_parsed_strictly() {
        assert_eq!(
            connect_target("CONNECT api.example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("api.example.com".into(), 443))
        );
        assert_eq!(connect_target("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\n\r\n"), Some(("2001:db8::1".into(), 8443)));
        for bad in [
            "GET http://x/ HTTP/1.1\r\n\r\n",
            "CONNECT api.example.com HTTP/1.1\r\n\r\n",
            "CONNECT :443 HTTP/1.1\r\n\r\n",
            "CONNECT a:99999 HTTP/1.1\r\n\r\n",
            "CONNECT a:+443 HTTP/1.1\r\n\r\n",
            "CONNECT a:0443 HTTP/1.1\r\n\r\n",
            "CONNECT a:0 HTTP/1.1\r\n\r\n",
            "CONNECT a:443 SPDY/3\r\n\r\n",
            "CONNECT a:443 HTTP/1.1 extra\r\n\r\n",
            "",
        ] {
            assert_eq!(connect_target(bad), None, "{bad:?}");
        }
    }
}
