//! A Linux TAP interface: the host's network stack on one side, the NIC on the other.
//!
//! e1000d opens `/dev/net/tun`, attaches a TAP interface (`IFF_TAP | IFF_NO_PI |
//! IFF_VNET_HDR`: whole Ethernet frames, each after a [`VnetHdr`] that carries the
//! checksum and segmentation work the host's stack leaves to the NIC, and the NIC's
//! receive checksum verdict the other way), and gives it the NIC's MAC address so the NIC's
//! receive filter accepts what the host addresses to it. Bringing the interface up and
//! giving it an address is the administrator's job, as with any NIC
//! (`ip link set NAME up`, `ip addr add ...`).
//!
//! The descriptor is non-blocking: the transmit loop waits with `poll` and then reads every
//! frame that is there (up to its batch) without another wait. Frames are read into the
//! spare capacity of the caller's buffers (no zero-filling, no copy in user space) and
//! written from the driver's received frames as they are.
//!
//! The interface's MAC address is set and its carrier switched through the TAP descriptor
//! itself (`SIOCSIFHWADDR`, `TUNSETCARRIER`): no socket, so nothing depends on `lo` being
//! up. These `ioctl`s and the `readv` into a buffer's spare capacity are this crate's only
//! `unsafe` code.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// `TUNSETIFF` (`_IOW('T', 202, int)`).
const TUNSETIFF: libc::c_ulong = 0x4004_54CA;
/// `TUNSETCARRIER` (`_IOW('T', 226, int)`): the interface's carrier on or off.
const TUNSETCARRIER: libc::c_ulong = 0x4004_54E2;
/// `TUNSETOFFLOAD` (`_IOW('T', 208, unsigned int)`): the offloads the reader takes.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54D0;
/// Frames written go through the TAP's NAPI context, i.e. GRO (with the interface's
/// `gro_flush_timeout`, consecutive writes of one TCP flow merge as they do for a NIC).
const IFF_NAPI: libc::c_short = 0x0010;
/// How long GRO holds a merged TCP segment for the next write (`gro_flush_timeout`, ns).
const GRO_FLUSH_NS: u32 = 20_000;
/// A `virtio_net_hdr` before every frame, both ways.
const IFF_VNET_HDR: libc::c_short = 0x4000;
/// `TUNSETOFFLOAD` bits: partial checksums, TCP/IPv4 segmentation.
pub mod offload {
    /// `TUN_F_CSUM`: frames may leave the TCP/UDP checksum to the reader.
    pub const CSUM: u32 = 0x01;
    /// `TUN_F_TSO4`: TCP/IPv4 frames up to 64 KiB, segmented by the reader.
    pub const TSO4: u32 = 0x02;
}
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
    /// Setting the offloads failed.
    #[error("setting the offloads of {name}: {source}")]
    SetOffload {
        /// The interface.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// Switching the carrier failed.
    #[error("setting the carrier of {name}: {source}")]
    SetCarrier {
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
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")
            .map_err(TapError::NoTun)?;
        req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_NAPI;
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
        // Best effort: without it GRO flushes after every write (still correct).
        let knob = format!("/sys/class/net/{name}/gro_flush_timeout");
        if let Err(e) = std::fs::write(&knob, GRO_FLUSH_NS.to_string()) {
            tracing::debug!(error = %e, knob, "cannot set the TAP's GRO flush timeout");
        }
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
        // SAFETY: SIOCSIFHWADDR on a TAP descriptor reads one `ifreq`, which `req` is, for
        // the duration of the call; `self.file` is the open descriptor of the interface.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), libc::SIOCSIFHWADDR as _, &req) };
        if rc < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Switches the interface's carrier (`ip link` shows `NO-CARRIER` while off): the host
    /// stops handing it frames while the NIC's link is down, as it does for a NIC whose
    /// driver calls `netif_carrier_off`.
    pub fn set_carrier(&self, on: bool) -> Result<(), TapError> {
        let v: libc::c_int = on.into();
        // SAFETY: TUNSETCARRIER reads one `int`, which `v` is, for the duration of the
        // call; `self.file` is the open descriptor of the interface.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), TUNSETCARRIER as _, &v) };
        if rc < 0 {
            return Err(TapError::SetCarrier {
                name: self.name.clone(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Waits up to `timeout` for a frame from the host; true when one can be read.
    pub fn wait_readable(&self, timeout: Duration) -> Result<bool, TapError> {
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
            Ok(0) | Err(rustix::io::Errno::INTR) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(self.io(e.into())),
        }
    }

    /// Tells the kernel which offloads this reader handles ([`offload`] bits): frames
    /// asking for others are finished by the host's stack before they reach the TAP.
    pub fn set_offload(&self, bits: u32) -> Result<(), TapError> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned int); no memory
        // is passed; `self.file` is the open descriptor of the interface.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                TUNSETOFFLOAD as _,
                libc::c_ulong::from(bits),
            )
        };
        if rc < 0 {
            return Err(TapError::SetOffload {
                name: self.name.clone(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Reads the next frame from the host without waiting: its header into `hdr`, the
    /// frame into `buf` (cleared first; up to its capacity, the kernel cuts longer ones).
    /// `Ok(false)` when none is queued.
    pub fn try_recv(&self, hdr: &mut VnetHdr, buf: &mut Vec<u8>) -> Result<bool, TapError> {
        buf.clear();
        let mut raw = [0u8; VnetHdr::LEN];
        let spare = buf.spare_capacity_mut();
        let iov = [
            libc::iovec {
                iov_base: raw.as_mut_ptr().cast(),
                iov_len: raw.len(),
            },
            libc::iovec {
                iov_base: spare.as_mut_ptr().cast(),
                iov_len: spare.len(),
            },
        ];
        // SAFETY: both iovecs describe writable memory this function exclusively borrows
        // (`raw`, and `buf`'s spare capacity) for the duration of the call; `self.file` is
        // an open descriptor.
        let n = unsafe { libc::readv(self.file.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(false),
                _ => Err(self.io(e)),
            };
        }
        let n = n as usize;
        if n < VnetHdr::LEN {
            return Err(self.io(std::io::Error::other(format!(
                "a {n}-byte read is shorter than the virtio-net header"
            ))));
        }
        let len = (n - VnetHdr::LEN).min(buf.capacity());
        // SAFETY: the kernel wrote `n` bytes: the header, then `len` bytes of frame into
        // the spare capacity (never more than its length), so `len` bytes are initialized.
        unsafe { buf.set_len(len) };
        *hdr = VnetHdr::parse(&raw);
        Ok(true)
    }

    fn io(&self, source: std::io::Error) -> TapError {
        TapError::Io {
            name: self.name.clone(),
            source,
        }
    }

    /// Hands a received frame to the host, after `hdr` (one `writev`: no copy here).
    pub fn send(&self, hdr: &VnetHdr, frame: &[u8]) -> Result<(), TapError> {
        let raw = hdr.encode();
        let bufs = [std::io::IoSlice::new(&raw), std::io::IoSlice::new(frame)];
        match rustix::io::writev(&self.file, &bufs) {
            Ok(n) if n == raw.len() + frame.len() => Ok(()),
            Ok(n) => Err(self.io(std::io::Error::other(format!(
                "the TAP took {n} of {} bytes",
                raw.len() + frame.len()
            )))),
            Err(e) => Err(self.io(e.into())),
        }
    }
}

/// The `virtio_net_hdr` before each frame on a TAP opened with `IFF_VNET_HDR` (10 bytes,
/// little-endian on the architectures e1000d runs on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// [`VnetHdr::NEEDS_CSUM`], [`VnetHdr::DATA_VALID`].
    pub flags: u8,
    /// [`VnetHdr::GSO_NONE`], [`VnetHdr::GSO_TCPV4`], ... (with [`VnetHdr::GSO_ECN`]).
    pub gso_type: u8,
    /// Length of the headers (a hint).
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts (the L4 header).
    pub csum_start: u16,
    /// Where, after `csum_start`, the checksum goes.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Its size on the wire.
    pub const LEN: usize = 10;
    /// The checksum from `csum_start` to the end is left to the reader.
    pub const NEEDS_CSUM: u8 = 1;
    /// The frame's checksums were verified.
    pub const DATA_VALID: u8 = 2;
    /// Not a GSO frame.
    pub const GSO_NONE: u8 = 0;
    /// TCP over IPv4, to be segmented at `gso_size`.
    pub const GSO_TCPV4: u8 = 1;
    /// The ECN bit of `gso_type`.
    pub const GSO_ECN: u8 = 0x80;

    fn parse(b: &[u8; Self::LEN]) -> Self {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }

    fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_header_round_trips() {
        let h = VnetHdr {
            flags: VnetHdr::NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let raw = h.encode();
        assert_eq!(raw, [1, 1, 54, 0, 0xA8, 5, 34, 0, 16, 0]);
        assert_eq!(VnetHdr::parse(&raw), h);
    }

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
