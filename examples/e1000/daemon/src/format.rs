//! Output in ethtool's layout (what `e1000ctl` prints and the demo shows).

use std::fmt::Write as _;
use std::time::Duration;

use e1000::phy::{ETH_TP_MDI, ETH_TP_MDI_AUTO, ETH_TP_MDI_X};
use e1000::wol::{
    WAKE_ARP, WAKE_BCAST, WAKE_FILTER, WAKE_MAGIC, WAKE_MAGICSECURE, WAKE_MCAST, WAKE_PHY,
    WAKE_UCAST,
};

use crate::protocol::{
    Coalesce, DrvInfo, FeatureChange, FeatureFlag, LinkInfo, NetStats, Pause, PingReport, Register,
    ResumeReport, Rings, Status, SuspendReport, TestResult, TrafficReport,
};

/// ethtool's Wake-on-LAN letters, in the order it prints them.
const WOL_LETTERS: [(u32, char); 8] = [
    (WAKE_PHY, 'p'),
    (WAKE_UCAST, 'u'),
    (WAKE_MCAST, 'm'),
    (WAKE_BCAST, 'b'),
    (WAKE_ARP, 'a'),
    (WAKE_MAGIC, 'g'),
    (WAKE_MAGICSECURE, 's'),
    (WAKE_FILTER, 'f'),
];

/// Wake-on-LAN modes as ethtool's letters (`pumbg`), `d` for none.
pub fn wol_letters(bits: u32) -> String {
    let s: String = WOL_LETTERS
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect();
    if s.is_empty() {
        "d".into()
    } else {
        s
    }
}

/// Parses ethtool's `wol` letters (`-s DEV wol pumbg`; `d` alone turns wake-up off) into
/// `WAKE_*` bits. Whether the part supports them is the driver's to say.
pub fn parse_wol(letters: &str) -> Result<u32, String> {
    if letters == "d" {
        return Ok(0);
    }
    if letters.is_empty() {
        return Err("wol takes letters from pumbagsf, or d to disable".into());
    }
    letters.chars().try_fold(0, |acc, c| {
        match WOL_LETTERS.iter().find(|(_, l)| *l == c) {
            Some((bit, _)) => Ok(acc | bit),
            None if c == 'd' => Err("wol: d (disable) cannot be combined with modes".into()),
            None => Err(format!(
                "wol: unknown mode {c:?} (p phy, u unicast, m multicast, b broadcast, \
                 a arp, g magic, s magicsecure, f filter, d disable)"
            )),
        }
    })
}

