//! Shared by the end-to-end tests: a real `civitas serve` on a free port of 127.0.0.1,
//! waited for with a deadline and killed when dropped, and a runner for CLI commands.
// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_civitas");

/// The URBEM examples shipped with the repository.
pub const URBEM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/urbem");

/// How long a node may take to become ready.
pub const READY_DEADLINE: Duration = Duration::from_secs(20);

/// How long one CLI command may take.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

/// A running `civitas serve`; killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://addr`.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    log: PathBuf,
    // Holds the data and log directories of servers started with [`Server::start`].
    _temp: Option<tempfile::TempDir>,
}

/// A port nobody listens on right now (it may be taken again before we use it: callers retry).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Server {
    /// A node on a fresh data directory, listening on a free port (`--listen`).
    pub fn start() -> Server {
        let temp = tempfile::tempdir().expect("tempdir");
        let data_dir = temp.path().join("data");
        let mut s = Server::start_in(&data_dir, temp.path(), |cmd, addr| {
            cmd.arg("--listen").arg(addr.to_string());
        });
        s._temp = Some(temp);
        s
    }

    /// A node on `data_dir`, writing its log under `log_dir`; `configure` tells it the address
    /// (a flag, the environment, a config file…) and adds anything else.
    /// Retries with another port when the chosen one was taken meanwhile.
    pub fn start_in(data_dir: &Path, log_dir: &Path, configure: impl Fn(&mut Command, SocketAddr)) -> Server {
        let mut last_log = String::new();
        for attempt in 0..5 {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let log = log_dir.join(format!("serve-{}-{attempt}.log", addr.port()));
            let mut cmd = serve_command(data_dir, &log);
            configure(&mut cmd, addr);
            let child = cmd.spawn().expect("spawn civitas serve");
            let mut server = Server {
                child,
                addr,
                url: format!("http://{addr}"),
                data_dir: data_dir.to_path_buf(),
                log,
                _temp: None,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(log) if log.to_ascii_lowercase().contains("in use") => last_log = log,
                Err(log) => panic!("civitas serve did not become ready at {addr}:\n{log}"),
            }
        }
        panic!("civitas serve found no free port in 5 attempts:\n{last_log}");
    }

    /// One attempt at a node listening on `addr` (chosen by the caller, e.g. because a peer's
    /// configuration names it before it starts); `Err(log)` if it did not become ready.
    pub fn try_start_at(
        data_dir: &Path,
        log_dir: &Path,
        addr: SocketAddr,
        configure: impl Fn(&mut Command, SocketAddr),
    ) -> Result<Server, String> {
        let log = log_dir.join(format!("serve-{}-at.log", addr.port()));
        let mut cmd = serve_command(data_dir, &log);
        configure(&mut cmd, addr);
        let child = cmd.spawn().expect("spawn civitas serve");
        let mut server =
            Server { child, addr, url: format!("http://{addr}"), data_dir: data_dir.to_path_buf(), log, _temp: None };
        server.wait_ready().map(|()| server)
    }

    /// Waits until the node logged `listening on ADDR` and `GET /readyz` answers 200;
    /// `Err(log)` if the process exits or the deadline passes.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            // Our own log line first: another test's node may have taken the port meanwhile,
            // and its /readyz must not pass for ours.
            let listening = self.log().contains(&format!("listening on {}", self.addr));
            if listening && http_status(self.addr, "/readyz") == Some(200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("not ready after {READY_DEADLINE:?}\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the node logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, then reap the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (at most `deadline`) for the process to exit; its exit status.
    pub fn terminate(&mut self, deadline: Duration) -> ExitStatus {
        let sent = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        wait_exit(&mut self.child, deadline).unwrap_or_else(|| {
            self.kill();
            panic!("civitas serve did not exit within {deadline:?} of SIGTERM:\n{}", self.log())
        })
    }

    /// Runs a CLI command against this node.
    pub fn civitas(&self, args: &[&str]) -> Run {
        let mut cmd = civitas_command();
        cmd.arg("--server").arg(&self.url).args(args);
        run(cmd)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `civitas serve --data-dir DIR` with stdout and stderr in `log`, without inherited `CIVITAS_*`.
fn serve_command(data_dir: &Path, log: &Path) -> Command {
    let out = File::create(log).expect("create log file");
    let err = out.try_clone().expect("clone log file");
    let mut cmd = civitas_command();
    cmd.arg("serve").arg("--data-dir").arg(data_dir).stdin(Stdio::null()).stdout(out).stderr(err);
    cmd
}

/// The binary with no `CIVITAS_*` variable from the test's environment.
pub fn civitas_command() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CIVITAS_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The outcome of a finished command.
pub struct Run {
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics with both outputs unless the command succeeded; returns stdout.
    pub fn ok(&self) -> &str {
        assert!(
            self.status.success(),
            "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Panics unless the command exited with `code`; returns stderr.
    pub fn fails_with(&self, code: i32) -> &str {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit code {code}, got {}:\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        &self.stderr
    }
}

/// Runs a command to completion within [`COMMAND_DEADLINE`], capturing its output.
pub fn run(mut cmd: Command) -> Run {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    // Drain both pipes on threads so a chatty command cannot block on a full pipe.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let Some(status) = wait_exit(&mut child, COMMAND_DEADLINE) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not finish within {COMMAND_DEADLINE:?}");
    };
    Run { status, stdout: out.join().expect("stdout thread"), stderr: err.join().expect("stderr thread") }
}

/// Waits for the child to exit, at most `deadline`.
pub fn wait_exit(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The status code of `GET path` on `addr`, or `None` if nothing sensible answered within a second.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}
