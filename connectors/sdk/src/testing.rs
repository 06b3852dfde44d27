//! A supervisor's end of one connector process, for connectors' integration tests
//! (feature `testing`): spawn the real binary, drive it through fcp-proto's host codec
//! exactly as fcpd would, and check how it exits.
//!
//! Test support: failures panic with a message, as a test wants.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use fcp_proto::host::{DialectObserver, ErrorCode, Event, Framer, Reply, ReplyBody, Request};

/// The per-direction limit of host-protocol §1.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One running connector, spoken to over its stdin and stdout.
pub struct Host {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<Vec<u8>>,
    framer: Framer,
    dialect: DialectObserver,
}

impl Host {
    /// Spawns `cmd` (program, environment and cwd already set) with piped stdio.
    pub fn spawn(mut cmd: Command) -> Host {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the connector");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Host { child, stdin, stdout: rx, framer: Framer::new(), dialect: DialectObserver::default() }
    }

    /// Writes raw bytes to the connector's stdin.
    pub fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).and_then(|()| stdin.flush()).expect("write to the connector");
    }

    /// The next raw bytes from stdout, bypassing the framer (for tests of malformed
    /// output); `None` at EOF.
    pub fn read_raw(&mut self) -> Option<Vec<u8>> {
        match self.stdout.recv_timeout(IO_TIMEOUT) {
            Ok(bytes) => Some(bytes),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the connector did not answer within 10 s"),
        }
    }

    /// The next non-empty batch of events from stdout (EOF included).
    pub fn events(&mut self) -> Vec<Event> {
        loop {
            let events = match self.stdout.recv_timeout(IO_TIMEOUT) {
                Ok(bytes) => self.framer.push(&bytes),
                Err(mpsc::RecvTimeoutError::Disconnected) => self.framer.eof(),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the connector did not answer within 10 s"),
            };
            if !events.is_empty() {
                return events;
            }
        }
    }

    /// Sends `request` and returns its reply, which must be the only event.
    pub fn call(&mut self, request: Request) -> Reply {
        let out = self.framer.send(&request).expect("channel usable");
        self.write(&out.bytes);
        match self.events().as_slice() {
            [Event::Reply(reply)] => {
                assert_eq!((reply.id, reply.method), (out.id, request.method()));
                self.dialect.observe(reply);
                (**reply).clone()
            }
            other => panic!("{request:?}: {other:?}"),
        }
    }

    /// Sends `request`, which must succeed.
    pub fn ok(&mut self, request: Request) -> ReplyBody {
        let reply = self.call(request);
        reply.outcome.unwrap_or_else(|f| panic!("{:?} failed: {f:?}", reply.method))
    }

    /// Sends `request`, which must fail, and returns the error code.
    pub fn code(&mut self, request: Request) -> ErrorCode {
        self.call(request).outcome.map(|_| ()).expect_err("a failure").code()
    }

    /// The framer (for requests written by hand).
    pub fn framer(&mut self) -> &mut Framer {
        &mut self.framer
    }

    /// The reply dialect seen so far.
    pub fn dialect(&self) -> &DialectObserver {
        &self.dialect
    }

    /// Closes stdin; the connector must exit 0 and have logged nothing.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let events = self.events();
        assert!(matches!(events.as_slice(), [Event::Poisoned { error, in_flight: None }] if error.code() == "eof"));
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{status}");
        let mut stderr = String::new();
        self.child.stderr.take().expect("piped stderr").read_to_string(&mut stderr).expect("read stderr");
        assert_eq!(stderr, "");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
