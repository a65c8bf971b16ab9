//! The e1000 microdriver demo on the simulated 82540EM.
//!
//! Starts the device model on a simulated wire whose far end answers for 10.0.2.2, starts
//! the driver split in two (the kernel half in this process, the user half in a sandboxed
//! child process under a supervisor), probes the NIC and brings the link up (in the user
//! half), resolves and pings the peer, then runs traffic both ways with a progress line,
//! kills the user half mid-stream, shows that traffic never stopped and the user half came
//! back, and prints the ethtool-style statistics and the microdriver's status.
//!
//! `cargo run --release -p e1000 --bin e1000-demo` (add `-- --monolithic` for the baseline,
//! `-- --frames N` for a longer run).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e1000::netdev::{Netdev, Options};
use e1000::TxPacket;
use e1000_sim::net::{self, check_stream_frame, stream_frame};
use e1000_sim::{PeerConfig, SimConfig, StreamConfig};
use microdriver_rt::component::{run_user_half_if_requested, Supervisor, SupervisorConfig};
use microdriver_rt::lrpc::install_kernel;
use microdriver_rt::tracker::ObjectTracker;

const OUR_IP: [u8; 4] = [10, 0, 2, 15];
const PEER_IP: [u8; 4] = [10, 0, 2, 2];
const SIZES: [usize; 5] = [60, 128, 512, 1024, 1514];

struct Args {
    monolithic: bool,
    frames: u64,
}

