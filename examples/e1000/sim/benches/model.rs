//! Sustained frame rate of the model under a minimal polling loop (no interrupts, no
//! runtime), for 64-byte and 1514-byte frames. Prints `model_64B_mpps = X` and
//! `model_1514B_mpps = X`: the lower of the transmit-only and receive-only rates, in
//! millions of frames per second.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use e1000_sim::net::stream_frame;
use e1000_sim::regs::txd_cmd;
use e1000_sim::{DmaRegion, PeerConfig, SimConfig, StreamConfig};

const RUN: Duration = Duration::from_millis(1500);

fn config() -> SimConfig {
    SimConfig {
        peer: PeerConfig {
            record: false,
            ..PeerConfig::default()
        },
        ..fast_config()
    }
}

/// Frames the model transmits per second; `len` excludes the FCS.
fn tx_rate(len: usize) -> f64 {
    let mut d = Drv::new(config());
    d.init(0);
    d.wait_link();
    let (peer_mac, _) = d.sim.peer_addr();
    let frame = stream_frame(peer_mac, d.sim.mac(), 0, len);
    for i in 0..d.ntx as usize {
        d.tx_bufs.write(i * BUF, &frame).unwrap();
    }
    let base = d.tx_bufs.bus_addr();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < RUN {
        sent += u64::from(d.reclaim_tx());
        let mut n = 0;
        while d.tx_free() > 0 && n < 128 {
            let a = base + u64::from(d.tx_tail) * BUF as u64;
            d.push_desc(Drv::legacy(
                a,
                len,
                txd_cmd::EOP | txd_cmd::IFCS | txd_cmd::RS,
                0,
                0,
                0,
            ));
            n += 1;
        }
        if n > 0 {
            d.flush_tx();
        } else {
            std::thread::yield_now();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let peer = d.sim.peer_stats().rx_frames;
    assert!(peer >= sent);
    sent as f64 / secs
}

/// Frames the model receives into host memory per second.
fn rx_rate(len: usize) -> f64 {
    let mut d = Drv::new(config());
    d.init(0);
    d.wait_link();
    let mac = d.sim.mac();
    d.sim.peer_start_stream(StreamConfig {
        dst: mac,
        count: u64::MAX,
        sizes: vec![len],
        rate: None,
    });
    let start = Instant::now();
    let mut got = 0u64;
    while start.elapsed() < RUN {
        let mut n = 0;
        while n < 128 {
            // Minimal RX clean: check DD, hand the descriptor back.
            let i = d.rx_next;
            let desc = d.rx_desc(i);
            if desc.status & e1000_sim::regs::rxd_stat::DD == 0 {
                break;
            }
            d.give_rx(i);
            d.rx_next = (i + 1) % d.nrx;
            n += 1;
        }
        if n > 0 {
            got += n;
            let tail = (d.rx_next + d.nrx - 1) % d.nrx;
            d.w(e1000_sim::regs::RDT, tail);
        } else {
            std::thread::yield_now();
        }
    }
    got as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    for (name, len) in [("64B", 60usize), ("1514B", 1514usize)] {
        let tx = tx_rate(len);
        let rx = rx_rate(len);
        println!("model_{name}_tx_mpps = {:.3}", tx / 1e6);
        println!("model_{name}_rx_mpps = {:.3}", rx / 1e6);
        println!("model_{name}_mpps = {:.3}", tx.min(rx) / 1e6);
    }
}