/// ethtool's `MDI-X:` value: a fixed setting is shown as forced; otherwise the resolved
/// state (Unknown with no link), with `(auto)` for automatic crossover.
pub fn mdix(resolved: u8, ctrl: u8) -> String {
    match ctrl {
        ETH_TP_MDI => "off (forced)".into(),
        ETH_TP_MDI_X => "on (forced)".into(),
        _ => {
            let state = match resolved {
                ETH_TP_MDI => "off",
                ETH_TP_MDI_X => "on",
                _ => "Unknown",
            };
            if ctrl == ETH_TP_MDI_AUTO {
                format!("{state} (auto)")
            } else {
                state.into()
            }
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// `ethtool -i`: exactly ethtool's lines.
pub fn drvinfo(d: &DrvInfo) -> String {
    format!(
        "driver: {}\nversion: {}\nfirmware-version: N/A\nexpansion-rom-version: \nbus-info: {}\n\
         supports-statistics: yes\nsupports-test: yes\nsupports-eeprom-access: yes\n\
         supports-register-dump: yes\nsupports-priv-flags: no\n",
        d.driver, d.version, d.bus_info,
    )
}

/// What `e1000ctl -i --e1000-extras` adds after ethtool's lines: the part and the board's
/// PBA number (Linux's e1000 logs them at probe; ethtool does not show them).
pub fn drvinfo_extras(d: &DrvInfo) -> String {
    format!(
        "part: {}\nPBA No: {}\n",
        d.part,
        if d.pba.is_empty() { "N/A" } else { &d.pba }
    )
}

/// `ethtool DEVNAME`.
pub fn link(dev: &str, l: &LinkInfo) -> String {
    let mut s = format!("Settings for {dev}:\n");
    let list = |modes: &[String]| {
        if modes.is_empty() {
            "Not reported".to_string()
        } else {
            modes.join(" ")
        }
    };
    let _ = writeln!(s, "\tSupported ports: [ TP ]");
    let _ = writeln!(s, "\tSupported link modes:   {}", list(&l.supported));
    let _ = writeln!(s, "\tSupports auto-negotiation: Yes");
    let _ = writeln!(s, "\tAdvertised link modes:  {}", list(&l.advertised));
    let _ = writeln!(
        s,
        "\tAdvertised auto-negotiation: {}",
        if l.autoneg { "Yes" } else { "No" }
    );
    let _ = writeln!(
        s,
        "\tLink partner advertised link modes:  {}",
        list(&l.lp_advertised)
    );
    let lp_pause = match (l.lp_pause, l.lp_asym_pause) {
        (true, true) => "Symmetric Receive-only",
        (true, false) => "Symmetric",
        (false, true) => "Transmit-only",
        (false, false) => "No",
    };
    let _ = writeln!(s, "\tLink partner advertised pause frame use: {lp_pause}");
    let _ = writeln!(
        s,
        "\tLink partner advertised auto-negotiation: {}",
        if l.lp_autoneg { "Yes" } else { "No" }
    );
    if l.link_up {
        let _ = writeln!(s, "\tSpeed: {}Mb/s", l.speed);
        let _ = writeln!(
            s,
            "\tDuplex: {}",
            if l.full_duplex { "Full" } else { "Half" }
        );
    } else {
        let _ = writeln!(s, "\tSpeed: Unknown!");
        let _ = writeln!(s, "\tDuplex: Unknown! (255)");
    }
    let _ = writeln!(s, "\tPort: Twisted Pair");
    let _ = writeln!(s, "\tTransceiver: internal");
    let _ = writeln!(s, "\tAuto-negotiation: {}", on_off(l.autoneg));
    let _ = writeln!(s, "\tMDI-X: {}", mdix(l.mdix, l.mdix_ctrl));
    let _ = writeln!(s, "\tSupports Wake-on: {}", wol_letters(l.wol_supported));
    let _ = writeln!(s, "\tWake-on: {}", wol_letters(l.wol));
    let _ = writeln!(s, "\tMAC address: {}", mac(l.mac));
    let _ = writeln!(
        s,
        "\tLink detected: {}",
        if l.link_up { "yes" } else { "no" }
    );
    s
}

/// What `e1000ctl suspend` prints.
pub fn suspended(dev: &str, r: &SuspendReport) -> String {
    let wake = if r.wake_on == 0 {
        "wake-up off (Wake-on: d), PHY powered down where the part allows".to_string()
    } else {
        format!("wake-up armed (Wake-on: {})", wol_letters(r.wake_on))
    };
    format!(
        "{dev}: suspended; interface was {}; {wake}\n",
        if r.was_up { "up" } else { "down" }
    )
}

/// What `e1000ctl resume` prints: what woke the device, if a wake-up filter matched.
pub fn resumed(dev: &str, r: &ResumeReport) -> String {
    let woken = if r.wake_status == 0 {
        "no wake-up event".to_string()
    } else if r.woken_by == 0 {
        format!("wake-up status {:#x}", r.wake_status)
    } else {
        format!(
            "woken by Wake-on {} (wake-up status {:#x})",
            wol_letters(r.woken_by),
            r.wake_status
        )
    };
    format!(
        "{dev}: resumed; {woken}; interface {}\n",
        if r.reopened {
            "reopened"
        } else {
            "left down (it was down at suspend)"
        }
    )
}

/// `ethtool -S`.
pub fn stats(stats: &[(String, u64)]) -> String {
    let mut s = String::from("NIC statistics:\n");
    for (name, value) in stats {
        let _ = writeln!(s, "     {name}: {value}");
    }
    s
}

/// One flag as `ethtool -k` prints it: `name: on`, with ` [fixed]` or
/// ` [requested on]` / ` [requested off]`.
fn feature_line(f: &FeatureFlag) -> String {
    let note = if f.fixed {
        " [fixed]".to_string()
    } else if f.requested != f.on {
        format!(" [requested {}]", on_off(f.requested))
    } else {
        String::new()
    };
    format!("{}: {}{note}\n", f.name, on_off(f.on))
}

/// `ethtool -k`.
pub fn features(dev: &str, flags: &[FeatureFlag]) -> String {
    let mut s = format!("Features for {dev}:\n");
    for f in flags {
        s.push_str(&feature_line(f));
    }
    s
}

/// What `ethtool -K` prints: nothing when the flags changed exactly as asked; else
/// "Actual changes:" and every flag whose value changed (a dependency took a flag along,
/// or brought a requested one back).
pub fn feature_changes(
    requested: &[FeatureChange],
    before: &[FeatureFlag],
    after: &[FeatureFlag],
) -> String {
    let changed: Vec<&FeatureFlag> = after
        .iter()
        .filter(|a| before.iter().any(|b| b.name == a.name && b.on != a.on))
        .collect();
    // A flag changed as asked if it was named (by the same name the driver lists) and now
    // has the asked value; short names count as asked when the flag moved the right way.
    let as_asked = |f: &FeatureFlag| {
        requested
            .iter()
            .any(|r| r.on == f.on && (r.name == f.name || short_name(&f.name) == Some(&r.name)))
    };
    if changed.iter().all(|f| as_asked(f)) {
        return String::new();
    }
    let mut s = String::from("Actual changes:\n");
    for f in changed {
        s.push_str(&feature_line(f));
    }
    s
}

/// ethtool's short name for a feature (`-K rx off`), if it has one.
fn short_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "rx-checksumming" => "rx",
        "tx-checksumming" => "tx",
        "scatter-gather" => "sg",
        "tcp-segmentation-offload" => "tso",
        "rx-vlan-offload" => "rxvlan",
        "tx-vlan-offload" => "txvlan",
        _ => return None,
    })
}

