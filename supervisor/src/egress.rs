//! fcpd's side of egress: the per-jail networks (`fcp_egress::net`) and the proxy
//! (`fcp_egress::proxy`), set up once at start, and one attachment per connector
//! process: its namespace, its resolv.conf naming the proxy's responder, and the
//! environment that routes `HTTPS_PROXY`-honouring clients through the proxy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fcp_egress::mitm::{CredentialSet, JailCa, Upstream};
use fcp_egress::net::{JailLink, Names, Network, Pool, Ports};
use fcp_egress::proxy::{self, EgressEvent, Interception, JailHandle, OperationPolicy, Proxy};
use fcp_sandbox::JailNetwork;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Where the jail's CA certificate is bound (and `SSL_CERT_FILE` points).
pub const JAIL_CA: &str = "/etc/fcp/egress-ca.pem";

/// `[egress]` in fcpd.toml.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// Give connectors a network through the proxy. `false`: each jail has loopback only.
    pub enabled: bool,
    /// The pool the jails' addresses come from (refused when it collides with a host route).
    pub pool: String,
    /// Keeps two fcpd on one host apart: the nftables table and link names carry it.
    pub tag: String,
    /// The proxy's port on each jail link's host end.
    pub proxy_port: u16,
    /// The DNS responder's port.
    pub dns_port: u16,
    /// Upstream DNS servers; empty: the host's /etc/resolv.conf.
    pub upstream_dns: Vec<SocketAddr>,
    /// A PEM file of CA certificates the proxy verifies upstream servers against when it
    /// intercepts TLS; empty: the Mozilla roots (webpki-roots).
    pub upstream_ca_file: Option<PathBuf>,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            enabled: true,
            pool: Pool::DEFAULT.to_owned(),
            tag: String::new(),
            proxy_port: 15001,
            dns_port: 15053,
            upstream_dns: Vec::new(),
            upstream_ca_file: None,
        }
    }
}

/// The running egress: networks, proxy, and where the jails' files are written.
#[derive(Debug)]
pub struct Egress {
    network: Network,
    proxy: Proxy,
    dir: PathBuf,
    upstream: Arc<Upstream>,
}

/// One connector process's network.
#[derive(Debug)]
pub struct Attachment {
    /// The namespace and link (held for the process's lifetime: dropping it frees the
    /// pool slot).
    pub link: JailLink,
    /// The proxy's registration (dropping it unregisters the jail).
    pub handle: JailHandle,
    /// What the sandbox needs.
    pub network: JailNetwork,
    /// Environment for the connector.
    pub env: Vec<(String, String)>,
}

impl Egress {
    /// Sets up the networks and starts the proxy on the current runtime. Needs root.
    pub async fn start(
        config: &EgressConfig,
        dir: &Path,
    ) -> anyhow::Result<(Arc<Egress>, mpsc::UnboundedReceiver<EgressEvent>)> {
        let upstream = Arc::new(match &config.upstream_ca_file {
            Some(path) => Upstream::from_pem(&std::fs::read(path)?, Vec::new())?,
            None => Upstream::webpki()?,
        });
        let pool = Pool::parse(&config.pool)?;
        let names = Names::new(&config.tag)?;
        let ports = Ports { proxy: config.proxy_port, dns: config.dns_port };
        let network = tokio::task::block_in_place(|| Network::open(pool, ports, names))?;
        let proxy_config =
            proxy::Config { ports, upstream_dns: config.upstream_dns.clone(), limits: proxy::Limits::default() };
        let (proxy, events) = Proxy::start(proxy_config).await?;
        std::fs::create_dir_all(dir)?;
        Ok((Arc::new(Egress { network, proxy, dir: dir.to_owned(), upstream }), events))
    }

