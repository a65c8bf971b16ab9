//! One process drives a device at a time: an exclusive `flock` on a lock file named for the
//! PCI address, taken before anything touches the device.
//!
//! The lock belongs to the open file description, so it dies with the process however the
//! process ends (a crash, SIGKILL): no stale lock survives its holder. The file records the
//! holder's pid so a second claimant's error can name it; the pid is only a message, the
//! `flock` is the lock (a stale pid in a file nobody locks means nothing). The descriptor is
//! close-on-exec, so a child (the user half) never inherits the claim.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::HalError;

/// The directory of lock files on a real system.
pub const LOCK_DIR: &str = "/run/microdriver";

/// An exclusive claim on one PCI function, held until dropped (or the process dies).
#[derive(Debug)]
pub struct Claim {
    file: File,
    path: PathBuf,
    addr: String,
}

impl Claim {
    /// Claims `addr` (normalised) with a lock file under `dir`, or says who holds it.
    pub fn take(dir: &Path, addr: &str) -> Result<Self, HalError> {
        fs::create_dir_all(dir).map_err(HalError::io("creating the lock directory", dir))?;
        let path = dir.join(format!("{addr}.lock"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(HalError::io("opening the device's lock file", &path))?;
        match flock(file.as_fd(), FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(HalError::Claimed {
                    addr: addr.to_string(),
                    pid: read_pid(&mut file),
                    path,
                })
            }
            Err(e) => {
                return Err(HalError::io("locking the device's lock file", &path)(
                    e.into(),
                ))
            }
        }
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{pid}"))
            .map_err(HalError::io("recording the pid in the lock file", &path))?;
        tracing::debug!(addr, path = %path.display(), pid, "device claimed");
        Ok(Self {
            file,
            path,
            addr: addr.to_string(),
        })
    }

    /// Checks that nobody claims `addr` right now (for tools that change a device's driver
    /// without driving it, such as `microdriver-bind`): takes the claim and gives it back.
    pub fn check_free(dir: &Path, addr: &str) -> Result<(), HalError> {
        Self::take(dir, addr).map(drop)
    }

    /// The claimed address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Empty the pid record first: a reader between our unlock and the next holder's
        // write must not name a process that let go. Closing the file drops the lock.
        let _ = self.file.set_len(0);
    }
}

/// The pid a lock file records, if it holds one.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_names_the_holder_and_the_first_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = Claim::take(dir.path(), "0000:00:03.0").unwrap();
        let recorded = fs::read_to_string(first.path()).unwrap();
        assert_eq!(recorded.trim(), std::process::id().to_string());
        // A second open file description conflicts even in the same process.
        let e = Claim::take(dir.path(), "0000:00:03.0").unwrap_err();
        match &e {
            HalError::Claimed { pid, addr, .. } => {
                assert_eq!(*pid, Some(std::process::id()));
                assert_eq!(addr, "0000:00:03.0");
            }
            other => panic!("unexpected {other}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "{msg}"
        );
        assert!(Claim::check_free(dir.path(), "0000:00:03.0").is_err());
        // Another device is independent.
        let other = Claim::take(dir.path(), "0000:00:04.0").unwrap();
        drop(first);
        let again = Claim::take(dir.path(), "0000:00:03.0").unwrap();
        assert_eq!(again.addr(), "0000:00:03.0");
        drop((again, other));
    }

    #[test]
    fn a_garbled_pid_record_still_refuses_and_says_the_pid_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let held = Claim::take(dir.path(), "0000:00:05.0").unwrap();
        fs::write(held.path(), "not a pid\n").unwrap();
        let e = Claim::take(dir.path(), "0000:00:05.0").unwrap_err();
        assert!(matches!(e, HalError::Claimed { pid: None, .. }), "{e}");
        assert!(e.to_string().contains("pid unknown"), "{e}");
    }

    #[test]
    fn the_claim_dies_with_the_process() {
        // A child process takes the lock with flock(1)-like semantics via our own binary is
        // not available here; a forked holder is: the claim must be free once it exits.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000:00:06.0.lock");
        let mut child = std::process::Command::new("flock")
            .arg(&path)
            .args(["-c", "read _"])
            .stdin(std::process::Stdio::piped())
            .spawn();
        let Ok(child) = child.as_mut() else {
            // flock(1) is util-linux; a machine without it cannot run this check.
            assert!(
                std::env::var_os("CI").is_none(),
                "flock(1) missing under CI"
            );
            return;
        };
        // Wait for the child to hold the lock: our claim fails while it does.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Claim::take(dir.path(), "0000:00:06.0") {
                Err(HalError::Claimed { .. }) => break,
                Ok(c) => drop(c),
                Err(e) => panic!("{e}"),
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the child never locked"
            );
            std::thread::yield_now();
        }
        drop(child.stdin.take());
        child.wait().unwrap();
        Claim::take(dir.path(), "0000:00:06.0").expect("free once the holder exited");
    }
}