/// `e1000ctl stats64`: the net-device statistics in `ip -s -s link`'s layout.
pub fn stats64(n: &NetStats) -> String {
    let row = |cells: &[u64]| {
        let mut line = String::from("    ");
        for (i, c) in cells.iter().enumerate() {
            let width = if i == 0 { 10 } else { 8 };
            let _ = write!(line, "{c:>width$}");
        }
        line.push('\n');
        line
    };
    let mut s = String::new();
    s.push_str("    RX:  bytes packets  errors dropped  missed   mcast\n");
    s.push_str(&row(&[
        n.rx_bytes,
        n.rx_packets,
        n.rx_errors,
        n.rx_dropped,
        n.rx_missed_errors,
        n.multicast,
    ]));
    s.push_str("    RX errors:  length     crc   frame\n");
    s.push_str(&row(&[
        n.rx_length_errors,
        n.rx_crc_errors,
        n.rx_frame_errors,
    ]));
    s.push_str("    TX:  bytes packets  errors dropped carrier collsns\n");
    s.push_str(&row(&[
        n.tx_bytes,
        n.tx_packets,
        n.tx_errors,
        n.tx_dropped,
        n.tx_carrier_errors,
        n.collisions,
    ]));
    s.push_str("    TX errors: aborted  window\n");
    s.push_str(&row(&[n.tx_aborted_errors, n.tx_window_errors]));
    s
}

/// `ethtool -g`.
pub fn rings(dev: &str, r: &Rings) -> String {
    format!(
        "Ring parameters for {dev}:\nPre-set maximums:\nRX:\t\t{}\nRX Mini:\tn/a\nRX Jumbo:\tn/a\nTX:\t\t{}\n\
         Current hardware settings:\nRX:\t\t{}\nRX Mini:\tn/a\nRX Jumbo:\tn/a\nTX:\t\t{}\n",
        r.rx_max, r.tx_max, r.rx, r.tx
    )
}

/// `ethtool -a`: the settings and, with pause auto-negotiated and a link partner that
/// advertised its abilities, what was resolved (`lp`: the partner's PAUSE and
/// asymmetric-PAUSE bits), then a blank line.
pub fn pause(dev: &str, p: &Pause, lp: Option<(bool, bool)>) -> String {
    let mut s = format!(
        "Pause parameters for {dev}:\nAutonegotiate:\t{}\nRX:\t\t{}\nTX:\t\t{}\n",
        on_off(p.autoneg),
        on_off(p.rx),
        on_off(p.tx)
    );
    if let (true, Some((peer_pause, peer_asym))) = (p.autoneg, lp) {
        // What this side advertises for its settings (IEEE 802.3 Annex 28B), then the
        // resolution both sides make from the two advertisements.
        let (our_pause, our_asym) = (p.rx, p.rx != p.tx);
        let (rx, tx) = if our_pause && peer_pause {
            (true, true)
        } else if our_asym && peer_asym {
            (our_pause, !our_pause && peer_pause)
        } else {
            (false, false)
        };
        let _ = write!(
            s,
            "RX negotiated: {}\nTX negotiated: {}\n",
            on_off(rx),
            on_off(tx)
        );
    }
    s.push('\n');
    s
}

/// `ethtool -c` (ethtool 6.1's layout; the e1000 has no frame counts, per-IRQ timers or
/// rate bands: `n/a`). rx-usecs and tx-usecs are the receive and transmit delay timers
/// (RDTR, TIDV).
pub fn coalesce(dev: &str, c: &Coalesce) -> String {
    format!(
        "Coalesce parameters for {dev}:\nAdaptive RX: {}  TX: n/a\n\
         stats-block-usecs: n/a\nsample-interval: n/a\npkt-rate-low: n/a\npkt-rate-high: n/a\n\n\
         rx-usecs: {}\nrx-frames: n/a\nrx-usecs-irq: n/a\nrx-frames-irq: n/a\n\n\
         tx-usecs: {}\ntx-frames: n/a\ntx-usecs-irq: n/a\ntx-frames-irq: n/a\n\n\
         rx-usecs-low: n/a\nrx-frame-low: n/a\ntx-usecs-low: n/a\ntx-frame-low: n/a\n\n\
         rx-usecs-high: n/a\nrx-frame-high: n/a\ntx-usecs-high: n/a\ntx-frame-high: n/a\n\n\
         CQE mode RX: n/a  TX: n/a\n\n",
        on_off(c.adaptive),
        c.rx_usecs,
        c.tx_usecs,
    )
}

/// What `e1000ctl -c --e1000-extras` adds: the e1000's absolute delay timers (RADV,
/// TADV) and its interrupt rate limit (ITR), which ethtool has no lines for.
pub fn coalesce_extras(c: &Coalesce) -> String {
    format!(
        "rx-usecs-abs: {}\ntx-usecs-abs: {}\nrate-limit: {}\n",
        c.rx_usecs_abs, c.tx_usecs_abs, c.max_irq_rate
    )
}

/// `ethtool -e`: sixteen bytes per line.
pub fn eeprom(offset: u32, data: &[u8]) -> String {
    let mut s = String::from("Offset\t\tValues\n------\t\t------");
    for (i, b) in data.iter().enumerate() {
        let at = offset as usize + i;
        if i == 0 || at.is_multiple_of(16) {
            let _ = write!(s, "\n0x{at:04x}:\t\t");
        }
        let _ = write!(s, "{b:02x} ");
    }
    s.push('\n');
    s
}

