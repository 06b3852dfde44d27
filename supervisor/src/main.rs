//! `fcpd`: the FCP supervisor daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fcp_supervisor::{api, daemon::Daemon, home};

/// The FCP supervisor.
#[derive(Parser)]
#[command(name = "fcpd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a state directory: owner and node keys (0600), the node's attestation
    /// and the five standard zones as owner-signed policy objects.
    Init {
        /// State directory.
        #[arg(long, default_value = "/var/lib/fcp")]
        home: PathBuf,
        /// Node id (a canonical id); default node-HOSTNAME.
        #[arg(long)]
        node_id: Option<String>,
        /// Trust this publisher key (64 hex digits) for `fcp install`; repeatable.
        #[arg(long = "trust-publisher")]
        trust_publisher: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon. Settings come from the config file (default /etc/fcp/fcpd.toml,
    /// when it exists), then from these flags.
    Run {
        /// Config file (TOML: home, socket, idle_secs, sandbox degradation policy).
        #[arg(long)]
        config: Option<PathBuf>,
        /// State directory [default: /var/lib/fcp].
        #[arg(long)]
        home: Option<PathBuf>,
        /// Control socket [default: /run/fcp/fcpd.sock].
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Stop connectors idle this many seconds [default: 300].
        #[arg(long)]
        idle_secs: Option<u64>,
        /// Owner policy: let connectors start without the jail layers this machine cannot
        /// put in force (e.g. cgroups or Landlock when fcpd is not root or the kernel lacks
        /// them; every layer with `--sandbox plain`). Every such start is audited as
        /// `sandbox.degraded`. Without it (and without `[sandbox] degradation`), a
        /// connector whose jail would miss a layer does not start.
        #[arg(long)]
        allow_degraded_sandbox: bool,
        /// The backend that starts connectors [default: linux-jail; config `[sandbox]
        /// backend`]. `plain` is a plain child process with the hygiene that needs no
        /// privilege, for machines without the jail; it needs the degradation policy.
        #[arg(long, value_enum)]
        sandbox: Option<Backend>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FCP_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fcpd: {e:#}");
            // A cleared or replaced TPM does not come back by restarting: exit 78
            // (EX_CONFIG), which systemd/fcpd.service does not restart (no crash loop).
            if e.downcast_ref::<home::HomeError>().is_some_and(home::HomeError::is_permanent) {
                return ExitCode::from(78);
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Init { home, node_id, trust_publisher, json } => {
            let pubs = trust_publisher
                .iter()
                .map(|h| {
                    let mut k = [0u8; 32];
                    hex::decode_to_slice(h, &mut k)
                        .map(|()| k)
                        .map_err(|_| anyhow::anyhow!("--trust-publisher {h:?} is not 64 hex digits"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let node_id = node_id.unwrap_or_else(home::default_node_id);
            let report = home::init(&home, &node_id, &pubs)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("initialised {} for node {}", report.home.display(), report.node_id);
                println!("  owner key     kid {}", report.owner_kid);
                println!("  signing key   kid {}", report.signing_kid);
                println!("  issuance key  kid {}", report.issuance_kid);
                println!("  zones         {}", report.zones.join(", "));
            }
            Ok(())
        }
        Cmd::Run { config, home, socket, idle_secs, allow_degraded_sandbox, sandbox } => {
            let file = Config::load(config.as_deref())?;
            let home = home.or(file.home).unwrap_or_else(|| PathBuf::from("/var/lib/fcp"));
            let socket = socket.or(file.socket).unwrap_or_else(|| PathBuf::from("/run/fcp/fcpd.sock"));
            let idle_secs = idle_secs.or(file.idle_secs).unwrap_or(300);
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(async move {
                let h = home::Home::load(&home)?;
                let degradation = if allow_degraded_sandbox {
                    fcp_sandbox::Degradation::AllowMissing(fcp_sandbox::Layers::ALL)
                } else {
                    file.sandbox.degradation
                };
                let sandbox = backend(sandbox.or(file.sandbox.backend).unwrap_or_default())?;
                let missing = fcp_sandbox::Layers::ALL.difference(sandbox.layers());
                if missing.is_empty() {
                    tracing::info!(backend = sandbox.name(), "every jail layer is in force");
                } else {
                    let refused = missing.difference(degradation.allowed_missing());
                    tracing::warn!(
                        backend = sandbox.name(),
                        missing = %missing,
                        "jail layers missing on this machine{}",
                        if refused.is_empty() {
                            " (allowed by the owner's degradation policy; audited per start)".to_owned()
                        } else {
                            format!("; connectors will not start until they are in force or allowed: {refused}")
                        }
                    );
                }
                let daemon = Arc::new(
                    Daemon::open(h, sandbox, degradation, file.durability)
                        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?,
                );
                let flusher = daemon.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(fcp_supervisor::store::FLUSH_INTERVAL).await;
                        let d = flusher.clone();
                        // fsync blocks: keep it off the runtime's worker threads.
                        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || d.flush_store()).await {
                            tracing::error!("store flush failed: {}", e.message);
                        }
                    }
                });
                // Each jail's only way out: its own network namespace and link to the
                // egress proxy. Without it (not root, or the setup failed) jails keep
                // loopback only, which is safe: nothing is reachable.
                let egress = if !file.egress.enabled {
                    tracing::info!("egress disabled by [egress] enabled = false: jails have loopback only");
                    None
                } else if !is_root() {
                    tracing::warn!("egress needs root (veth, nftables): jails have loopback only");
                    None
                } else {
                    match fcp_supervisor::egress::Egress::start(&file.egress, &home.join("egress")).await {
                        Ok((egress, mut events)) => {
                            daemon.set_egress(egress.clone());
                            let auditor = daemon.clone();
                            tokio::spawn(async move {
                                while let Some(event) = events.recv().await {
                                    auditor.audit_egress(event).await;
                                }
                            });
                            tracing::info!(pool = %file.egress.pool, "egress proxy ready");
                            Some(egress)
                        }
                        Err(e) => {
                            tracing::error!("egress could not be set up ({e:#}): jails have loopback only");
                            None
                        }
                    }
                };
                let listener = api::bind(&socket)?;
                tracing::info!(socket = %socket.display(), home = %home.display(), "fcpd ready");
                let _ = sd_notify("READY=1");
                // WatchdogSec= (systemd/fcpd.service): ping from a task on this runtime, so a
                // wedged runtime stops the pings and systemd restarts fcpd.
                let watchdog = watchdog_interval(
                    std::env::var("WATCHDOG_USEC").ok().as_deref(),
                    std::env::var("WATCHDOG_PID").ok().as_deref(),
                    std::process::id(),
                );
                if let Some(every) = watchdog {
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(every);
                        loop {
                            tick.tick().await;
                            let _ = sd_notify("WATCHDOG=1");
                        }
                    });
                }
                let supervisor = daemon.clone();
                tokio::spawn(async move {
                    // Wall-clock and pids limits, and processes that died while idle.
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        tick.tick().await;
                        supervisor.supervise().await;
                    }
                });
                let reaper = daemon.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        reaper.reap_idle(Duration::from_secs(idle_secs)).await;
                        reaper.health_check().await;
                        if let Err(e) = reaper.refresh_attestation().await {
                            tracing::error!("cannot refresh the node attestation: {}", e.message);
                        }
                    }
                });
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
                tokio::select! {
                    r = api::serve(listener, daemon.clone()) => r?,
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
                tracing::info!("shutting down");
                daemon.shutdown().await;
                if let Some(egress) = &egress {
                    egress.close();
                }
                if let Err(e) = daemon.flush_store() {
                    tracing::error!("final store flush failed: {}", e.message);
                }
                let _ = std::fs::remove_file(&socket);
                Ok(())
            })
        }
    }
}

