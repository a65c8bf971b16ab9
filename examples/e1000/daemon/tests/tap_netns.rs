//! e1000d bridged to a TAP interface, inside a network namespace this test creates: the
//! kernel's own network stack pings the simulated peer (10.0.2.2) through the driver, and
//! keeps being answered while the user half is killed.
//!
//! All traffic stays in the namespace and on the simulated wire: the namespace has only
//! `lo` and the TAP interface, whose only route is 10.0.2.0/24, which is the simulated
//! wire. Needs root, `ip` and /dev/net/tun; without them the test says why and passes,
//! except with `CI=true`, where it fails.

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

use common::DaemonProcess;
use rustix::net::{AddressFamily, SocketType};

const TAP: &str = "e1000tap";
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

fn missing_prerequisite() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("no `ip` command (iproute2)".into()),
    }
}

/// Whether this test can run here (root, `/dev/net/tun`, `ip`). Where it cannot, the test
/// is skipped with a line saying why, except under `CI=true`: in CI a missing
/// prerequisite is a broken runner, not a reason to pass, and this panics.
fn can_run() -> bool {
    let Some(why) = missing_prerequisite() else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true, but this test cannot run: {why} (it needs root, /dev/net/tun and `ip`)"
    );
    eprintln!("skipped: {why}");
    false
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    /// A namespace of its own for the test `tag` (the tests run in parallel).
    fn create(tag: &str) -> Netns {
        let name = format!("e1000d-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Pings `PEER` from inside namespace `ns` through the kernel's stack (a raw ICMP socket
/// made by a thread that entered the namespace), `count` requests `interval` apart; calls
/// `midway` once half of them are answered. Returns how many were answered.
fn ping_in(ns: &str, count: u16, interval: Duration, midway: impl FnOnce() + Send) -> u16 {
    let ns_path = format!("/run/netns/{ns}");
    // The pinger says when half the pings are answered: `midway` runs with traffic
    // flowing, not after a pause that hopes it does.
    let (half, halfway) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let pinger = s.spawn(move || {
            let ns_file = std::fs::File::open(&ns_path).expect("namespace file");
            rustix::thread::move_into_link_name_space(
                ns_file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns into the test namespace");
            let sock = rustix::net::socket(
                AddressFamily::INET,
                SocketType::RAW,
                Some(rustix::net::ipproto::ICMP),
            )
            .expect("raw ICMP socket");
            rustix::net::sockopt::set_socket_timeout(
                &sock,
                rustix::net::sockopt::Timeout::Recv,
                Some(Duration::from_millis(100)),
            )
            .expect("SO_RCVTIMEO");
            let ident = (std::process::id() & 0xFFFF) as u16;
            let mut answered = std::collections::BTreeSet::new();
            for seq in 1..=count {
                let mut msg = vec![8, 0, 0, 0];
                msg.extend_from_slice(&ident.to_be_bytes());
                msg.extend_from_slice(&seq.to_be_bytes());
                msg.extend_from_slice(b"e1000d tap test payload");
                let c = checksum(&msg);
                msg[2..4].copy_from_slice(&c.to_be_bytes());
                rustix::net::sendto(
                    &sock,
                    &msg,
                    rustix::net::SendFlags::empty(),
                    &SocketAddrV4::new(PEER, 0),
                )
                .expect("sendto");
                let deadline = Instant::now() + Duration::from_secs(2);
                let got = loop {
                    let mut buf = [0u8; 1500];
                    if let Ok((n, _)) =
                        rustix::net::recv(&sock, &mut buf, rustix::net::RecvFlags::empty())
                    {
                        let ihl = usize::from(buf[0] & 0xF) * 4;
                        let icmp = &buf[ihl.min(n)..n];
                        if icmp.len() >= 8
                            && icmp[0] == 0
                            && icmp[4..6] == ident.to_be_bytes()
                            && icmp[6..8] == seq.to_be_bytes()
                        {
                            break true;
                        }
                    }
                    if Instant::now() > deadline {
                        break false;
                    }
                };
                if got {
                    answered.insert(seq);
                }
                if answered.len() == usize::from(count / 2) {
                    let _ = half.send(());
                }
                std::thread::sleep(interval);
            }
            answered.len() as u16
        });
        // Never half answered: the pinger ended (and its count says so) without a midway.
        if halfway.recv().is_ok() {
            midway();
        }
        pinger.join().expect("pinger thread")
    })
}

#[test]
fn kernel_stack_pings_the_peer_through_a_tap_interface() {
    if !can_run() {
        return;
    }
    let ns = Netns::create("ping");
    let d = DaemonProcess::start_with(&["ip", "netns", "exec", &ns.0], &["--sim", "--tap", TAP]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    ip(&["-n", &ns.0, "addr", "add", "10.0.2.15/24", "dev", TAP]);
    ip(&["-n", &ns.0, "link", "set", TAP, "up"]);
    let link = Command::new("ip")
        .args(["-n", &ns.0, "link", "show", TAP])
        .output()
        .expect("ip link show");
    let link = String::from_utf8_lossy(&link.stdout).to_string();
    assert!(
        link.contains("52:54:00:12:34:56"),
        "the TAP interface has the NIC's MAC: {link}"
    );

    // Ten pings, all answered.
    let answered = ping_in(&ns.0, 10, Duration::from_millis(50), || {});
    assert_eq!(answered, 10, "daemon log:\n{}", d.log_text());
    let st = d.ok(&["status"]);
    assert!(st.contains(&format!("bridged to TAP {TAP}")), "{st}");

    // Kill the user half during a ping run: every ping is still answered.
    let answered = ping_in(&ns.0, 40, Duration::from_millis(25), || {
        let out = d.ok(&["inject", "crash"]);
        assert!(out.contains("restarts 1"), "{out}");
    });
    assert_eq!(answered, 40, "daemon log:\n{}", d.log_text());

    // The daemon's own stack stays out of the way of the host's.
    let out = d.ctl(&["ping", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TAP"));

    let mut d = d;
    d.ok(&["shutdown"]);
    let status = d.wait_exit(Duration::from_secs(20)).expect("e1000d exits");
    assert!(status.success(), "{status}");
}

/// The value of register `name` in `e1000ctl -d`.
fn reg(d: &DaemonProcess, name: &str) -> u32 {
    common::register(&d.ok(&["-d", "--e1000-extras"]), name)
}

/// Polls `cond` (what the daemon's host-state watcher or watchdog does in the
/// background) until it holds, up to 20 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The TAP's carrier as the namespace's kernel sees it.
fn carrier(ns: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", TAP])
        .output()
        .expect("ip link show");
    let s = String::from_utf8_lossy(&out.stdout);
    !s.contains("NO-CARRIER")
}

/// The host's MTU on the TAP reaches the NIC: MTU 9000 turns on long-packet reception
/// (RCTL.LPE) and receive buffers of 4 KiB (RCTL.BSEX with BSIZE 11), and back; the
/// cable pulled on the simulated wire takes the TAP's carrier away, plugged in gives it
/// back, and pings flow again.
#[test]
fn host_mtu_and_the_wire_reach_the_tap_and_the_nic() {
    if !can_run() {
        return;
    }
    const LPE: u32 = 1 << 5;
    const BSIZE: u32 = 3 << 16;
    const BSEX: u32 = 1 << 25;
    let ns = Netns::create("mtu");
    let d = DaemonProcess::start_with(&["ip", "netns", "exec", &ns.0], &["--sim", "--tap", TAP]);
    ip(&["-n", &ns.0, "addr", "add", "10.0.2.15/24", "dev", TAP]);
    ip(&["-n", &ns.0, "link", "set", TAP, "up"]);
    let rctl = reg(&d, "RCTL");
    assert_eq!(rctl & LPE, 0, "RCTL {rctl:#x} at MTU 1500");

    ip(&["-n", &ns.0, "link", "set", TAP, "mtu", "9000"]);
    wait_until("RCTL.LPE after mtu 9000", || reg(&d, "RCTL") & LPE != 0);
    let rctl = reg(&d, "RCTL");
    assert_eq!(
        rctl & (BSIZE | BSEX),
        BSEX | BSIZE,
        "4 KiB buffers (a 9018-byte frame spans three, as with Linux's e1000 on 4 KiB \
         pages): RCTL {rctl:#x}"
    );
    ip(&["-n", &ns.0, "link", "set", TAP, "mtu", "1500"]);
    wait_until("RCTL.LPE off after mtu 1500", || reg(&d, "RCTL") & LPE == 0);
    let rctl = reg(&d, "RCTL");
    assert_eq!(
        rctl & (BSIZE | BSEX),
        0,
        "2 KiB buffers again: RCTL {rctl:#x}"
    );

    wait_until("carrier on", || carrier(&ns.0));
    d.ok(&["cable", "unplug"]);
    wait_until("TAP carrier off after unplug", || !carrier(&ns.0));
    let link = d.ok(&[]);
    assert!(link.contains("Link detected: no"), "{link}");
    d.ok(&["cable", "plug"]);
    wait_until("TAP carrier on after plug", || carrier(&ns.0));
    let answered = ping_in(&ns.0, 5, Duration::from_millis(50), || {});
    assert_eq!(answered, 5, "daemon log:\n{}", d.log_text());
    let log = d.log_text();
    assert!(
        log.contains("link down: TAP carrier off") && log.contains("link up: TAP carrier on"),
        "{log}"
    );
}

/// `e1000-netbench pin-neighbour` (what the QEMU harness pins the gateway's entry with
/// before a link flap) makes an entry permanent, replaces one, and refuses a bad address.
#[test]
fn pin_neighbour_makes_the_entry_permanent() {
    if !can_run() {
        return;
    }
    let ns = Netns::create("pin");
    ip(&[
        "-n", &ns.0, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
    ]);
    ip(&["-n", &ns.0, "link", "set", "v0", "up"]);
    ip(&["-n", &ns.0, "addr", "add", "10.9.0.1/24", "dev", "v0"]);
    let pin = |mac: &str| {
        Command::new("ip")
            .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_e1000-netbench")])
            .args([
                "pin-neighbour",
                "--dev",
                "v0",
                "--ip",
                "10.9.0.2",
                "--mac",
                mac,
            ])
            .output()
            .expect("running e1000-netbench")
    };
    let neigh = || {
        let out = Command::new("ip")
            .args(["-n", &ns.0, "neigh", "show", "10.9.0.2", "dev", "v0"])
            .output()
            .expect("ip neigh");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    for mac in ["52:54:00:12:34:56", "52:54:00:12:34:57"] {
        let out = pin(mac);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(neigh(), format!("10.9.0.2 lladdr {mac} PERMANENT"));
    }
    let out = pin("52:54:00");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a MAC address"));
    assert_eq!(
        neigh(),
        "10.9.0.2 lladdr 52:54:00:12:34:57 PERMANENT",
        "a refused pin changed nothing"
    );
}
