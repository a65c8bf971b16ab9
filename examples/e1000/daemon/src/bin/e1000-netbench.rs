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
    /// Makes the neighbour entry of an IPv4 address on an interface permanent, through
    /// rtnetlink (RTM_NEWNEIGH, NUD_PERMANENT, replacing any entry): busybox's `arp -s`
    /// fails in the QEMU guest, and its `ip neigh` only shows and flushes.
    PinNeighbour {
        /// The interface.
        #[arg(long)]
        dev: String,
        /// The neighbour's IPv4 address.
        #[arg(long)]
        ip: std::net::Ipv4Addr,
        /// Its MAC address, `aa:bb:cc:dd:ee:ff`.
        #[arg(long)]
        mac: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let r = match args.cmd {
        Cmd::Sink { port, idle, first } => sink(port, idle, first),
        Cmd::Burst { to, count, size } => burst(to, count, size),
        Cmd::PinNeighbour { dev, ip, mac } => pin_neighbour(&dev, ip, &mac),
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

fn pin_neighbour(dev: &str, ip: std::net::Ipv4Addr, mac: &str) -> std::io::Result<()> {
    use netlink_packet_core::{
        NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE,
        NLM_F_REQUEST,
    };
    use netlink_packet_route::neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
    };
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
    use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let path = format!("/sys/class/net/{dev}/ifindex");
    let ifindex: u32 = std::fs::read_to_string(&path)
        .map_err(|e| bad(format!("{path}: {e} (no interface {dev}?)")))?
        .trim()
        .parse()
        .map_err(|e| bad(format!("{path}: {e}")))?;
    let lladdr = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<Vec<u8>, _>>()
        .ok()
        .filter(|b| b.len() == 6)
        .ok_or_else(|| bad(format!("{mac:?} is not a MAC address (aa:bb:cc:dd:ee:ff)")))?;
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = ifindex;
    msg.header.state = NeighbourState::Permanent;
    msg.attributes = vec![
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)),
        NeighbourAttribute::LinkLayerAddress(lladdr),
    ];
    let mut req = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::from(RouteNetlinkMessage::NewNeighbour(msg)),
    );
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    req.header.sequence_number = 1;
    req.finalize();
    let mut buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut buf);
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    sock.send(&buf, 0)?;
    let mut rx = vec![0u8; 8192];
    let n = sock.recv(&mut &mut rx[..], 0)?;
    let reply: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(&rx[..n])
        .map_err(|e| std::io::Error::other(format!("rtnetlink reply: {e}")))?;
    match reply.payload {
        NetlinkPayload::Error(e) => match e.code {
            None => Ok(()),
            Some(code) => Err(std::io::Error::from_raw_os_error(-code.get())),
        },
        other => Err(std::io::Error::other(format!(
            "rtnetlink answered {other:?}, not an acknowledgement"
        ))),
    }
}