/// `ethtool -d`: the registers ethtool decodes for an 8254x (CTRL, STATUS, RCTL, the
/// receive and transmit ring registers, TCTL, the M88 PHY's status and control), laid out
/// as it prints them: a header per register with its value in column 41, its fields
/// indented below. A register the dump lacks is left out.
pub fn regs(regs: &[Register]) -> String {
    let get = |name: &str| regs.iter().find(|r| r.name == name).map(|r| r.value);
    let mut s = String::from("MAC Registers\n-------------\n");
    let reg = |s: &mut String,
               name: &str,
               title: &str,
               fields: &dyn Fn(u32) -> Vec<(&'static str, String)>| {
        let Some(v) = get(name) else { return };
        let _ = writeln!(s, "{title:<41}0x{v:08X}");
        for (label, value) in fields(v) {
            let _ = writeln!(s, "      {label:<35}{value}");
        }
    };
    let none = |_| Vec::new();
    reg(
        &mut s,
        "CTRL",
        "0x00000: CTRL (Device control register)",
        &ctrl_fields,
    );
    reg(
        &mut s,
        "STATUS",
        "0x00008: STATUS (Device status register)",
        &status_fields,
    );
    reg(
        &mut s,
        "RCTL",
        "0x00100: RCTL (Receive control register)",
        &rctl_fields,
    );
    reg(
        &mut s,
        "RDLEN",
        "0x02808: RDLEN (Receive desc length)",
        &none,
    );
    reg(&mut s, "RDH", "0x02810: RDH   (Receive desc head)", &none);
    reg(&mut s, "RDT", "0x02818: RDT   (Receive desc tail)", &none);
    reg(
        &mut s,
        "RDTR",
        "0x02820: RDTR  (Receive delay timer)",
        &none,
    );
    reg(
        &mut s,
        "TCTL",
        "0x00400: TCTL (Transmit ctrl register)",
        &tctl_fields,
    );
    reg(
        &mut s,
        "TDLEN",
        "0x03808: TDLEN (Transmit desc length)",
        &none,
    );
    reg(&mut s, "TDH", "0x03810: TDH   (Transmit desc head)", &none);
    reg(&mut s, "TDT", "0x03818: TDT   (Transmit desc tail)", &none);
    reg(
        &mut s,
        "TIDV",
        "0x03820: TIDV  (Transmit delay timer)",
        &none,
    );
    if get("PHY_PSSR").is_some() {
        let _ = writeln!(s, "{:<41}M88", "PHY type:");
    }
    reg(&mut s, "PHY_PSSR", "M88 PHY STATUS REGISTER:", &pssr_fields);
    reg(
        &mut s,
        "PHY_PSCR",
        "M88 PHY CONTROL REGISTER:",
        &pscr_fields,
    );
    s
}

/// `-d --e1000-extras`: after ethtool's lines, every word of the dump, named.
pub fn regs_extras(regs: &[Register]) -> String {
    let mut s = String::from("\nAll registers of the dump\n-------------------------\n");
    for r in regs {
        let _ = writeln!(s, "0x{:05x}:\t{:<8}\t0x{:08x}", r.offset, r.name, r.value);
    }
    s
}

/// `yes` if any bit of `mask` is set in `v`, else `no`.
fn bit(v: u32, mask: u32, yes: &str, no: &str) -> String {
    (if v & mask != 0 { yes } else { no }).to_string()
}

fn enabled(v: u32, mask: u32) -> String {
    bit(v, mask, "enabled", "disabled")
}

fn ctrl_fields(v: u32) -> Vec<(&'static str, String)> {
    let speed = match v & 0x300 {
        0x000 => "10Mb/s",
        0x100 => "100Mb/s",
        0x200 => "1000Mb/s",
        _ => "not used",
    };
    vec![
        ("Endian mode (buffers):", bit(v, 1 << 1, "big", "little")),
        ("Link reset:", bit(v, 1 << 3, "reset", "normal")),
        ("Set link up:", bit(v, 1 << 6, "1", "0")),
        ("Invert Loss-Of-Signal:", bit(v, 1 << 7, "yes", "no")),
        ("Receive flow control:", enabled(v, 1 << 27)),
        ("Transmit flow control:", enabled(v, 1 << 28)),
        ("VLAN mode:", enabled(v, 1 << 30)),
        ("Auto speed detect:", enabled(v, 1 << 5)),
        ("Speed select:", speed.to_string()),
        ("Force speed:", bit(v, 1 << 11, "yes", "no")),
        ("Force duplex:", bit(v, 1 << 12, "yes", "no")),
    ]
}

