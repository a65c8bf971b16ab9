//! End to end: e1000d --sim in the background, every e1000ctl command against it with
//! checked output, a crash injected during traffic with no accepted frame lost, and a
//! clean shutdown.

mod common;

use std::time::{Duration, Instant};

use common::{ctl_at, field, register, temp_path, DaemonProcess};
use e1000_sim::regs::phy::{bmcr, pscr, pssr};
use e1000_sim::regs::{rctl, wuc, wufc};

/// The "Current hardware settings" RX/TX of `-g`.
fn current_rings(out: &str) -> (u32, u32) {
    let cur = out
        .split("Current hardware settings:")
        .nth(1)
        .expect("-g shows current settings");
    let rx = field(cur, "RX:").and_then(|v| v.parse().ok()).expect("RX");
    let tx = field(cur, "TX:").and_then(|v| v.parse().ok()).expect("TX");
    (rx, tx)
}

fn wait_for(d: &DaemonProcess, args: &[&str], want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = d.ok(args);
        if want(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "never got it from {args:?}:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn user_half_pid(d: &DaemonProcess) -> u32 {
    let st = d.ok(&["status"]);
    let line = st
        .lines()
        .find(|l| l.trim_start().starts_with("user half: pid"))
        .expect("status shows the user half");
    line.trim_start()
        .trim_start_matches("user half: pid ")
        .split(',')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a pid in {line:?}"))
}

#[test]
fn every_command_against_a_running_daemon() {
    let mut d = DaemonProcess::start(&["--sim", "--rx-ring", "256", "--tx-ring", "256"]);

    // -i
    let info = d.ok(&["-i"]);
    assert_eq!(field(&info, "driver"), Some("e1000"), "{info}");
    assert_eq!(field(&info, "supports-statistics"), Some("yes"));
    // What ethtool does not show comes only with --e1000-extras.
    assert!(!info.contains("part:"), "{info}");
    let info = d.ok(&["-i", "--e1000-extras"]);
    assert!(info.contains("part: 82540EM"), "{info}");

    // no option: link settings
    let link = wait_for(&d, &[], |o| field(o, "Link detected") == Some("yes"));
    assert_eq!(field(&link, "Speed"), Some("1000Mb/s"), "{link}");
    assert_eq!(field(&link, "Duplex"), Some("Full"));
    assert_eq!(field(&link, "MAC address"), Some("52:54:00:12:34:56"));
    // The model's partner offers every 10/100/1000 mode.
    assert_eq!(
        field(&link, "Link partner advertised link modes"),
        Some("10baseT/Half 10baseT/Full 100baseT/Half 100baseT/Full 1000baseT/Half 1000baseT/Full"),
        "{link}"
    );

    // ping through the hot path
    let ping = d.ok(&["ping", "3"]);
    assert!(
        ping.contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{ping}"
    );

    // -g / -G, seen in the registers too
    assert_eq!(current_rings(&d.ok(&["-g"])), (256, 256));
    d.ok(&["-G", "rx", "512", "tx", "1024"]);
    assert_eq!(current_rings(&d.ok(&["-g"])), (512, 1024));
    let regs = d.ok(&["-d", "--e1000-extras"]);
    assert_eq!(register(&regs, "RDLEN"), 512 * 16, "{regs}");
    assert_eq!(register(&regs, "TDLEN"), 1024 * 16, "{regs}");
    let bad = d.ctl(&["-G", "rx", "13"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("multiple of 8"), "{err}");
    assert_eq!(
        current_rings(&d.ok(&["-g"])),
        (512, 1024),
        "a refused resize changed nothing"
    );

    // -a / -A
    d.ok(&["-A", "rx", "off", "tx", "on"]);
    let pause = d.ok(&["-a"]);
    assert_eq!(field(&pause, "RX"), Some("off"), "{pause}");
    assert_eq!(field(&pause, "TX"), Some("on"), "{pause}");
    assert_eq!(field(&pause, "Autonegotiate"), Some("on"), "{pause}");

    // -c / -C, and the registers they program (RDTR and TIDV count 1.024 us units)
    d.ok(&["-C", "rx-usecs", "50", "tx-usecs", "16"]);
    let c = d.ok(&["-c"]);
    assert_eq!(field(&c, "rx-usecs"), Some("50"), "{c}");
    assert_eq!(field(&c, "tx-usecs"), Some("16"), "{c}");
    let regs = d.ok(&["-d", "--e1000-extras"]);
    assert!(register(&regs, "RDTR") & 0xFFFF > 0, "{regs}");
    let bad = d.ctl(&["-C", "rx-usecs", "99999999"]);
    assert!(!bad.status.success());

    // -e: the MAC address is the EEPROM's first three words
    let ee = d.ok(&["-e", "offset", "0", "length", "16"]);
    assert!(ee.contains("0x0000:\t\t52 54 00 12 34 56"), "{ee}");
    let all = d.ok(&["-e"]);
    assert_eq!(all.lines().count(), 2 + 128 / 16, "{all}");
    assert!(!d
        .ctl(&["-e", "offset", "200", "length", "100"])
        .status
        .success());

    // -d
    // (-A restarted auto-negotiation: STATUS.LU comes back when it completes.)
    let regs = wait_for(&d, &["-d", "--e1000-extras"], |o| {
        register(o, "STATUS") & 0x2 != 0
    });
    for name in ["CTRL", "STATUS", "RCTL", "TCTL", "RDBAL", "TDT", "MANC"] {
        register(&regs, name);
    }
    assert_ne!(
        register(&regs, "RCTL") & 0x2,
        0,
        "receiver enabled (RCTL.EN): {regs}"
    );

    // -S: counters move with traffic
    let before = d.ok(&["-S"]);
    assert!(before.starts_with("NIC statistics:"), "{before}");
    let tx0: u64 = field(&before, "tx_packets")
        .and_then(|v| v.parse().ok())
        .expect("tx_packets");
    d.ok(&["ping", "2"]);
    let after = d.ok(&["-S"]);
    let tx1: u64 = field(&after, "tx_packets")
        .and_then(|v| v.parse().ok())
        .expect("tx_packets");
    assert!(tx1 >= tx0 + 2, "tx_packets {tx0} -> {tx1}");

    // -t offline and online
    let t = d.ok(&["-t", "offline"]);
    assert!(t.starts_with("The test result is PASS"), "{t}");
    assert_eq!(t.lines().filter(|l| l.ends_with(" 0")).count(), 5, "{t}");
    let t = d.ok(&["-t", "online"]);
    assert!(t.starts_with("The test result is PASS"), "{t}");

    // -s: forced 100 Mb/s full duplex, then back to auto-negotiation
    d.ok(&["-s", "speed", "100", "duplex", "full", "autoneg", "off"]);
    let link = wait_for(&d, &[], |o| field(o, "Speed") == Some("100Mb/s"));
    assert_eq!(field(&link, "Auto-negotiation"), Some("off"), "{link}");
    assert!(!d
        .ctl(&["-s", "speed", "1000", "autoneg", "off"])
        .status
        .success());
    d.ok(&["-s", "autoneg", "on"]);
    wait_for(&d, &[], |o| {
        field(o, "Speed") == Some("1000Mb/s") && field(o, "Link detected") == Some("yes")
    });

    // -r
    d.ok(&["-r"]);
    wait_for(&d, &[], |o| field(o, "Link detected") == Some("yes"));

    // -p: the ID LED modes of the model's EEPROM (word 0x04 = 0xFFFF, the defaults) blink
    // LED3 (LEDCTL byte 3 LED_OFF 0x0F / LED_ON 0x0E) with LED2 off (0x0F), alternating
    // for the time given; then LEDCTL is restored.
    let ledctl = register(&d.ok(&["-d", "--e1000-extras"]), "LEDCTL");
    let (mode1, mode2) = (
        (ledctl & 0xFFFF) | 0x0F0F_0000,
        (ledctl & 0xFFFF) | 0x0E0F_0000,
    );
    let started = Instant::now();
    let socket = d.socket.clone();
    let blink = std::thread::spawn(move || ctl_at(&socket, &["-p", "2"]));
    // Identifying has begun once LEDCTL leaves its normal value.
    wait_for(&d, &["-d", "--e1000-extras"], |regs| {
        register(regs, "LEDCTL") != ledctl
    });
    let (mut seen1, mut seen2) = (false, false);
    while started.elapsed() < Duration::from_millis(1700) && !(seen1 && seen2) {
        let during = register(&d.ok(&["-d", "--e1000-extras"]), "LEDCTL");
        assert!(
            during == mode1 || during == mode2,
            "LEDCTL {during:#x} while identifying"
        );
        seen1 |= during == mode1;
        seen2 |= during == mode2;
        std::thread::sleep(Duration::from_millis(40));
    }
    assert!(
        seen1 && seen2,
        "LEDCTL alternated (mode 1 {seen1}, mode 2 {seen2})"
    );
    let out = blink.join().expect("e1000ctl -p");
    assert!(out.status.success(), "{out:?}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(
        register(&d.ok(&["-d", "--e1000-extras"]), "LEDCTL"),
        ledctl,
        "LEDCTL restored"
    );

    // status
    let st = d.ok(&["status"]);
    assert!(st.contains("mode: split, backend: sim"), "{st}");
    assert!(st.contains("restarts 0"), "{st}");
    assert!(st.contains("e1000::ethtool::get_drvinfo"), "{st}");
    assert!(
        st.contains("downcall"),
        "the user half's register access is counted: {st}"
    );

    // A crash during traffic: every accepted frame arrives, the user half comes back.
    let pid = user_half_pid(&d);
    d.ok(&["traffic", "start", "150000"]);
    // The crash lands on a stream that is moving both ways, not after a pause that hopes
    // it is.
    let moving = |out: &str, what: &str| {
        out.split(what)
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    };
    let flowing = wait_for(&d, &["traffic", "status"], |t| {
        moving(t, "tx accepted ") && moving(t, "received in order ")
    });
    assert!(
        !flowing.contains("; lost "),
        "the stream ended before the crash: {flowing}"
    );
    let inj = d.ok(&["inject", "crash"]);
    assert!(inj.contains("restarts 1"), "{inj}");
    let report = d.ok(&["traffic", "wait"]);
    assert!(report.contains("lost 0"), "{report}");
    assert!(
        report.contains("tx accepted 150000 (refused 0), peer received 150000"),
        "{report}"
    );
    assert!(
        report.contains("received in order 150000 (bad 0)"),
        "{report}"
    );
    let new_pid = user_half_pid(&d);
    assert_ne!(pid, new_pid, "a new user half");

    // Configuration works again through the new user half.
    d.ok(&["-G", "rx", "256", "tx", "256"]);
    assert_eq!(current_rings(&d.ok(&["-g"])), (256, 256));
    assert!(d.ok(&["-i"]).contains("driver: e1000"));

    // hang and garbage
    let inj = d.ok(&["inject", "hang"]);
    assert!(inj.contains("hangs 1"), "{inj}");
    // The undecodable reply is one rejected frame; the scribbling may add more.
    let inj = d.ok(&["inject", "garbage"]);
    let rejected: u64 = inj
        .split("rejected frames ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a rejected-frame count in {inj:?}"));
    assert!(rejected >= 1, "{inj}");
    let st = d.ok(&["status"]);
    assert!(
        st.contains("invalid Result tag"),
        "the rejection is reported: {st}"
    );
    assert!(d.ok(&["ping", "2"]).contains("0% packet loss"));

    // The watchdog kept running through all of it.
    let st = d.ok(&["status"]);
    assert!(st.contains("e1000::link::watchdog"), "{st}");

    // Clean shutdown.
    let last_pid = user_half_pid(&d);
    let out = d.ok(&["shutdown"]);
    assert!(out.is_empty(), "{out}");
    let status = d.wait_exit(Duration::from_secs(20)).expect("e1000d exits");
    assert!(status.success(), "{status}\n{}", d.log_text());
    assert!(!d.socket.exists(), "the socket is removed");
    assert!(
        !std::path::Path::new(&format!("/proc/{last_pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{last_pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the user half is gone"
    );
    let log = d.log_text();
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn bad_arguments_get_ethtool_style_errors() {
    let sock = temp_path("nobody");
    for args in [
        &["-G", "rx"][..],
        &["-G", "rx", "many"],
        &["-G", "fast", "1"],
        &["-A", "rx", "maybe"],
        &["-s", "duplex", "quarter"],
        &["-t", "sideways"],
        &["inject", "lightning"],
        &["-i", "-S"],
        &["-i", "status"],
    ] {
        let out = ctl_at(&sock, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("e1000ctl: bad command line argument(s)"),
            "{args:?}: {err}"
        );
    }
    let out = ctl_at(&sock, &["-i"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach e1000d at"), "{err}");
    assert!(err.contains("is e1000d running?"), "{err}");
}

#[test]
fn the_socket_is_private_and_single() {
    let d = DaemonProcess::start(&["--monolithic"]);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&d.socket).expect("socket").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // A second daemon on the same socket refuses to start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_e1000d"))
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .expect("run e1000d");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another e1000d is already listening"), "{err}");
    // Monolithic mode has no user half to inject into, and says so.
    let out = d.ctl(&["inject", "crash"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs the split mode"));
    assert!(d.ok(&["status"]).contains("mode: monolithic"));
    assert!(d.ok(&["ping", "1"]).contains("0% packet loss"));
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut d = DaemonProcess::start(&[]);
    let pid = rustix::process::Pid::from_raw(d.child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = d.wait_exit(Duration::from_secs(20)).expect("e1000d exits");
    assert!(status.success(), "{status}\n{}", d.log_text());
    assert!(!d.socket.exists());
    assert!(d.log_text().contains("signal received"));
}

/// Runs e1000ctl expecting the daemon to refuse: exit 1 and `needles` in the message.
fn refused(d: &DaemonProcess, args: &[&str], needles: &[&str]) {
    let out = d.ctl(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: {n:?} not in {err}");
    }
}

#[test]
fn suspend_and_resume() {
    // Split mode: suspend and resume are upcalls into the sandboxed user half.
    let d = DaemonProcess::start(&["--sim"]);
    wait_for(&d, &[], |o| field(o, "Link detected") == Some("yes"));
    assert!(d.ok(&["status"]).contains("power: running"));

    // The model's EEPROM leaves APM wake-up off: no Wake-on-LAN to start with. Arm a magic
    // packet the way `ethtool -s DEV wol g` does.
    let link = d.ok(&[]);
    assert_eq!(field(&link, "Supports Wake-on"), Some("pumbg"), "{link}");
    assert_eq!(field(&link, "Wake-on"), Some("d"), "{link}");
    d.ok(&["-s", "wol", "g"]);
    assert_eq!(field(&d.ok(&[]), "Wake-on"), Some("g"));

    let out = d.ok(&["suspend"]);
    assert_eq!(
        out,
        "e1000: suspended; interface was up; wake-up armed (Wake-on: g)\n"
    );
    let st = d.ok(&["status"]);
    assert!(st.contains("power: suspended (Wake-on: g)"), "{st}");
    assert!(
        st.contains("; link down"),
        "no carrier while suspended: {st}"
    );
    // The device as pm.rs leaves it (SDM 6.4, 13.6): the magic-packet filter, PME and APM
    // wake-up (with PME# on the 82540), the receiver's DMA off, the PHY kept up for the
    // filters.
    let regs = d.ok(&["-d", "--e1000-extras"]);
    assert_eq!(register(&regs, "WUFC"), wufc::MAG, "{regs}");
    assert_eq!(
        register(&regs, "WUC"),
        wuc::PME_EN | wuc::APME | wuc::APMPME,
        "{regs}"
    );
    assert_eq!(register(&regs, "RCTL") & rctl::EN, 0, "{regs}");
    assert_eq!(
        register(&regs, "PHY_BMCR") & u32::from(bmcr::POWER_DOWN),
        0,
        "{regs}"
    );

    // Reads still work; what would change the device or send frames is refused at once.
    assert!(d.ok(&["-i"]).contains("driver: e1000"));
    let started = Instant::now();
    for args in [
        &["ping", "1"][..],
        &["traffic", "start", "10"],
        &["-G", "rx", "512"],
        &["-s", "speed", "100", "duplex", "full", "autoneg", "off"],
        &["-s", "mdix", "on"],
        &["-A", "rx", "off"],
        &["-C", "rx-usecs", "10"],
        &["-K", "sg", "off"],
        &["-r"],
        &["-p", "1"],
        &["-t", "online"],
    ] {
        refused(&d, args, &["suspended", "e1000ctl resume"]);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refusals do not wait: {:?}",
        started.elapsed()
    );
    refused(&d, &["suspend"], &["suspended", "resume it first"]);
    assert_eq!(
        register(&d.ok(&["-d", "--e1000-extras"]), "WUFC"),
        wufc::MAG,
        "the refused requests left the armed device alone"
    );

    // A magic packet from the peer wakes it: PME_Status set (SDM 13.6.1), and resume
    // reports the magic-packet filter in WUS.
    d.ok(&["wake"]);
    wait_for(&d, &["-d", "--e1000-extras"], |o| {
        register(o, "WUC") & wuc::PME_STATUS != 0
    });

    // Resume: wake-up off again, the interface reopened and traffic flows.
    let out = d.ok(&["resume"]);
    assert_eq!(
        out,
        format!(
            "e1000: resumed; woken by Wake-on g (wake-up status {:#x}); interface reopened\n",
            wufc::MAG
        )
    );
    let regs = d.ok(&["-d", "--e1000-extras"]);
    assert_eq!(register(&regs, "WUFC"), 0, "{regs}");
    assert_eq!(register(&regs, "WUC"), 0, "{regs}");
    assert_ne!(register(&regs, "RCTL") & rctl::EN, 0, "{regs}");
    // The watchdog's view (carrier on), not only STATUS.LU, before frames go out.
    wait_for(&d, &["status"], |o| o.contains("; link up"));
    assert!(d.ok(&["ping", "2"]).contains("0% packet loss"));
    assert!(d.ok(&["status"]).contains("power: running"));
    refused(&d, &["resume"], &["not suspended", "suspend it first"]);
    // The wake modes chosen before survive the cycle.
    assert_eq!(field(&d.ok(&[]), "Wake-on"), Some("g"));

    // Without Wake-on-LAN, suspend powers the PHY down (the 82540EM may) and the link
    // drops; resume powers it up and the link comes back.
    d.ok(&["-s", "wol", "d"]);
    let out = d.ok(&["suspend"]);
    assert!(out.contains("wake-up off (Wake-on: d)"), "{out}");
    let regs = d.ok(&["-d", "--e1000-extras"]);
    assert_eq!(register(&regs, "WUFC"), 0, "{regs}");
    assert_eq!(register(&regs, "WUC"), 0, "{regs}");
    assert_ne!(
        register(&regs, "PHY_BMCR") & u32::from(bmcr::POWER_DOWN),
        0,
        "{regs}"
    );
    wait_for(&d, &[], |o| field(o, "Link detected") == Some("no"));
    // Nothing is armed: a magic packet (which cannot reach a powered-down PHY anyway)
    // wakes nothing.
    d.ok(&["wake"]);
    let out = d.ok(&["resume"]);
    assert_eq!(
        out,
        "e1000: resumed; no wake-up event; interface reopened\n"
    );
    assert_eq!(
        register(&d.ok(&["-d", "--e1000-extras"]), "PHY_BMCR") & u32::from(bmcr::POWER_DOWN),
        0
    );
    wait_for(&d, &["status"], |o| o.contains("; link up"));
    assert!(d.ok(&["ping", "1"]).contains("0% packet loss"));

    // Wake modes the part lacks are the driver's to refuse; bad letters the CLI's.
    refused(
        &d,
        &["-s", "wol", "a"],
        &["arp", "not supported by the 82540EM"],
    );
    let bad = d.ctl(&["-s", "wol", "gx"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("bad command line") && err.contains("'x'"),
        "{err}"
    );
    assert_eq!(field(&d.ok(&[]), "Wake-on"), Some("d"), "nothing changed");
}

/// The PHY's crossover field (PSCR bits 6:5) in a register dump.
fn pscr_crossover(regs: &str) -> u16 {
    register(regs, "PHY_PSCR") as u16 & pscr::MDIX_MASK
}

#[test]
fn mdix_settings_like_ethtool() {
    let d = DaemonProcess::start(&["--sim"]);
    // Automatic crossover by default; against the model's auto-crossover partner the M88
    // resolves to MDI.
    let link = wait_for(&d, &[], |o| field(o, "Link detected") == Some("yes"));
    assert_eq!(field(&link, "MDI-X"), Some("off (auto)"), "{link}");
    assert_eq!(
        pscr_crossover(&d.ok(&["-d", "--e1000-extras"])),
        pscr::AUTO_X_ALL
    );

    // Narrow the advertisement first: a change of mdix alone must keep it.
    d.ok(&["-s", "speed", "100", "duplex", "full", "autoneg", "on"]);
    wait_for(&d, &[], |o| {
        field(o, "Speed") == Some("100Mb/s") && field(o, "Link detected") == Some("yes")
    });

    // mdix on: manual MDI-X in PSCR, and the PHY (PSSR) runs MDI-X.
    d.ok(&["-s", "mdix", "on"]);
    let link = wait_for(&d, &[], |o| field(o, "Link detected") == Some("yes"));
    assert_eq!(field(&link, "MDI-X"), Some("on (forced)"), "{link}");
    assert_eq!(
        field(&link, "Advertised link modes"),
        Some("100baseT/Full"),
        "{link}"
    );
    assert_eq!(field(&link, "Speed"), Some("100Mb/s"), "{link}");
    let regs = d.ok(&["-d", "--e1000-extras"]);
    assert_eq!(pscr_crossover(&regs), pscr::MDIX_MANUAL, "{regs}");
    assert_ne!(register(&regs, "PHY_PSSR") as u16 & pssr::MDIX, 0, "{regs}");

    // mdix off: manual MDI.
    d.ok(&["-s", "mdix", "off"]);
    let link = wait_for(&d, &[], |o| field(o, "Link detected") == Some("yes"));
    assert_eq!(field(&link, "MDI-X"), Some("off (forced)"), "{link}");
    let regs = d.ok(&["-d", "--e1000-extras"]);
    assert_eq!(pscr_crossover(&regs), pscr::MDI_MANUAL, "{regs}");
    assert_eq!(register(&regs, "PHY_PSSR") as u16 & pssr::MDIX, 0, "{regs}");

    // Bad requests: a value that is no setting (the CLI), a fixed crossover with forced
    // speed (the driver: IEEE 802.3 auto-crossover is part of auto-negotiation here, as
    // in Linux's e1000). Neither changes anything.
    let bad = d.ctl(&["-s", "mdix", "sideways"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("mdix takes auto, on (MDI-X) or off (MDI)"),
        "{err}"
    );
    refused(
        &d,
        &[
            "-s", "speed", "100", "duplex", "full", "autoneg", "off", "mdix", "on",
        ],
        &["fixed MDI or MDI-X needs auto-negotiation"],
    );
    let regs = d.ok(&["-d", "--e1000-extras"]);
    assert_eq!(pscr_crossover(&regs), pscr::MDI_MANUAL, "{regs}");
    let link = d.ok(&[]);
    assert_eq!(field(&link, "Auto-negotiation"), Some("on"), "{link}");

    // Back to automatic, with every mode advertised again.
    d.ok(&["-s", "mdix", "auto", "autoneg", "on"]);
    let link = wait_for(&d, &[], |o| {
        field(o, "Link detected") == Some("yes") && field(o, "Speed") == Some("1000Mb/s")
    });
    assert_eq!(field(&link, "MDI-X"), Some("off (auto)"), "{link}");
    assert_eq!(
        pscr_crossover(&d.ok(&["-d", "--e1000-extras"])),
        pscr::AUTO_X_ALL
    );
}

#[test]
fn driver_info_shows_the_pba_number() {
    let d = DaemonProcess::start(&["--sim", "--monolithic"]);
    let info = d.ok(&["-i", "--e1000-extras"]);
    // EEPROM words 0x08 and 0x09 (bytes 16-19, little-endian words) hold the PBA number;
    // the model's board is a C91016-006.
    let ee = d.ok(&["-e", "offset", "16", "length", "4"]);
    assert!(ee.contains("0x0010:\t\t10 c9 06 16"), "{ee}");
    assert_eq!(field(&info, "PBA No"), Some("c91016-006"), "{info}");
}

/// `Features for e1000:` lines as `(name, value and notes)`.
fn feature_lines(out: &str) -> Vec<(String, String)> {
    out.lines()
        .skip_while(|l| !l.starts_with("Features for"))
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn feature_flags_and_stats64() {
    // Split mode: every -k/-K and stats64 is an upcall into the sandboxed user half.
    let d = DaemonProcess::start(&["--sim"]);

    // -k: ethtool's layout and the driver's flags.
    let k = d.ok(&["-k"]);
    assert!(k.starts_with("Features for e1000:\n"), "{k}");
    let names: Vec<String> = feature_lines(&k).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "rx-checksumming",
            "tx-checksumming",
            "scatter-gather",
            "tcp-segmentation-offload",
            "rx-vlan-offload",
            "tx-vlan-offload",
            "rx-vlan-filter",
            "rx-fcs",
            "rx-all"
        ]
    );
    assert_eq!(field(&k, "rx-all"), Some("off [fixed]"), "{k}");
    assert_eq!(field(&k, "rx-fcs"), Some("off"), "{k}");
    assert_eq!(field(&k, "tcp-segmentation-offload"), Some("on"), "{k}");

    // -K sg off takes TSO along: ethtool's "Actual changes".
    let out = d.ok(&["-K", "sg", "off"]);
    assert_eq!(
        out,
        "Actual changes:\nscatter-gather: off\ntcp-segmentation-offload: off [requested on]\n"
    );
    let k = d.ok(&["-k"]);
    assert_eq!(
        field(&k, "tcp-segmentation-offload"),
        Some("off [requested on]")
    );
    // TSO comes back with sg: again more than was asked.
    assert_eq!(
        d.ok(&["-K", "sg", "on"]),
        "Actual changes:\nscatter-gather: on\ntcp-segmentation-offload: on\n"
    );
    // Changed exactly as asked: nothing printed; the registers show it.
    assert_eq!(
        d.ok(&["-K", "rx-fcs", "on", "rxvlan", "off", "txvlan", "off"]),
        ""
    );
    let k = d.ok(&["-k"]);
    assert_eq!(field(&k, "tcp-segmentation-offload"), Some("on"), "{k}");
    assert_eq!(field(&k, "rx-fcs"), Some("on"), "{k}");
    assert_eq!(field(&k, "tx-vlan-offload"), Some("off [fixed]"), "{k}");
    let regs = d.ok(&["-d", "--e1000-extras"]);
    assert_eq!(
        register(&regs, "RCTL") & (1 << 26),
        0,
        "SECRC clear:\n{regs}"
    );
    assert_eq!(register(&regs, "CTRL") & (1 << 30), 0, "VME clear:\n{regs}");

    // Bad requests: the driver's reason, nothing changed.
    for (args, needle) in [
        (&["-K", "warp-drive", "on"][..], "warp-drive"),
        (&["-K", "rx-all", "on"][..], "fixed"),
        (
            &["-K", "tx", "off", "tso", "on"][..],
            "scatter-gather and tx-checksumming",
        ),
    ] {
        let bad = d.ctl(args);
        assert!(!bad.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(d.ok(&["-k"]), k, "refused requests changed nothing");
    let bad = d.ctl(&["-K", "tso", "maybe"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad command line"));

    // stats64: traffic through the hot path shows up in the packet counters.
    wait_for(&d, &[], |o| field(o, "Link detected") == Some("yes"));
    d.ok(&["ping", "2"]);
    let s = d.ok(&["stats64"]);
    let lines: Vec<&str> = s.lines().collect();
    assert!(
        lines[1].trim_start().starts_with("RX:  bytes packets"),
        "{s}"
    );
    let rx: Vec<u64> = lines[2]
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect();
    assert!(rx[1] >= 2, "two echo replies received at least:\n{s}");
    let tx: Vec<u64> = lines[6]
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect();
    assert!(
        tx[1] >= 2 && tx[0] >= 2 * 60,
        "two echo requests sent:\n{s}"
    );
}

/// Kills the user half from outside (as an operator's script would) and waits until a new
/// one is up or the driver degraded; returns `status`.
fn kill_user_half(d: &DaemonProcess) -> String {
    let old = user_half_pid(d);
    // SAFETY: kill(2) on the daemon's child, as `status` reported it.
    assert_eq!(unsafe { libc::kill(old as i32, libc::SIGKILL) }, 0);
    wait_for(d, &["status"], |st| {
        st.contains("degraded yes")
            || st.lines().any(|l| {
                l.trim_start().starts_with("user half: pid ")
                    && !l.contains(&format!("pid {old},"))
                    && !l.contains("pid none")
            })
    })
}

/// A crash loop degrades the driver; `status` says when the next attempt comes, requests
/// that need the user half are refused saying why, and `e1000ctl revive` brings it back at
/// once (before the next attempt, a minute away).
#[test]
fn degraded_then_revived_by_e1000ctl() {
    let d = DaemonProcess::start(&[
        "--max-restarts",
        "1",
        "--restart-window",
        "60s",
        "--revive-backoff",
        "60s",
    ]);
    let first = kill_user_half(&d);
    assert!(first.contains("degraded no"), "{first}");
    let st = kill_user_half(&d);
    let next: u64 = st
        .split("next attempt in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("status says when the next attempt is:\n{st}"));
    assert!((50..=60).contains(&next), "next attempt in {next} s:\n{st}");
    assert!(st.contains("user half: pid none"), "{st}");
    refused(&d, &["-C", "rx-usecs", "50"], &["degraded"]);
    let revived = d.ok(&["revive"]);
    assert!(revived.contains("degraded no"), "{revived}");
    assert!(
        revived.contains("crash loops: degraded 1 times, revived 1 times"),
        "{revived}"
    );
    d.ok(&["-C", "rx-usecs", "50"]);
    refused(&d, &["revive"], &["not degraded"]);
    let log = d.log_text();
    for event in [
        "driver degraded (no user half); next attempt in",
        "degraded driver: trying a user half again (an operator asked (revive))",
        "degraded driver revived: user half pid",
    ] {
        assert!(log.contains(event), "{event:?} not logged:\n{log}");
    }
}
