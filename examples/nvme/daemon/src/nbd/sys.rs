//! The kernel NBD driver's ioctls (include/uapi/linux/nbd.h): the only unsafe code of
//! nvmed. A `/dev/nbdN` is configured with a block size, a size and one end of a socket
//! pair; `NBD_DO_IT` then blocks (in its own thread) while the kernel sends the block
//! device's requests down the socket, until `NBD_DISCONNECT`.

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

const fn io(nr: u32) -> libc::c_ulong {
    (0xab << 8 | nr) as libc::c_ulong
}
const NBD_SET_SOCK: libc::c_ulong = io(0);
const NBD_SET_BLKSIZE: libc::c_ulong = io(1);
const NBD_DO_IT: libc::c_ulong = io(3);
const NBD_CLEAR_SOCK: libc::c_ulong = io(4);
const NBD_CLEAR_QUE: libc::c_ulong = io(5);
const NBD_SET_SIZE_BLOCKS: libc::c_ulong = io(7);
const NBD_DISCONNECT: libc::c_ulong = io(8);
const NBD_SET_TIMEOUT: libc::c_ulong = io(9);
const NBD_SET_FLAGS: libc::c_ulong = io(10);

/// Transmission flags (the NBD protocol's): flags are valid, FLUSH, TRIM and
/// WRITE_ZEROES are sent.
pub const FLAGS: u64 = 1 | 1 << 2 | 1 << 5 | 1 << 6;

/// An open `/dev/nbdN`.
#[derive(Debug)]
pub struct NbdDevice {
    file: File,
    path: PathBuf,
}

fn ioctl(fd: RawFd, req: libc::c_ulong, arg: libc::c_ulong, what: &str) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor this process owns (the caller's `File`), and every
    // request passed here takes its argument by value (an integer or a descriptor number),
    // never as a pointer, so the kernel reads no memory of ours.
    let r = unsafe { libc::ioctl(fd, req as _, arg) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

impl NbdDevice {
    /// Opens the device node.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("{}: {e} (is the nbd module loaded?)", path.display()),
                )
            })?;
        Ok(NbdDevice {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The device node.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the kernel its end of the socket, the geometry and the flags.
    pub fn configure(&self, sock: &impl AsRawFd, block_size: u64, blocks: u64) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        ioctl(fd, NBD_CLEAR_SOCK, 0, "NBD_CLEAR_SOCK")?;
        ioctl(
            fd,
            NBD_SET_BLKSIZE,
            block_size as libc::c_ulong,
            "NBD_SET_BLKSIZE",
        )?;
        ioctl(
            fd,
            NBD_SET_SIZE_BLOCKS,
            blocks as libc::c_ulong,
            "NBD_SET_SIZE_BLOCKS",
        )?;
        ioctl(fd, NBD_SET_FLAGS, FLAGS as libc::c_ulong, "NBD_SET_FLAGS")?;
        // No request timeout: a controller reset holds I/O for as long as it takes.
        ioctl(fd, NBD_SET_TIMEOUT, 0, "NBD_SET_TIMEOUT")?;
        ioctl(
            fd,
            NBD_SET_SOCK,
            sock.as_raw_fd() as libc::c_ulong,
            "NBD_SET_SOCK",
        )
    }

    /// Serves the block device until it is disconnected (blocks).
    pub fn do_it(&self) -> io::Result<()> {
        ioctl(self.file.as_raw_fd(), NBD_DO_IT, 0, "NBD_DO_IT")
    }

    /// Asks the kernel to disconnect (it sends NBD_CMD_DISC; `do_it` returns).
    pub fn disconnect(&self) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        ioctl(fd, NBD_CLEAR_QUE, 0, "NBD_CLEAR_QUE")?;
        ioctl(fd, NBD_DISCONNECT, 0, "NBD_DISCONNECT")
    }

    /// Releases the socket after `do_it` returned.
    pub fn clear(&self) -> io::Result<()> {
        ioctl(self.file.as_raw_fd(), NBD_CLEAR_SOCK, 0, "NBD_CLEAR_SOCK")
    }
}