/// STATUS as ethtool decodes it for the conventional-PCI and PCI-X parts (82540 to 82547).
fn status_fields(v: u32) -> Vec<(&'static str, String)> {
    let speed = match v & 0xC0 {
        0x00 => "10Mb/s",
        0x40 => "100Mb/s",
        0x80 => "1000Mb/s",
        _ => "not used",
    };
    let pcix = v & (1 << 13) != 0;
    let bus_speed = match (pcix, v & 0xC000) {
        (true, 0x8000) => "133MHz",
        (true, 0x4000) => "100MHz",
        (true, _) => "66MHz",
        (false, _) if v & (1 << 11) != 0 => "66MHz",
        (false, _) => "33MHz",
    };
    vec![
        ("Duplex:", bit(v, 1, "full", "half")),
        ("Link up:", bit(v, 1 << 1, "link config", "no link config")),
        ("TBI mode:", enabled(v, 1 << 5)),
        ("Link speed:", speed.to_string()),
        (
            "Bus type:",
            (if pcix { "PCI-X" } else { "PCI" }).to_string(),
        ),
        ("Bus speed:", bus_speed.to_string()),
        ("Bus width:", bit(v, 1 << 12, "64-bit", "32-bit")),
    ]
}

fn rctl_fields(v: u32) -> Vec<(&'static str, String)> {
    let threshold = match v & 0x300 {
        0x000 => "1/2",
        0x100 => "1/4",
        0x200 => "1/8",
        _ => "reserved",
    };
    let size = match (v & (1 << 25) != 0, v & 0x3_0000) {
        (false, 0x0_0000) => "2048",
        (false, 0x1_0000) => "1024",
        (false, 0x2_0000) => "512",
        (false, _) => "256",
        (true, 0x1_0000) => "16384",
        (true, 0x2_0000) => "8192",
        (true, 0x3_0000) => "4096",
        (true, _) => "reserved",
    };
    vec![
        ("Receiver:", enabled(v, 1 << 1)),
        ("Store bad packets:", enabled(v, 1 << 2)),
        ("Unicast promiscuous:", enabled(v, 1 << 3)),
        ("Multicast promiscuous:", enabled(v, 1 << 4)),
        ("Long packet:", enabled(v, 1 << 5)),
        ("Descriptor minimum threshold size:", threshold.to_string()),
        (
            "Broadcast accept mode:",
            bit(v, 1 << 15, "accept", "ignore"),
        ),
        ("VLAN filter:", enabled(v, 1 << 18)),
        ("Canonical form indicator:", enabled(v, 1 << 19)),
        (
            "Discard pause frames:",
            bit(v, 1 << 22, "ignored", "filtered"),
        ),
        (
            "Pass MAC control frames:",
            bit(v, 1 << 23, "pass", "don't pass"),
        ),
        ("Receive buffer size:", size.to_string()),
    ]
}

fn tctl_fields(v: u32) -> Vec<(&'static str, String)> {
    vec![
        ("Transmitter:", enabled(v, 1 << 1)),
        ("Pad short packets:", enabled(v, 1 << 3)),
        ("Software XOFF Transmission:", enabled(v, 1 << 22)),
        ("Re-transmit on late collision:", enabled(v, 1 << 24)),
    ]
}

/// The M88 PHY specific status register (16 bits in the dump's word).
fn pssr_fields(v: u32) -> Vec<(&'static str, String)> {
    let cable = match (v >> 7) & 7 {
        0 => "0-50",
        1 => "50-80",
        2 => "80-110",
        3 => "110-140",
        4 => "140+",
        _ => "unknown",
    };
    let speed = match v & 0xC000 {
        0x0000 => "10",
        0x4000 => "100",
        0x8000 => "1000",
        _ => "unknown",
    };
    vec![
        ("Jabber:", bit(v, 1, "yes", "no")),
        ("Polarity:", bit(v, 1 << 1, "reverse", "normal")),
        ("Downshifted:", bit(v, 1 << 5, "yes", "no")),
        ("MDI/MDIX:", bit(v, 1 << 6, "MDIX", "MDI")),
        ("Cable Length Estimate:", format!("{cable} meters")),
        ("Link State:", bit(v, 1 << 10, "Up", "Down")),
        ("Speed & Duplex Resolved:", bit(v, 1 << 11, "Yes", "No")),
        ("Page Received:", bit(v, 1 << 12, "Yes", "No")),
        ("Duplex:", bit(v, 1 << 13, "Full", "Half")),
        ("Speed:", format!("{speed} mbps")),
    ]
}

/// The M88 PHY specific control register.
fn pscr_fields(v: u32) -> Vec<(&'static str, String)> {
    let mdi = match v & 0x60 {
        0x00 => "force MDI",
        0x20 => "force MDIX",
        0x40 => "1000 auto, 10/100 MDI",
        _ => "auto",
    };
    vec![
        ("Jabber function:", bit(v, 1, "disabled", "enabled")),
        ("Auto-polarity:", enabled(v, 1 << 1)),
        ("SQE Test:", enabled(v, 1 << 2)),
        ("CLK125:", bit(v, 1 << 4, "disabled", "enabled")),
        ("Auto-MDIX:", mdi.to_string()),
        ("Extended 10Base-T Distance:", enabled(v, 1 << 7)),
        ("100Base-TX Interface:", bit(v, 1 << 8, "5-bit", "MII")),
        ("Scrambler:", bit(v, 1 << 9, "disabled", "enabled")),
        ("Force Link Good:", bit(v, 1 << 10, "forced", "disabled")),
        ("Assert CRS on Transmit:", enabled(v, 1 << 11)),
    ]
}

