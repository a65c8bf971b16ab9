//! `e1000-netbench`: the guest side of `scripts/qemu-e1000-bench` for what busybox cannot
//! do: count small UDP datagrams (`sink`) and send a burst of them (`burst`).
//!
//! `sink --port P --idle 1s` binds 0.0.0.0:P, counts datagrams until none came for the
//! idle time (after the first), and prints
//! `datagrams N bytes B span_us S pps R` (S: first to last arrival).
//! `burst --to ADDR:PORT --count N --size BYTES` sends N datagrams of BYTES payload bytes
//! as fast as the socket takes them and prints `sent N failed F`.

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

/// Small-datagram counter and sender for the QEMU benchmark.
#[derive(Debug, Parser)]
#[command(name = "e1000-netbench", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Counts the datagrams arriving on a port.
    Sink {
        /// The UDP port.
        #[arg(long)]
        port: u16,
        /// Stop after this long without a datagram (once one came).
        #[arg(long, value_parser = e1000d::format::parse_duration, default_value = "1s")]
        idle: Duration,
        /// Give up if nothing came within this long.
        #[arg(long, value_parser = e1000d::format::parse_duration, default_value = "60s")]
        first: Duration,
    },
    /// Sends a burst of datagrams.
    Burst {
        /// Where to.
        #[arg(long)]
        to: SocketAddr,
        /// How many.
        #[arg(long)]
        count: u64,
        /// Payload bytes of each.
        #[arg(long, default_value_t = 18)]
        size: usize,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let r = match args.cmd {
        Cmd::Sink { port, idle, first } => sink(port, idle, first),
        Cmd::Burst { to, count, size } => burst(to, count, size),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e1000-netbench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sink(port: u16, idle: Duration, first: Duration) -> std::io::Result<()> {
    let sock = UdpSocket::bind(("0.0.0.0", port))?;
    let mut buf = [0u8; 2048];
    let (mut n, mut bytes) = (0u64, 0u64);
    let (mut t_first, mut t_last) = (None, None);
    sock.set_read_timeout(Some(first))?;
    loop {
        match sock.recv(&mut buf) {
            Ok(len) => {
                let now = Instant::now();
                if t_first.is_none() {
                    t_first = Some(now);
                    sock.set_read_timeout(Some(idle))?;
                }
                t_last = Some(now);
                n += 1;
                bytes += len as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let span = match (t_first, t_last) {
        (Some(a), Some(b)) => b.duration_since(a),
        _ => Duration::ZERO,
    };
    let pps = if span.is_zero() {
        0.0
    } else {
        n.saturating_sub(1) as f64 / span.as_secs_f64()
    };
    println!(
        "datagrams {n} bytes {bytes} span_us {} pps {pps:.0}",
        span.as_micros()
    );
    Ok(())
}

fn burst(to: SocketAddr, count: u64, size: usize) -> std::io::Result<()> {
    let sock = UdpSocket::bind(("0.0.0.0", 0))?;
    sock.connect(to)?;
    let mut payload = vec![0u8; size];
    let (mut sent, mut failed) = (0u64, 0u64);
    for i in 0..count {
        let seq = i.to_be_bytes();
        let k = seq.len().min(size);
        payload[..k].copy_from_slice(&seq[seq.len() - k..]);
        match sock.send(&payload) {
            Ok(_) => sent += 1,
            Err(_) => failed += 1,
        }
    }
    println!("sent {sent} failed {failed}");
    Ok(())
}
