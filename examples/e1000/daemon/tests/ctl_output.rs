//! e1000ctl's output contracts: `--json` for every read command, and the exit statuses
//! `--help` documents.

mod common;

use common::{ctl_at, temp_path, DaemonProcess};
use serde_json::Value;

/// Runs `e1000ctl --json ARGS` and parses what it printed (one JSON document).
fn json(d: &DaemonProcess, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = d.ok(&all);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("e1000ctl --json {args:?} printed no JSON ({e}):\n{out}"))
}

#[test]
fn every_read_command_has_json() {
    let d = DaemonProcess::start(&["--sim", "--rx-ring", "256", "--tx-ring", "256"]);
    // Traffic first, so the counters have something to show.
    d.ok(&["ping", "3"]);

    let info = json(&d, &["-i"]);
    assert_eq!(info["driver"], "e1000", "{info}");
    assert_eq!(info["part"], "82540EM", "{info}");
    assert!(info["n_stats"].as_u64().is_some_and(|n| n > 0), "{info}");

    let link = json(&d, &[]);
    assert_eq!(link["mac"], "52:54:00:12:34:56", "{link}");
    assert_eq!(link["link_up"], true, "{link}");
    assert_eq!(link["speed"], 1000, "{link}");

    let stats = json(&d, &["-S"]);
    assert!(
        stats["rx_packets"].as_u64().is_some_and(|n| n >= 3),
        "{stats}"
    );
    assert!(
        stats["tx_packets"].as_u64().is_some_and(|n| n >= 3),
        "{stats}"
    );

    let rings = json(&d, &["-g"]);
    assert_eq!(
        (rings["rx"].as_u64(), rings["tx"].as_u64()),
        (Some(256), Some(256))
    );
    assert_eq!(rings["rx_max"], 4096, "{rings}");

    let pause = json(&d, &["-a"]);
    assert!(
        pause["autoneg"].is_boolean() && pause["rx"].is_boolean(),
        "{pause}"
    );

    let coal = json(&d, &["-c"]);
    assert!(
        coal["rx_usecs"].is_u64() && coal["adaptive"].is_boolean(),
        "{coal}"
    );

    let eeprom = json(&d, &["-e", "offset", "0", "length", "6"]);
    let mac: Vec<u64> = eeprom["data"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    assert_eq!(mac, [0x52, 0x54, 0x00, 0x12, 0x34, 0x56], "{eeprom}");

    let regs = json(&d, &["-d"]);
    let rdlen = regs["regs"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "RDLEN"))
        .and_then(|r| r["value"].as_u64());
    assert_eq!(rdlen, Some(256 * 16), "{regs}");

    let features = json(&d, &["-k"]);
    assert!(
        features["features"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["name"] == "rx-checksumming")),
        "{features}"
    );

    let n = json(&d, &["stats64"]);
    assert!(n["rx_packets"].as_u64().is_some_and(|n| n >= 3), "{n}");

    let st = json(&d, &["status"]);
    assert_eq!(st["mode"], "split", "{st}");
    assert!(st["split"]["pid"].as_u64().is_some(), "{st}");
    // Durations are seconds: a number, not serde's {secs, nanos}.
    assert!(st["uptime"].as_f64().is_some_and(|s| s > 0.0), "{st}");

    let t = json(&d, &["traffic", "status"]);
    assert_eq!(t["running"], false, "{t}");

    let test = json(&d, &["-t", "online"]);
    assert_eq!(test["pass"], true, "{test}");

    // A command that only acts: an empty object.
    assert_eq!(json(&d, &["-G", "rx", "512"]), serde_json::json!({}));
    assert_eq!(json(&d, &["-g"])["rx"], 512);
}

