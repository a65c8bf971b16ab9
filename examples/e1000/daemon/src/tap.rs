//! A Linux TAP interface: the host's network stack on one side, the NIC on the other.
//!
//! e1000d opens `/dev/net/tun`, attaches a TAP interface (`IFF_TAP | IFF_NO_PI`: whole
//! Ethernet frames, no packet-info header), and gives it the NIC's MAC address so the NIC's
//! receive filter accepts what the host addresses to it. Bringing the interface up and
//! giving it an address is the administrator's job, as with any NIC
//! (`ip link set NAME up`, `ip addr add ...`).
//!
//! The two `ioctl`s are this crate's only `unsafe` code.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

/// `TUNSETIFF` (`_IOW('T', 202, int)`).
const TUNSETIFF: libc::c_ulong = 0x4004_54CA;
/// Whole Ethernet frames.
const IFF_TAP: libc::c_short = 0x0002;
/// No packet-information header before each frame.
const IFF_NO_PI: libc::c_short = 0x1000;
/// `ARPHRD_ETHER`.
const ARPHRD_ETHER: libc::sa_family_t = 1;

/// Errors opening or using a TAP interface.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// No TUN/TAP support.
    #[error("cannot open /dev/net/tun: {0} (load the tun module: modprobe tun; e1000d needs root or CAP_NET_ADMIN for --tap)")]
    NoTun(std::io::Error),
    /// The name does not fit.
    #[error("TAP interface name {0:?} is not 1 to 15 bytes of [A-Za-z0-9_.-]")]
    BadName(String),
    /// The kernel refused the interface.
    #[error("creating TAP interface {name}: {source}")]
    Create {
        /// The name asked for.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// Setting its MAC address failed.
    #[error("setting the MAC address of {name}: {source}")]
    SetMac {
        /// The interface.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing a frame failed.
    #[error("TAP interface {name}: {source}")]
    Io {
        /// The interface.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// An open TAP interface.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

fn ifreq_named(name: &str) -> Result<libc::ifreq, TapError> {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        return Err(TapError::BadName(name.to_string()));
    }
    // SAFETY: `ifreq` is plain old data (a name array and a union of integers and
    // sockaddrs); all zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

impl Tap {
    /// Creates (or attaches to) the TAP interface `name` and sets its MAC address.
    pub fn open(name: &str, mac: [u8; 6]) -> Result<Self, TapError> {
        let mut req = ifreq_named(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(TapError::NoTun)?;
        req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `req` is, for the duration
        // of the call; `file` is an open descriptor of /dev/net/tun.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) };
        if rc < 0 {
            return Err(TapError::Create {
                name: name.to_string(),
                source: std::io::Error::last_os_error(),
            });
        }
        let tap = Tap {
            file,
            name: name.to_string(),
        };
        tap.set_mac(mac)?;
        Ok(tap)
    }

    fn set_mac(&self, mac: [u8; 6]) -> Result<(), TapError> {
        let err = |source| TapError::SetMac {
            name: self.name.clone(),
            source,
        };
        let mut req = ifreq_named(&self.name)?;
        // SAFETY: all-zero is a valid sockaddr.
        let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
        addr.sa_family = ARPHRD_ETHER;
        for (dst, src) in addr.sa_data.iter_mut().zip(mac) {
            *dst = src as libc::c_char;
        }
        req.ifr_ifru.ifru_hwaddr = addr;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").map_err(err)?;
        // SAFETY: SIOCSIFHWADDR reads one `ifreq`, which `req` is, for the duration of the
        // call; `sock` is an open socket descriptor.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFHWADDR as _, &req) };
        if rc < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits up to `timeout` for a frame from the host and reads it into `buf`; `Ok(None)`
    /// on timeout.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>, TapError> {
        let io = |source| TapError::Io {
            name: self.name.clone(),
            source,
        };
        let fd = self.file.as_fd();
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(io(e.into())),
        }
        match (&self.file).read(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Hands a received frame to the host.
    pub fn send(&self, frame: &[u8]) -> Result<(), TapError> {
        (&self.file)
            .write_all(frame)
            .map_err(|source| TapError::Io {
                name: self.name.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for bad in ["", "a-very-long-interface-name", "tap 0", "tap/0"] {
            assert!(
                matches!(ifreq_named(bad), Err(TapError::BadName(_))),
                "{bad}"
            );
        }
        assert!(ifreq_named("e1000tap").is_ok());
    }
}