/// `ethtool -t`.
pub fn selftest(results: &[TestResult]) -> String {
    let pass = results.iter().all(|r| r.result == 0);
    let mut s = format!(
        "The test result is {}\nThe test extra info:\n",
        if pass { "PASS" } else { "FAIL" }
    );
    for r in results {
        let _ = writeln!(s, "{}\t {}", r.name, r.result);
    }
    s
}

fn dur(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1} s", d.as_secs_f64())
    } else if d >= Duration::from_millis(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{} us", d.as_micros())
    }
}

/// `e1000ctl status`.
pub fn status(st: &Status) -> String {
    let mut s = String::from("microdriver status:\n");
    let _ = writeln!(
        s,
        "     mode: {}, backend: {}{}",
        st.mode,
        st.backend,
        st.tap
            .as_ref()
            .map(|t| format!(", bridged to TAP {t}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "     e1000d (kernel half) pid {}, up {}; link {}{}; frames rx {} tx {}, dropped rx {} tx {}",
        st.daemon_pid,
        dur(st.uptime),
        if st.link_up { "up" } else { "down" },
        if st.reset_pending {
            "; reset pending (runs once the user half answers)"
        } else {
            ""
        },
        st.rx_frames,
        st.tx_frames,
        st.rx_dropped,
        st.tx_dropped
    );
    let _ = writeln!(
        s,
        "     device: {}",
        match &st.device_fault {
            Some(why) => format!("LOST: {why}"),
            None => "ok (holds the rings the driver programmed)".into(),
        }
    );
    let _ = writeln!(
        s,
        "     power: {}",
        if st.suspended {
            format!(
                "suspended (Wake-on: {}); `e1000ctl resume` brings it back",
                wol_letters(st.wake_on)
            )
        } else {
            "running".into()
        }
    );
    let Some(sp) = &st.split else {
        return s;
    };
    let _ = writeln!(
        s,
        "     user half: pid {}, up {}, restarts {}, hangs {}, degraded {}{}",
        sp.pid.map_or("none".to_string(), |p| p.to_string()),
        dur(sp.uptime),
        sp.restarts,
        sp.hangs,
        match (sp.degraded, sp.next_attempt) {
            (false, _) => "no".to_string(),
            (true, Some(next)) => format!(
                "yes (next attempt in {} s; `e1000ctl revive` tries now)",
                next.as_secs_f64().ceil() as u64
            ),
            (true, None) => "yes (trying a user half now)".to_string(),
        },
        sp.last_recovery
            .map(|d| format!(", last recovery {}", dur(d)))
            .unwrap_or_default()
    );
    if sp.degradations > 0 {
        let _ = writeln!(
            s,
            "     crash loops: degraded {} times, revived {} times",
            sp.degradations, sp.revivals
        );
    }
    let _ = writeln!(
        s,
        "     channel: {} workers, crossing delay {}",
        sp.workers,
        dur(sp.crossing_delay)
    );
    let _ = writeln!(
        s,
        "     tracker: {} objects, {} bytes, {} translations, {} rejections",
        sp.tracker_objects, sp.tracker_bytes, sp.tracker_translations, sp.tracker_rejections
    );
    let _ = writeln!(s, "     rejected frames: {}", sp.rejected_frames);
    for r in sp.recent_rejections.iter().rev().take(3) {
        let _ = writeln!(s, "         last: {r}");
    }
    let _ = writeln!(
        s,
        "     {:<9} {:<40} {:>9} {:>7} {:>10} {:>10}",
        "direction", "entry", "calls", "errors", "p50", "p99"
    );
    for e in &sp.entries {
        let _ = writeln!(
            s,
            "     {:<9} {:<40} {:>9} {:>7} {:>10} {:>10}",
            e.direction,
            e.name,
            e.calls,
            e.errors,
            dur(e.p50),
            dur(e.p99)
        );
    }
    s
}

/// `e1000ctl ping`.
pub fn ping(p: &PingReport) -> String {
    let mut s = String::from("PING 10.0.2.2 from 10.0.2.15 (the daemon's stack)\n");
    for (i, r) in p.replies.iter().enumerate() {
        match r {
            Some(rtt) => {
                let _ = writeln!(
                    s,
                    "reply from 10.0.2.2: icmp_seq={} time={:.3} ms",
                    i + 1,
                    rtt.as_secs_f64() * 1e3
                );
            }
            None => {
                let _ = writeln!(s, "no reply: icmp_seq={}", i + 1);
            }
        }
    }
    let got = p.replies.iter().filter(|r| r.is_some()).count();
    let loss = 100.0 * (p.sent as f64 - got as f64) / f64::from(p.sent.max(1));
    let _ = writeln!(
        s,
        "{} packets transmitted, {got} received, {loss:.0}% packet loss",
        p.sent
    );
    s
}

/// A progress or final line for a traffic stream.
pub fn traffic(t: &TrafficReport) -> String {
    let secs = t.elapsed.as_secs_f64().max(1e-9);
    format!(
        "traffic: {} of {} frames each way in {:.1} s: tx accepted {} (refused {}), peer received {}; \
         peer sent {}, received in order {} (bad {}); {:.0} pkt/s each way{}",
        t.tx_accepted.min(t.rx_in_order),
        t.frames,
        secs,
        t.tx_accepted,
        t.tx_refused,
        t.peer_received,
        t.peer_sent,
        t.rx_in_order,
        t.rx_bad,
        (t.tx_accepted + t.rx_in_order) as f64 / 2.0 / secs,
        if t.running {
            String::new()
        } else {
            format!("; lost {}", t.lost())
        }
    ) + &format!(
        "; longest hot-path stall {:.1} ms (stalls {}, reconfiguration pauses {}, flow-control pauses {})",
        t.longest_stall.as_secs_f64() * 1e3,
        t.stalls,
        t.reconfig_pauses,
        t.flow_pauses
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_dump_is_laid_out_and_decoded_as_ethtool_does() {
        let r = |offset, name: &str, value| Register {
            offset,
            name: name.into(),
            value,
        };
        let dump = [
            r(0x0, "CTRL", 0x0014_0241),
            r(0x8, "STATUS", 0x0000_0083),
            r(0x100, "RCTL", 0x0000_800A),
            r(0x2808, "RDLEN", 0x1000),
            r(0x400, "TCTL", 0x0103_F00A),
            r(0x18, "CTRL_EXT", 0x1234),
            r(16, "PHY_PSCR", 0x0068),
            r(17, "PHY_PSSR", 0xAC00),
        ];
        let out = regs(&dump);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "MAC Registers",
                "-------------",
                "0x00000: CTRL (Device control register)  0x00140241"
            ]
        );
        for want in [
            "      Set link up:                       1",
            "      Speed select:                      1000Mb/s",
            "0x00008: STATUS (Device status register) 0x00000083",
            "      Link speed:                        1000Mb/s",
            "      Bus type:                          PCI",
            "      Unicast promiscuous:               enabled",
            "      Broadcast accept mode:             accept",
            "      Receive buffer size:               2048",
            "0x02808: RDLEN (Receive desc length)     0x00001000",
            "      Re-transmit on late collision:     enabled",
            "PHY type:                                M88",
            "      Cable Length Estimate:             0-50 meters",
            "      Speed:                             1000 mbps",
            "      Auto-MDIX:                         auto",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in:\n{out}");
        }
        // What ethtool does not decode is not printed, nor a register the dump lacks;
        // `--e1000-extras` lists every word.
        assert!(!out.contains("CTRL_EXT") && !out.contains("RDH"), "{out}");
        assert!(regs_extras(&dump).contains("CTRL_EXT"));
        // Every value starts in column 41 (counting from 0), as ethtool's do.
        for l in lines.iter().skip(2) {
            assert!(l.len() > 41, "short line {l:?}");
            assert_ne!(&l[41..42], " ", "value not at column 41: {l:?}");
            assert_eq!(&l[40..41], " ", "label runs into the value: {l:?}");
        }
    }

    #[test]
    fn link_shows_the_partner_like_ethtool() {
        let mut l = LinkInfo {
            supported: vec!["10baseT/Half".into()],
            advertised: vec!["10baseT/Half".into()],
            autoneg: true,
            link_up: true,
            speed: 1000,
            full_duplex: true,
            mac: [2, 0, 0, 0, 0, 1],
            lp_advertised: vec!["100baseT/Full".into(), "1000baseT/Full".into()],
            lp_pause: true,
            lp_asym_pause: false,
            lp_autoneg: true,
            mdix_ctrl: ETH_TP_MDI_AUTO,
            mdix: ETH_TP_MDI_X,
            wol_supported: WAKE_PHY | WAKE_UCAST | WAKE_MCAST | WAKE_BCAST | WAKE_MAGIC,
            wol: WAKE_MAGIC,
        };
        let out = link("eth0", &l);
        assert!(out.contains("\tMDI-X: on (auto)\n"), "{out}");
        assert!(out.contains("\tSupports Wake-on: pumbg\n"), "{out}");
        assert!(out.contains("\tWake-on: g\n"), "{out}");
        assert!(
            out.contains("\tLink partner advertised link modes:  100baseT/Full 1000baseT/Full\n"),
            "{out}"
        );
        assert!(out.contains("Link partner advertised pause frame use: Symmetric\n"));
        assert!(out.contains("Link partner advertised auto-negotiation: Yes\n"));
        l.lp_advertised.clear();
        (l.lp_pause, l.lp_asym_pause, l.lp_autoneg) = (false, true, false);
        let out = link("eth0", &l);
        assert!(out.contains("Link partner advertised link modes:  Not reported\n"));
        assert!(out.contains("pause frame use: Transmit-only\n"), "{out}");
        assert!(out.contains("Link partner advertised auto-negotiation: No\n"));
    }

    #[test]
    fn status_shows_a_pending_reset() {
        let mut st: Status = serde_json::from_str(
            r#"{"mode":"monolithic","backend":"sim","tap":null,"daemon_pid":7,
                "uptime":{"secs":3,"nanos":0},"link_up":true,"rx_frames":1,"tx_frames":2,
                "split":null}"#,
        )
        .expect("a status without the field (an older daemon) still parses");
        assert!(!st.reset_pending);
        assert!(!status(&st).contains("reset pending"));
        st.reset_pending = true;
        let out = status(&st);
        assert!(out.contains("link up; reset pending (runs once"), "{out}");
    }

    fn flag(name: &str, on: bool, requested: bool, fixed: bool) -> FeatureFlag {
        FeatureFlag {
            name: name.into(),
            on,
            requested,
            fixed,
        }
    }

    #[test]
    fn features_have_ethtool_layout() {
        let out = features(
            "e1000",
            &[
                flag("scatter-gather", false, false, false),
                flag("tcp-segmentation-offload", false, true, false),
                flag("rx-all", false, false, true),
            ],
        );
        assert_eq!(
            out,
            "Features for e1000:\nscatter-gather: off\n\
             tcp-segmentation-offload: off [requested on]\nrx-all: off [fixed]\n"
        );
    }

    #[test]
    fn feature_changes_show_only_what_was_not_asked() {
        let before = [
            flag("scatter-gather", true, true, false),
            flag("tcp-segmentation-offload", true, true, false),
        ];
        let after = [
            flag("scatter-gather", false, false, false),
            flag("tcp-segmentation-offload", false, true, false),
        ];
        let sg_off = [FeatureChange {
            name: "sg".into(),
            on: false,
        }];
        assert_eq!(
            feature_changes(&sg_off, &before, &after),
            "Actual changes:\nscatter-gather: off\n\
             tcp-segmentation-offload: off [requested on]\n"
        );
        let both = [
            sg_off[0].clone(),
            FeatureChange {
                name: "tcp-segmentation-offload".into(),
                on: false,
            },
        ];
        let after_both = [
            flag("scatter-gather", false, false, false),
            flag("tcp-segmentation-offload", false, false, false),
        ];
        assert_eq!(feature_changes(&both, &before, &after_both), "");
    }

    #[test]
    fn stats64_has_ip_link_layout() {
        let out = stats64(&NetStats {
            rx_bytes: 600,
            rx_packets: 3,
            rx_crc_errors: 2,
            collisions: 9,
            ..NetStats::default()
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 8, "{out}");
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["600", "3", "0", "0", "0", "0"]
        );
        assert_eq!(lines[3].split_whitespace().nth(1), Some("2"));
        assert_eq!(lines[5].split_whitespace().last(), Some("9"));
    }

    #[test]
    fn eeprom_dump_has_ethtool_layout() {
        let out = eeprom(0, &[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(
            out,
            "Offset\t\tValues\n------\t\t------\n0x0000:\t\t52 54 00 12 34 56 \n"
        );
        let out = eeprom(14, &[1, 2, 3]);
        assert!(out.contains("0x000e:\t\t01 02 \n0x0010:\t\t03 "), "{out}");
    }

    #[test]
    fn mdix_reads_like_ethtool() {
        assert_eq!(mdix(ETH_TP_MDI_X, ETH_TP_MDI_AUTO), "on (auto)");
        assert_eq!(mdix(ETH_TP_MDI, ETH_TP_MDI_AUTO), "off (auto)");
        assert_eq!(mdix(0, ETH_TP_MDI_AUTO), "Unknown (auto)");
        assert_eq!(mdix(ETH_TP_MDI, ETH_TP_MDI_X), "on (forced)");
        assert_eq!(mdix(ETH_TP_MDI_X, ETH_TP_MDI), "off (forced)");
    }

    #[test]
    fn wol_letters_round_trip() {
        let all = WAKE_PHY | WAKE_UCAST | WAKE_MCAST | WAKE_BCAST | WAKE_MAGIC;
        assert_eq!(wol_letters(all), "pumbg");
        assert_eq!(wol_letters(0), "d");
        assert_eq!(parse_wol("pumbg"), Ok(all));
        assert_eq!(parse_wol("gb"), Ok(WAKE_MAGIC | WAKE_BCAST));
        assert_eq!(parse_wol("d"), Ok(0));
        assert_eq!(parse_wol("s"), Ok(WAKE_MAGICSECURE));
        assert!(parse_wol("gd").is_err());
        assert!(parse_wol("").is_err());
        let e = parse_wol("gx").expect_err("x is no mode");
        assert!(e.contains("'x'"), "{e}");
    }

    #[test]
    fn suspend_and_resume_reports() {
        let s = suspended(
            "e1000",
            &SuspendReport {
                was_up: true,
                wake_on: WAKE_MAGIC,
            },
        );
        assert_eq!(
            s,
            "e1000: suspended; interface was up; wake-up armed (Wake-on: g)\n"
        );
        let r = resumed(
            "e1000",
            &ResumeReport {
                wake_status: 0x2,
                woken_by: WAKE_MAGIC,
                reopened: true,
            },
        );
        assert_eq!(
            r,
            "e1000: resumed; woken by Wake-on g (wake-up status 0x2); interface reopened\n"
        );
    }
}

/// Parses a duration written as a number and a unit (`0`, `500ns`, `1us`, `10µs`, `1ms`,
/// `20ms`, `2s`); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit, like 10us, 1ms or 20ms"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use ns, us, ms or s)"
            ))
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=3600.0).contains(&secs) {
        return Err(format!("{s:?}: give 0 to 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1us"), Ok(Duration::from_micros(1)));
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("99999").is_err());
    }
}
