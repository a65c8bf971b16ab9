//! Starting e1000d in the background and running e1000ctl against it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A background e1000d with its own socket.
pub struct DaemonProcess {
    pub child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
}

/// A fresh path under the temp dir for `what`.
pub fn temp_path(what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!("e1000d-{what}-{}-{nanos}", std::process::id()))
}

impl DaemonProcess {
    /// Starts `e1000d --socket SOCK ARGS...` (through `prefix`, e.g. `ip netns exec NS`)
    /// and waits until it serves.
    pub fn start_with(prefix: &[&str], args: &[&str]) -> DaemonProcess {
        let socket = temp_path("sock");
        let log = socket.with_extension("log");
        let log_file = std::fs::File::create(&log).expect("creating the daemon log");
        let exe = env!("CARGO_BIN_EXE_e1000d");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let child = cmd
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawning e1000d");
        let mut d = DaemonProcess { child, socket, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::os::unix::net::UnixStream::connect(&d.socket).is_ok() {
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("e1000d exited at start-up ({status}):\n{}", d.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "e1000d did not serve within 60 s:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn start(args: &[&str]) -> DaemonProcess {
        Self::start_with(&[], args)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs e1000ctl against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        ctl_at(&self.socket, args)
    }

    /// Runs e1000ctl and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "e1000ctl {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}\ndaemon log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits for the daemon to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Runs e1000ctl against `socket`.
pub fn ctl_at(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_e1000ctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("running e1000ctl")
}

/// The value of `key:` in ethtool-style output.
pub fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.trim_start_matches(':').trim())
}

/// A register's value in `-d` output.
pub fn register(out: &str, name: &str) -> u32 {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("{name} in the register dump:\n{out}"));
    let hex = line.split_whitespace().last().expect("value");
    u32::from_str_radix(hex.trim_start_matches("0x"), 16).expect("hex value")
}
