//! The per-jail network: a network namespace per connector whose only link is one end
//! of a veth pair, with a default route to the other end on the host, where the proxy
//! is the only thing that answers.
//!
//! [`Network::open`] (once, at fcpd start) checks the address pool against the host's
//! routes, removes what a killed predecessor left (its nftables table and `fcpv*`
//! links), and installs one nftables table, `inet fcp_egress`:
//! - `screen` (filter, before NAT): from any `fcpv*` link only IPv4 TCP and UDP to port
//!   53 pass; everything else (other UDP, QUIC included, ICMP, IPv6) is dropped and
//!   counted per link in the set `dropped`;
//! - `prerouting` (nat): from any `fcpv*` link, UDP and TCP to port 53 are redirected
//!   to the DNS responder, every other TCP connection to the proxy (the proxy reads the
//!   original destination with `SO_ORIGINAL_DST`);
//! - `input`: from `fcpv*`, only the proxy's and the responder's ports are accepted;
//!   anything else is dropped and counted;
//! - `forward`: nothing is forwarded from or to an `fcpv*` link, so no jail reaches
//!   another interface or another jail.
//!
//! Each link's host end has strict reverse-path filtering, so a jail cannot send with
//! a source address other than its own, and IPv6 off on both ends.
//!
//! [`Network::create`] makes one jail's namespace, in-process over rtnetlink (no `ip`
//! commands): a thread unshares a new network namespace, creates the veth pair there
//! with its peer placed in the host's namespace, and configures the jail side (`lo`
//! up, `eth0` with the jail's address, a default route to the host end); the host end
//! gets its address and comes up. The namespace is held by a descriptor in the
//! [`JailLink`] until the jail's process has entered it; teardown is the kernel's: when
//! the last process in the namespace exits and the descriptor is closed, the namespace
//! and both veth ends go. A killed fcpd's links are removed at the next start.

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::sys;

/// The nftables table fcpd owns (with the instance's tag appended).
pub const TABLE: &str = "fcp_egress";
/// The prefix of every host-side link name (`fcp{tag}v`).
pub const LINK_PREFIX: &str = "fcpv";

/// Names that keep two supervisors on one host apart (tests run several): the
/// nftables table `fcp_egress{tag}` and the links `fcp{tag}v{slot}`. The tag is up to
/// three digits; empty for the usual single fcpd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    table: String,
    prefix: String,
}

impl Names {
    /// The names for `tag` (empty, or 1 to 3 ASCII digits).
    pub fn new(tag: &str) -> Result<Names, NetError> {
        if tag.len() > 3 || !tag.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NetError::BadTag { tag: tag.to_owned() });
        }
        Ok(Names { table: format!("{TABLE}{tag}"), prefix: format!("fcp{tag}v") })
    }

    /// The nftables table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The link prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Default for Names {
    fn default() -> Self {
        Names { table: TABLE.to_owned(), prefix: LINK_PREFIX.to_owned() }
    }
}

