//! The NBD side: the protocol server that turns the kernel's NBD requests into the
//! driver's block I/O ([`serve`]), and the device setup ([`sys`]).
//!
//! The kernel writes 28-byte requests (magic 0x25609513, flags and type, handle, offset,
//! length; a WRITE's data follows) and reads 16-byte replies (magic 0x67446698, error,
//! handle; a READ's data follows), in any order. Each request is acknowledged only once
//! the controller completed every command it became: an acknowledged write has reached
//! the controller. Requests longer than one command carries are split.

pub mod sys;

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use nvme::{BlockDev, IoOp, NvmeError};
use parking_lot::{Condvar, Mutex};

/// Request magic.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Simple reply magic.
pub const REPLY_MAGIC: u32 = 0x6744_6698;
/// Commands.
pub mod cmd {
    /// Read.
    pub const READ: u16 = 0;
    /// Write.
    pub const WRITE: u16 = 1;
    /// Disconnect.
    pub const DISC: u16 = 2;
    /// Flush.
    pub const FLUSH: u16 = 3;
    /// Trim (discard).
    pub const TRIM: u16 = 4;
    /// Write zeroes.
    pub const WRITE_ZEROES: u16 = 6;
}
const EIO: u32 = 5;
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;
/// Longest request accepted (the kernel's is 32 MiB by default).
pub const MAX_REQUEST: u32 = 64 << 20;

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NbdError {
    /// The socket failed.
    #[error("NBD socket: {0}")]
    Io(#[from] io::Error),
    /// The peer sent something that is not an NBD request.
    #[error("bad NBD request: {0}")]
    Protocol(String),
}

/// Counters of the NBD side.
#[derive(Debug, Default)]
pub struct NbdStats {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Of those, with an error.
    pub errors: AtomicU64,
    /// Bytes read and written.
    pub bytes: AtomicU64,
    /// Nanoseconds from reading requests to writing their replies, summed (divided by
    /// `requests`: the time nvmed and the controller took per request, the rest of a
    /// request's latency is the kernel's NBD driver and the socket).
    pub service_ns: AtomicU64,
    /// Commands the requests became.
    pub commands: AtomicU64,
    /// Nanoseconds from handing a command to the driver to its completion, summed
    /// (divided by `commands`: the driver's and the controller's part of `service_ns`).
    pub driver_ns: AtomicU64,
}

/// A request in progress: its parts complete in any order; the last one replies.
struct Pending {
    handle: [u8; 8],
    since: Instant,
    data: Vec<u8>,
    left: usize,
    error: u32,
}

struct Shared {
    writer: Mutex<UnixStream>,
    outstanding: Mutex<usize>,
    idle: Condvar,
    stats: Arc<NbdStats>,
}

impl Shared {
    fn reply(&self, handle: [u8; 8], since: Instant, error: u32, data: &[u8]) {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&REPLY_MAGIC.to_be_bytes());
        h[4..8].copy_from_slice(&error.to_be_bytes());
        h[8..16].copy_from_slice(&handle);
        let data = if error == 0 { data } else { &[] };
        let mut w = self.writer.lock();
        if let Err(e) = w.write_all(&h).and_then(|()| w.write_all(data)) {
            tracing::warn!(error = %e, "NBD reply not sent");
        }
        drop(w);
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stats.service_ns.fetch_add(ns, Ordering::Relaxed);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if error != 0 {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut n = self.outstanding.lock();
        *n -= 1;
        if *n == 0 {
            self.idle.notify_all();
        }
    }
}

fn errno(e: &NvmeError) -> u32 {
    match e {
        NvmeError::Invalid { .. } => EINVAL,
        _ => EIO,
    }
}

/// One part of a request: (operation, first block, blocks, block offset in the request).
type Part = (IoOp, u64, u32, usize);

/// Splits a request into commands of at most `max_blocks` blocks.
fn parts(op: IoOp, lba: u64, blocks: u64, max_blocks: u64) -> Vec<Part> {
    let mut out = Vec::new();
    let mut done = 0u64;
    while done < blocks {
        let n = (blocks - done).min(max_blocks);
        out.push((op, lba + done, n as u32, done as usize));
        done += n;
    }
    out
}

/// Serves NBD requests from `sock` on `dev` until the peer disconnects (NBD_CMD_DISC or
/// end of stream); returns once every request has been answered.
pub fn serve(dev: Arc<BlockDev>, sock: UnixStream, stats: Arc<NbdStats>) -> Result<(), NbdError> {
    let geo = dev.controller().geometry;
    let shift = u32::from(geo.lba_shift);
    let bs = 1u64 << shift;
    let max_blocks = u64::from(geo.max_pages) * 4096 / bs;
    let shared = Arc::new(Shared {
        writer: Mutex::new(sock.try_clone()?),
        outstanding: Mutex::new(0),
        idle: Condvar::new(),
        stats,
    });
    let mut reader = io::BufReader::new(sock);
    let result = loop {
        let mut h = [0u8; 28];
        match reader.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break Ok(()),
            Err(e) => break Err(e.into()),
        }
        let since = Instant::now();
        let magic = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if magic != REQUEST_MAGIC {
            break Err(NbdError::Protocol(format!("magic {magic:#x}")));
        }
        let kind = u16::from_be_bytes([h[6], h[7]]);
        let mut handle = [0u8; 8];
        handle.copy_from_slice(&h[8..16]);
        let mut b8 = [0u8; 8];
        b8.copy_from_slice(&h[16..24]);
        let from = u64::from_be_bytes(b8);
        let len = u32::from_be_bytes([h[24], h[25], h[26], h[27]]);
        if len > MAX_REQUEST {
            break Err(NbdError::Protocol(format!("length {len}")));
        }
        let mut payload = Vec::new();
        if kind == cmd::WRITE {
            payload = vec![0u8; len as usize];
            if let Err(e) = reader.read_exact(&mut payload) {
                break Err(e.into());
            }
        }
        if kind == cmd::DISC {
            break Ok(());
        }
        *shared.outstanding.lock() += 1;
        let aligned = from % bs == 0 && u64::from(len) % bs == 0;
        let (lba, blocks) = (from >> shift, u64::from(len) >> shift);
        let in_range = lba.checked_add(blocks).is_some_and(|e| e <= geo.blocks);
        let op = match kind {
            cmd::READ => IoOp::Read,
            cmd::WRITE => IoOp::Write,
            cmd::FLUSH => IoOp::Flush,
            cmd::TRIM => IoOp::Discard,
            cmd::WRITE_ZEROES => IoOp::WriteZeroes,
            _ => {
                shared.reply(handle, since, EINVAL, &[]);
                continue;
            }
        };
        if op != IoOp::Flush && (!aligned || !in_range) {
            shared.reply(handle, since, if aligned { ENOSPC } else { EINVAL }, &[]);
            continue;
        }
        let list = match op {
            IoOp::Flush => vec![(IoOp::Flush, 0, 0, 0)],
            IoOp::Read | IoOp::Write => parts(op, lba, blocks, max_blocks),
            IoOp::WriteZeroes => parts(op, lba, blocks, 0x1_0000),
            IoOp::Discard => parts(op, lba, blocks, u64::from(u32::MAX)),
        };
        if list.is_empty() {
            shared.reply(handle, since, 0, &[]);
            continue;
        }
        shared
            .stats
            .bytes
            .fetch_add(u64::from(len), Ordering::Relaxed);
        let pending = Arc::new(Mutex::new(Pending {
            handle,
            since,
            data: if op == IoOp::Read {
                vec![0u8; len as usize]
            } else {
                Vec::new()
            },
            left: list.len(),
            error: 0,
        }));
        for (op, lba, n, first) in list {
            let (off, bytes) = (first << shift, (n as usize) << shift);
            let data = if op == IoOp::Write {
                payload[off..off + bytes].to_vec()
            } else {
                Vec::new()
            };
            let (p, s) = (Arc::clone(&pending), Arc::clone(&shared));
            let submitted = Instant::now();
            dev.submit(op, lba, n, data, move |r| {
                let ns = u64::try_from(submitted.elapsed().as_nanos()).unwrap_or(u64::MAX);
                s.stats.driver_ns.fetch_add(ns, Ordering::Relaxed);
                s.stats.commands.fetch_add(1, Ordering::Relaxed);
                let mut g = p.lock();
                match r {
                    Ok(d) if op == IoOp::Read && d.len() == bytes => {
                        g.data[off..off + bytes].copy_from_slice(&d)
                    }
                    Ok(_) if op == IoOp::Read => g.error = EIO,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, lba, "NBD request part failed");
                        g.error = errno(&e);
                    }
                }
                g.left -= 1;
                if g.left == 0 {
                    let (handle, error, data) = (g.handle, g.error, std::mem::take(&mut g.data));
                    let since = g.since;
                    drop(g);
                    s.reply(handle, since, error, &data);
                }
            });
        }
    };
    let mut n = shared.outstanding.lock();
    while *n > 0 {
        shared.idle.wait(&mut n);
    }
    result
}