    /// Makes the network of one connector process of `connector` in `zone`. With
    /// `credentials` (the instance's, non-empty), the jail also gets a CA of its own as
    /// its only trust store (`SSL_CERT_FILE`), and the proxy intercepts its TLS to inject
    /// them.
    ///
    /// `ports` are the ports the instance's operations may reach (`port_allow`): with the
    /// DNS and proxy ports, the only TCP ports Landlock lets the connector connect to.
    pub fn attach(
        &self,
        connector: &str,
        zone: &str,
        credentials: Option<CredentialSet>,
        ports: &[u16],
    ) -> Result<Attachment, String> {
        let link = self.network.create().map_err(|e| format!("egress network: {e}"))?;
        let dir = self.dir.join(format!("{connector}@{}", zone.replace(':', "_")));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let resolv = dir.join("resolv.conf");
        // The responder answers on the link's host end; names are always absolute.
        let text = format!("nameserver {}\noptions ndots:0 attempts:2 timeout:2\n", link.host_addr());
        crate::home::write_atomic(&resolv, text.as_bytes(), 0o644).map_err(|e| e.to_string())?;
        let mut files = vec![(resolv, PathBuf::from("/etc/resolv.conf"))];
        let proxy_url = format!("http://{}:{}", link.host_addr(), self.network.ports().proxy);
        let mut env = vec![("HTTPS_PROXY".to_owned(), proxy_url.clone()), ("https_proxy".to_owned(), proxy_url)];
        let mitm = match credentials {
            Some(credentials) if credentials.ids().next().is_some() => {
                let ca = JailCa::generate(&format!("fcp jail {connector}@{zone}")).map_err(|e| e.to_string())?;
                let pem = dir.join("ca.pem");
                crate::home::write_atomic(&pem, ca.ca_pem().as_bytes(), 0o644).map_err(|e| e.to_string())?;
                files.push((pem, PathBuf::from(JAIL_CA)));
                env.push(("SSL_CERT_FILE".to_owned(), JAIL_CA.to_owned()));
                Some(Arc::new(Interception { ca, credentials, upstream: Arc::clone(&self.upstream) }))
            }
            _ => None,
        };
        let mut tcp_ports = ports.to_vec();
        tcp_ports.extend([53, self.network.ports().proxy]);
        let network = JailNetwork {
            netns: Arc::new(link.netns().try_clone().map_err(|e| format!("egress network: {e}"))?),
            files,
            tcp_ports,
        };
        let handle = self.proxy.register(connector, zone, &link, mitm);
        Ok(Attachment { link, handle, network, env })
    }

    /// Every jail's counters and the drops per link, for `fcp egress status`.
    pub fn status(&self) -> Value {
        let dropped = self.network.dropped().unwrap_or_default();
        let jails: Vec<Value> = self
            .proxy
            .status()
            .into_iter()
            .map(|s| {
                let (packets, bytes) =
                    dropped.iter().find(|(name, _, _)| *name == s.link).map_or((0, 0), |(_, p, b)| (*p, *b));
                let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
                v["dropped_packets"] = json!(packets);
                v["dropped_bytes"] = json!(bytes);
                v
            })
            .collect();
        json!({
            "enabled": true,
            "pool": self.network.pool().to_string(),
            "table": self.network.names().table(),
            "proxy_port": self.network.ports().proxy,
            "dns_port": self.network.ports().dns,
            "jails": jails,
        })
    }

    /// Removes the table and the links (at shutdown).
    pub fn close(&self) {
        if let Err(e) = self.network.close() {
            tracing::warn!("egress cleanup: {e}");
        }
    }
}

/// The egress policy of each operation of `manifest` that declares
/// `network_constraints`; an operation without them gets no network.
pub fn policies(manifest: &fcp_policy::manifest::Manifest) -> std::collections::HashMap<String, OperationPolicy> {
    manifest
        .operations
        .iter()
        .filter_map(|(id, op)| {
            op.network_constraints.as_ref().map(|nc| (id.to_string(), OperationPolicy::from_manifest(id.as_str(), nc)))
        })
        .collect()
}
