//! `e1000d --metrics`: scraped over loopback, its values move with the traffic and the
//! user half's restarts.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::DaemonProcess;

/// The address e1000d logged for its metrics endpoint.
fn metrics_addr(d: &DaemonProcess) -> SocketAddr {
    let log = d.log_text();
    log.lines()
        .find(|l| l.contains("metrics: Prometheus"))
        .and_then(|l| l.split("addr=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{log}"))
}

/// One HTTP GET: (status line, body).
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connecting");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("writing the request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("reading the response");
    let (head, body) = resp.split_once("\r\n\r\n").expect("a header and a body");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// Every sample of a scrape, by its name with labels.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("a sample line");
            let v = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number in {l:?}"));
            (name.to_string(), v)
        })
        .collect()
}

fn val(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no {key} in the scrape: {:?}", m.keys()))
}

#[test]
fn scraped_values_move_with_traffic_and_restarts() {
    // A bare port is bound to loopback (0: any free port).
    let d = DaemonProcess::start(&["--sim", "--metrics", "0"]);
    let addr = metrics_addr(&d);
    assert!(addr.ip().is_loopback(), "{addr}");

    let before = scrape(addr);
    assert_eq!(val(&before, "e1000d_link_up"), 1.0);
    d.ok(&["ping", "5"]);
    let after = scrape(addr);
    for dir in ["rx", "tx"] {
        let frames = format!("e1000d_frames_total{{direction=\"{dir}\"}}");
        let bytes = format!("e1000d_bytes_total{{direction=\"{dir}\"}}");
        assert!(
            val(&after, &frames) >= val(&before, &frames) + 5.0,
            "{frames}"
        );
        // Every frame is at least 60 bytes (without FCS).
        assert!(
            val(&after, &bytes) >= val(&before, &bytes) + 5.0 * 60.0,
            "{bytes}"
        );
    }
    // The calls per entry: probe, open and the watchdog's link checks at least.
    let calls = |m: &HashMap<String, f64>| -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with("e1000d_calls_total{"))
            .map(|(_, v)| v)
            .sum()
    };
    assert!(calls(&after) > 0.0);

    assert_eq!(val(&after, "e1000d_user_half_restarts_total"), 0.0);
    assert!(!after.contains_key("e1000d_last_recovery_seconds"));
    d.ok(&["inject", "crash"]);
    let crashed = scrape(addr);
    assert_eq!(val(&crashed, "e1000d_user_half_restarts_total"), 1.0);
    let rec = val(&crashed, "e1000d_last_recovery_seconds");
    assert!(rec > 0.0 && rec < 30.0, "recovery {rec} s");

    let (status, _) = get(addr, "/");
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
}

#[test]
fn a_taken_port_stops_start_up_with_the_reason() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a port");
    let port = held.local_addr().expect("its address").port().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_e1000d"))
        .args(["--sim", "--metrics", &port, "--socket"])
        .arg(common::temp_path("metrics-taken"))
        .output()
        .expect("running e1000d");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("--metrics 127.0.0.1:{port}")),
        "{err}"
    );
}