/// `/etc/fcp/fcpd.toml`. Unknown keys are refused, so a typo cannot weaken a setting.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    home: Option<PathBuf>,
    socket: Option<PathBuf>,
    idle_secs: Option<u64>,
    #[serde(default)]
    sandbox: SandboxConfig,
    /// `fsync` (every request fsynced: survives power loss) or `journal` (default:
    /// survives a crash of fcpd; a power loss may lose the last 200 ms).
    #[serde(default)]
    durability: fcp_supervisor::store::Durability,
    /// `[egress]`: the jails' network through the egress proxy.
    #[serde(default)]
    egress: fcp_supervisor::egress::EgressConfig,
}

/// `[sandbox]`: the backend and the owner's degradation policy (default: refuse any
/// missing layer).
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SandboxConfig {
    #[serde(default)]
    backend: Option<Backend>,
    #[serde(default)]
    degradation: fcp_sandbox::Degradation,
}

/// The sandbox backends fcpd can start connectors with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
enum Backend {
    /// Namespaces, pivot_root, Landlock, seccomp, cgroups, no capabilities (Linux).
    #[default]
    LinuxJail,
    /// A plain child process: environment, fds, death signal, rlimits, no_new_privs.
    Plain,
}

/// Connectors are spawned from tokio's worker threads, which live as long as fcpd: the
/// jail's death signal fires when the spawning thread ends, so a short-lived thread
/// must never spawn.
fn backend(which: Backend) -> anyhow::Result<Arc<dyn fcp_sandbox::Sandbox + Send + Sync>> {
    Ok(match which {
        Backend::Plain => Arc::new(fcp_sandbox::PlainProcess::new()),
        #[cfg(target_os = "linux")]
        Backend::LinuxJail => Arc::new(
            fcp_sandbox::LinuxJail::new()
                .map_err(|e| anyhow::anyhow!("the linux-jail backend cannot start here: {e}"))?,
        ),
        #[cfg(not(target_os = "linux"))]
        Backend::LinuxJail => anyhow::bail!("the linux-jail backend exists only on Linux; use --sandbox plain"),
    })
}

impl Config {
    fn load(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
        let default = std::path::Path::new("/etc/fcp/fcpd.toml");
        let (path, required) = match path {
            Some(p) => (p, true),
            None => (default, false),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }
}

/// Tells systemd `state` (sd_notify(3)): `READY=1` once listening (Type=notify),
/// `WATCHDOG=1` as the watchdog ping. A no-op when systemd did not start us.
fn sd_notify(state: &str) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return Ok(()) };
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    sock.send_to(state.as_bytes(), PathBuf::from(path))?;
    Ok(())
}

/// How often to ping systemd's watchdog, from `$WATCHDOG_USEC` and `$WATCHDOG_PID`:
/// half the timeout, as sd_watchdog_enabled(3) advises, and only when the variables are
/// meant for this process (`WATCHDOG_PID` unset or equal to `me`; a child that
/// inherited them must not ping for its parent). `None`: no watchdog.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.parse().ok()?;
    if pid.is_some_and(|pid| pid.parse::<u32>().ok() != Some(me)) || usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_the_timeout_for_us_only() {
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_interval(Some("30000000"), Some("7"), 7), Some(Duration::from_secs(15)));
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None, "another process's watchdog");
        assert_eq!(watchdog_interval(Some("30000000"), Some("x"), 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("-1"), None, 7), None);
    }
}