fn args() -> Result<Args, String> {
    let mut out = Args {
        monolithic: false,
        frames: 200_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--monolithic" => out.monolithic = true,
            "--frames" => {
                let n = it.next().ok_or("--frames needs a number")?;
                out.frames = n
                    .parse()
                    .map_err(|_| format!("--frames {n}: not a number"))?;
                if out.frames < 1000 {
                    return Err("--frames must be at least 1000".into());
                }
            }
            "-h" | "--help" => {
                println!("usage: e1000-demo [--monolithic] [--frames N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    Ok(out)
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn main() -> ExitCode {
    run_user_half_if_requested();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e1000-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args = args()?;
    let started = Instant::now();
    println!("== e1000 microdriver demo: an 82540EM model on a simulated wire, peer 10.0.2.2");
    let cfg = SimConfig {
        autoneg_time: Duration::from_millis(100),
        peer: PeerConfig::default(),
        ..SimConfig::default()
    };
    let (sim, hw) = e1000::backend::sim::start(cfg).map_err(|e| format!("device model: {e}"))?;

    let supervisor = if args.monolithic {
        println!("mode: monolithic (both halves in this process)");
        None
    } else {
        let supervisor =
            Supervisor::start(SupervisorConfig::default(), Arc::new(ObjectTracker::new()))
                .map_err(|e| format!("starting the user half: {e}"))?;
        install_kernel(supervisor.endpoint().clone());
        println!(
            "mode: split: kernel half pid {}, user half pid {}",
            std::process::id(),
            supervisor.pid().unwrap_or(0)
        );
        Some(supervisor)
    };

    let nd = Netdev::start(hw, Options::default()).map_err(|e| format!("probe: {e}"))?;
    let (ours, variant) = nd.with_adapter(|a| (a.mac, a.info.mac_type));
    println!(
        "probed {variant:?}, MAC {} (from the EEPROM, in the user half)",
        mac(ours)
    );
    nd.open().map_err(|e| format!("open: {e}"))?;
    if !nd.wait_link(Duration::from_secs(10)) {
        return Err("the link did not come up".into());
    }
    let link = nd.with_adapter(|a| a.link);
    println!(
        "link up: {} Mb/s {} duplex",
        link.speed,
        if link.full_duplex { "full" } else { "half" }
    );

    // ARP, then ping, through the hot path.
    let (peer_mac, _) = sim.peer_addr();
    let arp = net::arp(1, ours, OUR_IP, [0; 6], PEER_IP);
    nd.send(&TxPacket::new(arp), Duration::from_secs(2))
        .map_err(|e| format!("send ARP: {e}"))?;
    let reply = wait_for(&nd, |f| {
        net::ethertype(f) == 0x0806 && f.get(21) == Some(&2)
    })
    .ok_or("no ARP reply from 10.0.2.2")?;
    println!(
        "ARP: 10.0.2.2 is at {}",
        mac(reply[22..28].try_into().unwrap_or([0; 6]))
    );
    for seq in 1..=3u16 {
        let sent = Instant::now();
        let ping = net::icmp_echo(
            8,
            ours,
            peer_mac,
            OUR_IP,
            PEER_IP,
            0x4d44,
            seq,
            b"microdriver",
        );
        nd.send(&TxPacket::new(ping), Duration::from_secs(2))
            .map_err(|e| format!("send ping: {e}"))?;
        wait_for(&nd, |f| {
            net::ethertype(f) == 0x0800 && f.get(23) == Some(&1) && f.get(34) == Some(&0)
        })
        .ok_or("no ping reply")?;
        println!(
            "ping 10.0.2.2: seq {seq} answered in {:.3} ms",
            sent.elapsed().as_secs_f64() * 1e3
        );
    }

    // Traffic both ways with a progress line; the user half is killed mid-stream.
    println!(
        "traffic: {} frames each way, sizes {:?}",
        args.frames, SIZES
    );
    sim.peer_start_stream(StreamConfig {
        dst: ours,
        count: args.frames,
        sizes: SIZES.to_vec(),
        rate: None,
    });
    let received = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let rx_thread = {
        let (rx_count, rx_bad, rx_done) = (received.clone(), bad.clone(), done.clone());
        let nd_rx = &nd;
        let frames = args.frames;
        std::thread::scope(|scope| {
            let handle = scope.spawn(move || {
                let mut expected = 0u64;
                while expected < frames && !rx_done.load(Ordering::SeqCst) {
                    let Some(frame) = nd_rx.recv(Duration::from_millis(100)) else {
                        continue;
                    };
                    match check_stream_frame(&frame.data, ours, peer_mac) {
                        Some(seq) if seq == expected => expected += 1,
                        Some(_) | None => {
                            if net::ethertype(&frame.data) != 0x0806 {
                                rx_bad.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                    rx_count.store(expected, Ordering::SeqCst);
                }
            });
            let outcome = transmit(
                &nd,
                &sim,
                supervisor.as_ref(),
                &args,
                ours,
                peer_mac,
                &received,
                &bad,
            );
            done.store(true, Ordering::SeqCst);
            let _ = handle.join();
            outcome
        })
    };
    let (killed, restarted_after) = rx_thread?;
    let rx = received.load(Ordering::SeqCst);
    let peer = sim.peer_stats();
    println!(
        "traffic done in {:.1} s: sent {} (peer received {} good frames), received {} of {} in order, {} bad",
        started.elapsed().as_secs_f64(),
        args.frames,
        peer.rx_frames,
        rx,
        args.frames,
        bad.load(Ordering::SeqCst)
    );
    if let (Some(pid), Some(after)) = (killed, restarted_after) {
        println!("the user half (pid {pid}) was killed mid-stream; a new one answered {after:.1} ms later; no accepted frame was lost");
    }
    if rx != args.frames || bad.load(Ordering::SeqCst) != 0 || peer.rx_frames < args.frames {
        return Err("frames were lost or corrupted".into());
    }

    // ethtool -S, through the (restarted) user half.
    println!("\nNIC statistics:");
    let names = e1000::stats::strings();
    let values = nd
        .with_adapter(e1000::stats::values)
        .map_err(|e| format!("statistics: {e}"))?;
    for (name, value) in names.iter().zip(values) {
        if value != 0 {
            println!("     {name}: {value}");
        }
    }
    if let Some(supervisor) = &supervisor {
        let status = supervisor.status();
        let endpoint = supervisor.endpoint();
        println!("\nmicrodriver status:");
        println!(
            "     user half pid {}, up {:.1} s, restarts {}, hangs {}, degraded {}",
            status.pid.unwrap_or(0),
            status.uptime.as_secs_f64(),
            status.restarts,
            status.hangs,
            status.degraded
        );
        let tracker = endpoint.tracker().stats();
        println!(
            "     tracker: {} objects, {} bytes, {} translations, {} rejections; rejected frames {}",
            tracker.objects,
            tracker.bytes,
            tracker.translations,
            tracker.rejections,
            endpoint.stats().rejected()
        );
        let table = microdriver_rt::lrpc::EntryTable::get();
        let mut calls: Vec<_> = endpoint.stats().entries().into_iter().collect();
        calls.sort_by_key(|(_, c)| std::cmp::Reverse(c.calls));
        for (id, c) in calls.iter().take(12) {
            let name = table
                .lookup(microdriver_rt::lrpc::Served::ByUser, *id)
                .map_or_else(|| format!("{id:#010x}"), |e| e.name.to_string());
            println!(
                "     upcall {name}: {} calls, {} errors, p50 {:?}, p99 {:?}",
                c.calls,
                c.errors,
                c.percentile(0.5),
                c.percentile(0.99)
            );
        }
    }
    nd.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    if let Some(supervisor) = supervisor {
        supervisor.shutdown();
    }
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Sends the stream to the peer with a progress line; kills the user half at 40%.
#[allow(clippy::too_many_arguments)]
fn transmit(
    nd: &Netdev,
    sim: &e1000_sim::E1000Sim,
    supervisor: Option<&Supervisor>,
    args: &Args,
    ours: [u8; 6],
    peer_mac: [u8; 6],
    received: &AtomicU64,
    bad: &AtomicU64,
) -> Result<(Option<u32>, Option<f64>), String> {
    let mut last_print = Instant::now();
    let mut last = (0u64, 0u64);
    let mut killed = None;
    let mut killed_at = None;
    let mut restarted_after = None;
    for seq in 0..args.frames {
        let len = SIZES[(seq % SIZES.len() as u64) as usize];
        let frame = stream_frame(peer_mac, ours, seq, len);
        nd.send(&TxPacket::new(frame), Duration::from_secs(5))
            .map_err(|e| format!("transmit frame {seq}: {e}"))?;
        if seq == args.frames * 2 / 5 {
            if let Some(supervisor) = supervisor {
                killed = supervisor.pid();
                supervisor.kill_user_half();
                killed_at = Some(Instant::now());
                println!(
                    "\n>>> killed the user half (pid {}) with SIGKILL mid-stream",
                    killed.unwrap_or(0)
                );
            }
        }
        if let (Some(supervisor), Some(at), None) = (supervisor, killed_at, restarted_after) {
            if supervisor.pid().is_some_and(|p| Some(p) != killed)
                && supervisor.status().restarts > 0
            {
                let after = at.elapsed().as_secs_f64() * 1e3;
                restarted_after = Some(after);
                println!(
                    ">>> user half restarted as pid {} after {after:.1} ms",
                    supervisor.pid().unwrap_or(0)
                );
            }
        }
        if last_print.elapsed() >= Duration::from_millis(500) {
            let rx = received.load(Ordering::SeqCst);
            let tx_peer = sim.peer_stats().rx_frames;
            let secs = last_print.elapsed().as_secs_f64();
            print!(
                "\r  tx {:>8} ({:>7.0} pkt/s)  rx {:>8} ({:>7.0} pkt/s)  bad {}   ",
                tx_peer,
                (tx_peer - last.0) as f64 / secs,
                rx,
                (rx - last.1) as f64 / secs,
                bad.load(Ordering::SeqCst)
            );
            use std::io::Write;
            let _ = std::io::stdout().flush();
            last = (tx_peer, rx);
            last_print = Instant::now();
        }
    }
    // Let the receive side finish.
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::SeqCst) < args.frames && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if let (Some(supervisor), Some(at), None) = (supervisor, killed_at, restarted_after) {
        if supervisor.wait_restarted(killed, Duration::from_secs(10)) {
            restarted_after = Some(at.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!();
    Ok((killed, restarted_after))
}

/// Receives until a frame matching `want` arrives (others are dropped), for up to 2 s.
fn wait_for(nd: &Netdev, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Some(frame) = nd.recv(Duration::from_millis(50)) {
            if want(&frame.data) {
                return Some(frame.data);
            }
        }
    }
    None
}