#[test]
fn exit_statuses_are_the_documented_ones() {
    let help = ctl_at(&temp_path("none"), &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for line in [
        "Exit status:",
        "  0  done",
        "  1  the command line",
        "  2  no answer",
    ] {
        assert!(text.contains(line), "--help lacks {line:?}:\n{text}");
    }

    // 2: nobody at the socket.
    let none = ctl_at(&temp_path("none"), &["-i"]);
    assert_eq!(none.status.code(), Some(2), "{none:?}");

    let d = DaemonProcess::start(&["--sim"]);
    assert_eq!(d.ctl(&["-i"]).status.code(), Some(0));
    // 1: a bad command line.
    assert_eq!(d.ctl(&["-G", "rx"]).status.code(), Some(1));
    assert_eq!(d.ctl(&["--no-such-option"]).status.code(), Some(1));
    // 1: the daemon refused the request (it says why).
    let refused = d.ctl(&["-G", "rx", "13"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("multiple of 8"));
    // The same with --json: the reason on stderr, nothing on stdout.
    let refused = d.ctl(&["--json", "-G", "rx", "13"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(refused.stdout.is_empty(), "{refused:?}");
}

/// ethtool's lines for -i, -a and -c, in its order, and nothing else; the extras only with
/// --e1000-extras.
#[test]
fn driver_pause_and_coalesce_are_laid_out_as_ethtools() {
    let d = DaemonProcess::start(&["--sim", "--monolithic"]);
    let keys = |out: &str| -> Vec<String> {
        out.lines()
            .map(|l| l.split(':').next().unwrap_or("").to_string())
            .collect()
    };
    let info = d.ok(&["-i"]);
    assert_eq!(
        keys(&info),
        [
            "driver",
            "version",
            "firmware-version",
            "expansion-rom-version",
            "bus-info",
            "supports-statistics",
            "supports-test",
            "supports-eeprom-access",
            "supports-register-dump",
            "supports-priv-flags"
        ],
        "{info}"
    );
    let extras = d.ok(&["-i", "--e1000-extras"]);
    assert!(
        extras.starts_with(&info) && extras.contains("\nPBA No: "),
        "{extras}"
    );

    // The model's partner advertises symmetric and asymmetric PAUSE: with rx and tx on,
    // both are negotiated on.
    let pause = common_wait(&d, &["-a"], |o| o.contains("RX negotiated"));
    assert_eq!(
        pause,
        "Pause parameters for e1000:\nAutonegotiate:\ton\nRX:\t\ton\nTX:\t\ton\n\
         RX negotiated: on\nTX negotiated: on\n\n"
    );
    d.ok(&["-A", "autoneg", "off"]);
    let pause = d.ok(&["-a"]);
    assert_eq!(
        pause,
        "Pause parameters for e1000:\nAutonegotiate:\toff\nRX:\t\ton\nTX:\t\ton\n\n"
    );

    d.ok(&["-C", "rx-usecs", "20", "tx-usecs", "16"]);
    let c = d.ok(&["-c"]);
    let groups: Vec<&str> = c.split("\n\n").collect();
    assert_eq!(
        groups.len(),
        7,
        "six groups, each ending in a blank line:\n{c}"
    );
    assert!(
        groups[0].starts_with("Coalesce parameters for e1000:\nAdaptive RX: "),
        "{c}"
    );
    assert!(
        groups[1].starts_with("rx-usecs: 20\nrx-frames: n/a\n"),
        "{c}"
    );
    assert!(
        groups[2].starts_with("tx-usecs: 16\ntx-frames: n/a\n"),
        "{c}"
    );
    assert_eq!(groups[5], "CQE mode RX: n/a  TX: n/a", "{c}");
    assert_eq!(groups[6], "", "{c}");
    assert!(!c.contains("abs") && !c.contains("rate-limit"), "{c}");
    // ethtool's -C has no absolute timers: they are `abs-delay`'s, shown with the extras.
    assert_eq!(d.ctl(&["-C", "rx-usecs-abs", "40"]).status.code(), Some(1));
    d.ok(&["abs-delay", "rx-usecs-abs", "40"]);
    let extras = d.ok(&["-c", "--e1000-extras"]);
    assert!(extras.starts_with(&c), "{extras}");
    assert!(
        extras.ends_with("rx-usecs-abs: 40\ntx-usecs-abs: 32\nrate-limit: 20000\n"),
        "{extras}"
    );
}

/// Runs e1000ctl until `want` holds for its output (the link comes up after start-up).
fn common_wait(d: &DaemonProcess, args: &[&str], want: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = d.ok(args);
        if want(&out) {
            return out;
        }
        assert!(std::time::Instant::now() < deadline, "never got it: {out}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