/// Why the network could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The pool is not an IPv4 prefix of length 8 to 28.
    #[error("address pool {pool}: {why}")]
    BadPool {
        /// The pool as given.
        pool: String,
        /// What is wrong.
        why: String,
    },
    /// The pool overlaps a route the host already has.
    #[error("address pool {pool} collides with the host's route to {route}; configure another [egress] pool")]
    PoolCollides {
        /// The pool.
        pool: String,
        /// The host's route.
        route: String,
    },
    /// The tag is not 0 to 3 digits.
    #[error("egress tag {tag:?}: expected up to three digits")]
    BadTag {
        /// The tag.
        tag: String,
    },
    /// Every address of the pool is in use.
    #[error("the address pool {pool} is exhausted ({slots} jails)")]
    PoolExhausted {
        /// The pool.
        pool: String,
        /// Its number of /30 slots.
        slots: u32,
    },
    /// An rtnetlink request failed.
    #[error("netlink: {step}")]
    Netlink {
        /// What was being done.
        step: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A namespace operation failed.
    #[error("network namespace: {step}")]
    Namespace {
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `nft` failed.
    #[error("nftables: {step}: {message}")]
    Nft {
        /// What was being done.
        step: &'static str,
        /// nft's output or the spawn error.
        message: String,
    },
    /// A sysctl could not be set.
    #[error("sysctl {path}")]
    Sysctl {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// An IPv4 pool of /30 slots: slot `i` has the host end at `.1` and the jail at `.2`
/// of the `i`-th /30.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    base: u32,
    prefix: u8,
}

impl Pool {
    /// The default pool, 10.231.0.0/16 (16 384 jails).
    pub const DEFAULT: &'static str = "10.231.0.0/16";

    /// Parses `a.b.c.d/len` with 8 ≤ len ≤ 28 and no host bits set.
    pub fn parse(text: &str) -> Result<Pool, NetError> {
        let bad = |why: &str| NetError::BadPool { pool: text.to_owned(), why: why.to_owned() };
        let (addr, len) = text.split_once('/').ok_or_else(|| bad("expected a.b.c.d/len"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = len.parse().map_err(|_| bad("not a prefix length"))?;
        if !(8..=28).contains(&prefix) {
            return Err(bad("the prefix length must be 8 to 28"));
        }
        let base = u32::from(addr);
        if base & !mask(prefix) != 0 {
            return Err(bad("host bits are set"));
        }
        Ok(Pool { base, prefix })
    }

    /// How many jails fit.
    pub fn slots(&self) -> u32 {
        1 << (30 - u32::from(self.prefix))
    }

    /// Slot `i`'s host and jail addresses.
    pub fn addresses(&self, slot: u32) -> (Ipv4Addr, Ipv4Addr) {
        let net = self.base + (slot << 2);
        (Ipv4Addr::from(net + 1), Ipv4Addr::from(net + 2))
    }

    /// Whether `addr` is a host end of this pool, and which slot.
    pub fn slot_of_host(&self, addr: Ipv4Addr) -> Option<u32> {
        let a = u32::from(addr);
        (a & mask(self.prefix) == self.base && a & 3 == 1).then(|| (a - self.base) >> 2)
    }

    /// Whether `net/len` overlaps this pool.
    fn overlaps(&self, net: u32, len: u8) -> bool {
        let common = mask(self.prefix.min(len));
        net & common == self.base & common
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.prefix)
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

/// Where the proxy and the DNS responder listen on each link's host end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// The transparent proxy (TCP).
    pub proxy: u16,
    /// The DNS responder (UDP and TCP).
    pub dns: u16,
}

/// The host's side of every jail network: the pool, the nftables table and the free
/// slots.
#[derive(Debug)]
pub struct Network {
    pool: Pool,
    ports: Ports,
    names: Names,
    host_ns: OwnedFd,
    /// Free slots, least recently freed first, so a slot's old links have time to go.
    free: Arc<Mutex<VecDeque<u32>>>,
}

impl Network {
    /// Checks `pool` against the host's routes, removes a predecessor's leftovers and
    /// installs the nftables table. Needs CAP_NET_ADMIN (root).
    pub fn open(pool: Pool, ports: Ports, names: Names) -> Result<Network, NetError> {
        check_routes(pool, &names)?;
        cleanup(&names)?;
        nft("install the table", &ruleset(ports, &names))?;
        let host_ns = fs::File::open("/proc/thread-self/ns/net")
            .map(OwnedFd::from)
            .map_err(|source| NetError::Namespace { step: "open the host's namespace", source })?;
        Ok(Network { pool, ports, names, host_ns, free: Arc::new(Mutex::new((0..pool.slots()).collect())) })
    }

    /// The pool.
    pub fn pool(&self) -> Pool {
        self.pool
    }

    /// The proxy's and the responder's ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// Makes one jail's network namespace and link (see the module docs).
    pub fn create(&self) -> Result<JailLink, NetError> {
        let slot = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
            .ok_or(NetError::PoolExhausted { pool: self.pool.to_string(), slots: self.pool.slots() })?;
        let lease = Lease { slot, free: Arc::clone(&self.free) };
        let (host_addr, jail_addr) = self.pool.addresses(slot);
        let host_if = format!("{}{slot}", self.names.prefix);
        // A link of this slot's last jail may still be going (namespace teardown is
        // asynchronous): remove it first.
        let mut rtnl = Rtnl::open()?;
        if let Some(index) = rtnl.link_index(&host_if)? {
            rtnl.delete_link(index)?;
        }
        let host_ns = self.host_ns.try_clone().map_err(|source| NetError::Namespace { step: "dup", source })?;
        let name = host_if.clone();
        let netns = std::thread::Builder::new()
            .name("fcp-netns".into())
            .spawn(move || jail_side(&host_ns, &name, jail_addr, host_addr))
            .map_err(|source| NetError::Namespace { step: "start the namespace thread", source })?
            .join()
            .map_err(|_| NetError::Namespace {
                step: "the namespace thread panicked",
                source: io::ErrorKind::Other.into(),
            })??;
        let index = rtnl.link_index(&host_if)?.ok_or_else(|| NetError::Netlink {
            step: format!("find {host_if}"),
            source: io::ErrorKind::NotFound.into(),
        })?;
        for (path, value) in [
            (format!("/proc/sys/net/ipv4/conf/{host_if}/rp_filter"), "1"),
            (format!("/proc/sys/net/ipv6/conf/{host_if}/disable_ipv6"), "1"),
        ] {
            sysctl(&path, value)?;
        }
        rtnl.add_address(index, host_addr, 30)?;
        rtnl.set_up(index)?;
        Ok(JailLink { lease, host_if, host_addr, jail_addr, netns })
    }

    /// Removes the nftables table and every `fcpv*` link (at shutdown; the namespaces go
    /// with their processes).
    pub fn close(&self) -> Result<(), NetError> {
        cleanup(&self.names)
    }

    /// The table and link names.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Per link, the packets the table dropped: (link name, packets, bytes).
    pub fn dropped(&self) -> Result<Vec<(String, u64, u64)>, NetError> {
        let out = Command::new("nft")
            .args(["-j", "list", "set", "inet", &self.names.table, "dropped"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| NetError::Nft { step: "list the drop counters", message: e.to_string() })?;
        if !out.status.success() {
            return Err(NetError::Nft {
                step: "list the drop counters",
                message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| NetError::Nft { step: "read the drop counters", message: e.to_string() })?;
        let mut counts = Vec::new();
        for item in v["nftables"].as_array().into_iter().flatten() {
            for elem in item["set"]["elem"].as_array().into_iter().flatten() {
                let e = &elem["elem"];
                if let (Some(name), Some(packets), Some(bytes)) =
                    (e["val"].as_str(), e["counter"]["packets"].as_u64(), e["counter"]["bytes"].as_u64())
                {
                    counts.push((name.to_owned(), packets, bytes));
                }
            }
        }
        Ok(counts)
    }
}

/// One jail's network: its slot, its link and (until the jail entered it) its
/// namespace.
#[derive(Debug)]
pub struct JailLink {
    lease: Lease,
    host_if: String,
    host_addr: Ipv4Addr,
    jail_addr: Ipv4Addr,
    netns: OwnedFd,
}

impl JailLink {
    /// The namespace the jail's process must enter (`setns`).
    pub fn netns(&self) -> &OwnedFd {
        &self.netns
    }

    /// The host-side link name (`fcpvN`).
    pub fn host_if(&self) -> &str {
        &self.host_if
    }

    /// The host end's address: where the proxy answers this jail.
    pub fn host_addr(&self) -> Ipv4Addr {
        self.host_addr
    }

    /// The jail's address.
    pub fn jail_addr(&self) -> Ipv4Addr {
        self.jail_addr
    }

    /// The slot in the pool.
    pub fn slot(&self) -> u32 {
        self.lease.slot
    }
}

/// A pool slot, returned when the link is dropped.
#[derive(Debug)]
struct Lease {
    slot: u32,
    free: Arc<Mutex<VecDeque<u32>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.free.lock().unwrap_or_else(PoisonError::into_inner).push_back(self.slot);
    }
}

/// Runs on its own thread: unshares a network namespace, makes the veth pair with the
/// peer in the host's, configures the jail side and returns the namespace.
fn jail_side(host_ns: &OwnedFd, host_if: &str, jail: Ipv4Addr, host: Ipv4Addr) -> Result<OwnedFd, NetError> {
    sys::unshare_network().map_err(|source| NetError::Namespace { step: "unshare", source })?;
    let netns = fs::File::open("/proc/thread-self/ns/net")
        .map(OwnedFd::from)
        .map_err(|source| NetError::Namespace { step: "open the new namespace", source })?;
    let mut rtnl = Rtnl::open()?;
    rtnl.create_veth("eth0", host_if, host_ns)?;
    sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1")?;
    let lo = rtnl
        .link_index("lo")?
        .ok_or_else(|| NetError::Netlink { step: "find lo".into(), source: io::ErrorKind::NotFound.into() })?;
    rtnl.set_up(lo)?;
    let eth0 = rtnl
        .link_index("eth0")?
        .ok_or_else(|| NetError::Netlink { step: "find eth0".into(), source: io::ErrorKind::NotFound.into() })?;
    rtnl.add_address(eth0, jail, 30)?;
    rtnl.set_up(eth0)?;
    rtnl.add_default_route(host)?;
    Ok(netns)
}

fn sysctl(path: &str, value: &str) -> Result<(), NetError> {
    fs::write(path, value).map_err(|source| NetError::Sysctl { path: path.to_owned(), source })
}

/// Refuses a pool that overlaps any IPv4 route of the host (`/proc/net/route`), other
/// than the default route and the pool's own links.
fn check_routes(pool: Pool, names: &Names) -> Result<(), NetError> {
    let text = fs::read_to_string("/proc/net/route").unwrap_or_default();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(iface), Some(dest), Some(mask_hex)) = (cols.first(), cols.get(1), cols.get(7)) else { continue };
        if iface.starts_with(&names.prefix) {
            continue;
        }
        let (Ok(dest), Ok(m)) = (u32::from_str_radix(dest, 16), u32::from_str_radix(mask_hex, 16)) else { continue };
        // /proc/net/route prints the network-order address as a native u32.
        let (dest, m) = (u32::from_be_bytes(dest.to_ne_bytes()), u32::from_be_bytes(m.to_ne_bytes()));
        let len = m.count_ones() as u8;
        if len == 0 {
            continue;
        }
        if pool.overlaps(dest, len) {
            return Err(NetError::PoolCollides {
                pool: pool.to_string(),
                route: format!("{}/{len} via {iface}", Ipv4Addr::from(dest)),
            });
        }
    }
    Ok(())
}

/// Deletes the table and every link of this prefix a predecessor left.
fn cleanup(names: &Names) -> Result<(), NetError> {
    let table = &names.table;
    // `delete table` fails when there is none: `add` first makes that a no-op.
    nft("remove the old table", &format!("add table inet {table}\ndelete table inet {table}\n"))?;
    let mut rtnl = Rtnl::open()?;
    for (index, name) in rtnl.links()? {
        if name.starts_with(&names.prefix) {
            rtnl.delete_link(index)?;
        }
    }
    Ok(())
}

/// The nftables table (see the module docs).
pub fn ruleset(ports: Ports, names: &Names) -> String {
    let Ports { proxy, dns } = ports;
    let (table, prefix) = (&names.table, &names.prefix);
    format!(
        r#"table inet {table} {{
  set dropped {{
    type ifname
    flags dynamic
    counter
    size 65536
  }}
  chain screen {{
    type filter hook prerouting priority mangle; policy accept;
    iifname "{prefix}*" meta nfproto ipv4 meta l4proto tcp accept
    iifname "{prefix}*" meta nfproto ipv4 udp dport 53 accept
    iifname "{prefix}*" update @dropped {{ iifname }} drop
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{prefix}*" meta nfproto ipv4 meta l4proto {{ tcp, udp }} th dport 53 redirect to :{dns}
    iifname "{prefix}*" meta nfproto ipv4 meta l4proto tcp redirect to :{proxy}
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "{prefix}*" meta nfproto ipv4 tcp dport {proxy} accept
    iifname "{prefix}*" meta nfproto ipv4 meta l4proto {{ tcp, udp }} th dport {dns} accept
    iifname "{prefix}*" update @dropped {{ iifname }} drop
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname "{prefix}*" update @dropped {{ iifname }} drop
    oifname "{prefix}*" drop
  }}
}}
"#
    )
}

/// Runs `nft -f -` with `script`.
fn nft(step: &'static str, script: &str) -> Result<(), NetError> {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::Nft { step, message: format!("cannot run nft (install nftables): {e}") })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(|e| NetError::Nft { step, message: e.to_string() })?;
    }
    let out = child.wait_with_output().map_err(|e| NetError::Nft { step, message: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Nft { step, message: String::from_utf8_lossy(&out.stderr).trim().to_owned() })
    }
}

/// A blocking rtnetlink socket in the calling thread's network namespace.
struct Rtnl {
    socket: Socket,
    seq: u32,
}

impl Rtnl {
    fn open() -> Result<Rtnl, NetError> {
        let err = |source| NetError::Netlink { step: "open a socket".into(), source };
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(err)?;
        socket.bind_auto().map_err(err)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(err)?;
        Ok(Rtnl { socket, seq: 0 })
    }

    fn send(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<u32, io::Error> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(message));
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// Reads the replies to request `seq` and hands each to `each` until it returns
    /// `Some` (the answer), skipping messages of other requests.
    fn replies<T>(
        &mut self,
        seq: u32,
        step: &dyn Fn() -> String,
        mut each: impl FnMut(NetlinkPayload<RouteNetlinkMessage>) -> Option<Result<T, NetError>>,
    ) -> Result<T, NetError> {
        let fail = |source| NetError::Netlink { step: step(), source };
        let mut buf = vec![0; 1 << 16];
        loop {
            let n = self.socket.recv(&mut &mut buf[..], 0).map_err(fail)?;
            let mut offset = 0;
            while offset < n {
                let msg = <NetlinkMessage<RouteNetlinkMessage>>::deserialize(&buf[offset..n])
                    .map_err(|e| fail(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == seq {
                    if let Some(answer) = each(msg.payload) {
                        return answer;
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// Sends `message` with an ACK request and waits for the ACK.
    fn request(&mut self, step: impl Fn() -> String, message: RouteNetlinkMessage, flags: u16) -> Result<(), NetError> {
        let seq = self
            .send(message, NLM_F_REQUEST | NLM_F_ACK | flags)
            .map_err(|source| NetError::Netlink { step: step(), source })?;
        self.replies(seq, &step, |payload| match payload {
            NetlinkPayload::Error(e) => Some(match e.code {
                None => Ok(()),
                Some(code) => {
                    Err(NetError::Netlink { step: step(), source: io::Error::from_raw_os_error(-code.get()) })
                }
            }),
            _ => None,
        })
    }

    /// Every link: (index, name).
    fn links(&mut self) -> Result<Vec<(u32, String)>, NetError> {
        let step = || "list links".to_owned();
        let seq = self
            .send(RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_REQUEST | NLM_F_DUMP)
            .map_err(|source| NetError::Netlink { step: step(), source })?;
        let mut links = Vec::new();
        self.replies(seq, &step, |payload| match payload {
            NetlinkPayload::Done(_) => Some(Ok(std::mem::take(&mut links))),
            NetlinkPayload::Error(e) => Some(Err(NetError::Netlink {
                step: step(),
                source: io::Error::from_raw_os_error(e.code.map_or(0, |c| -c.get())),
            })),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                let name = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                });
                if let Some(name) = name {
                    links.push((link.header.index, name));
                }
                None
            }
            _ => None,
        })
    }

    fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetError> {
        Ok(self.links()?.into_iter().find(|(_, n)| n == name).map(|(i, _)| i))
    }

    /// `ip link add NAME type veth peer name PEER netns HOST_NS`.
    fn create_veth(&mut self, name: &str, peer: &str, peer_ns: &OwnedFd) -> Result<(), NetError> {
        use std::os::fd::AsRawFd;
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes.push(LinkAttribute::IfName(peer.to_owned()));
        peer_msg.attributes.push(LinkAttribute::NetNsFd(peer_ns.as_fd().as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(
            || format!("create the veth pair {name}/{peer}"),
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    fn delete_link(&mut self, index: u32) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(|| format!("delete link {index}"), RouteNetlinkMessage::DelLink(msg), 0) {
            // Gone in the meantime.
            Err(NetError::Netlink { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            other => other,
        }
    }

    fn set_up(&mut self, index: u32) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(|| format!("set link {index} up"), RouteNetlinkMessage::SetLink(msg), 0)
    }

    fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(addr.into()));
        msg.attributes.push(AddressAttribute::Address(addr.into()));
        self.request(
            || format!("add {addr}/{prefix} to link {index}"),
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<(), NetError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.table = 254; // RT_TABLE_MAIN
        msg.header.protocol = RouteProtocol::Static;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.request(
            || format!("add the default route via {gateway}"),
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_is_an_aligned_ipv4_prefix_of_30_bit_slots() {
        let pool = Pool::parse("10.231.0.0/16").expect("pool");
        assert_eq!(pool.slots(), 16384);
        assert_eq!(pool.addresses(0), (Ipv4Addr::new(10, 231, 0, 1), Ipv4Addr::new(10, 231, 0, 2)));
        assert_eq!(pool.addresses(65), (Ipv4Addr::new(10, 231, 1, 5), Ipv4Addr::new(10, 231, 1, 6)));
        assert_eq!(pool.slot_of_host(Ipv4Addr::new(10, 231, 1, 5)), Some(65));
        assert_eq!(pool.slot_of_host(Ipv4Addr::new(10, 231, 1, 6)), None, "a jail address");
        assert_eq!(pool.slot_of_host(Ipv4Addr::new(10, 232, 0, 1)), None, "outside");
        for bad in ["10.231.0.1/16", "10.231.0.0", "10.231.0.0/30", "10.231.0.0/4", "::1/64", "x/16"] {
            assert!(Pool::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(pool.to_string(), "10.231.0.0/16");
    }

    #[test]
    fn overlap_is_decided_by_the_shorter_prefix() {
        let pool = Pool::parse("10.231.0.0/16").expect("pool");
        assert!(pool.overlaps(u32::from(Ipv4Addr::new(10, 0, 0, 0)), 8), "a wider route");
        assert!(pool.overlaps(u32::from(Ipv4Addr::new(10, 231, 7, 0)), 24), "a narrower route inside");
        assert!(!pool.overlaps(u32::from(Ipv4Addr::new(10, 230, 0, 0)), 16));
        assert!(!pool.overlaps(u32::from(Ipv4Addr::new(192, 168, 0, 0)), 16));
    }

    #[test]
    fn the_ruleset_names_both_ports_and_drops_the_rest() {
        let text = ruleset(Ports { proxy: 15080, dns: 15353 }, &Names::default());
        assert!(text.contains("redirect to :15353"));
        assert!(text.contains("redirect to :15080"));
        assert!(text.contains("tcp dport 15080 accept"));
        assert!(text.contains(r#"oifname "fcpv*" drop"#));
        let tagged = ruleset(Ports { proxy: 1, dns: 2 }, &Names::new("42").expect("tag"));
        assert!(tagged.contains("table inet fcp_egress42") && tagged.contains(r#"iifname "fcp42v*""#));
        assert!(!tagged.contains(r#""fcpv*""#));
        for bad in ["1234", "a", "-1", "v"] {
            assert!(Names::new(bad).is_err(), "{bad}");
        }
    }
}
