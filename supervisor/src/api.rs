//! The local agent API: fcpd listens on a Unix socket (default /run/fcp/fcpd.sock,
//! mode 0660) and answers one JSON line per request (`fcp_proto::control`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use fcp_proto::control::{ControlEnvelope, ControlResponse, MAX_CONTROL_LINE};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::daemon::Daemon;

/// Binds the socket: removes a stale one, creates the folder, sets 0660.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        // A live fcpd answers; a dead one left a stale file.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running fcpd", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

/// Serves connections until the listener fails.
pub async fn serve(listener: UnixListener, daemon: Arc<Daemon>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let d = daemon.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, d).await {
                tracing::debug!("control connection ended: {e}");
            }
        });
    }
}

async fn connection(stream: UnixStream, daemon: Arc<Daemon>) -> std::io::Result<()> {
    let uid = stream.peer_cred().ok().map(|c| c.uid());
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_CONTROL_LINE as u64 + 1).read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && line.len() > MAX_CONTROL_LINE {
            w.write_all(&ControlResponse::err(0, "request.too_long", "request line exceeds 8 MiB").encode()).await?;
            return Ok(());
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let resp = match ControlEnvelope::decode(body) {
            Err(e) => ControlResponse::err(0, e.code(), e.to_string()),
            Ok(env) => match daemon.handle(env.request, uid).await {
                Ok(v) => ControlResponse::ok(env.id, v),
                Err(f) => ControlResponse::err(env.id, f.code, f.message),
            },
        };
        w.write_all(&resp.encode()).await?;
    }
}

use tokio::io::AsyncReadExt as _;
