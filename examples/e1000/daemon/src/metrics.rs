//! `e1000d --metrics ADDR`: the daemon's counters over HTTP in the Prometheus text format
//! (version 0.0.4), for a scraper.
//!
//! `GET /metrics` answers with frames and bytes each way and the drops by place (from the
//! kernel half's own counters and the TAP bridge's: no upcall, so a scrape works while the
//! user half restarts), the link, the user half's restarts, hangs and last recovery time,
//! and the calls and errors per crossing entry. A bare port binds to 127.0.0.1: the
//! endpoint is for the host, not the network, unless an address says otherwise.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::daemon::Inner;

/// The longest request head read (a scrape's is a few hundred bytes).
const MAX_REQUEST: usize = 8192;
/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Parses `--metrics`'s ADDR: `PORT` (on 127.0.0.1), `:PORT` (the same), `IP:PORT` or
/// `[IPv6]:PORT`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    s.parse().map_err(|_| {
        format!(
            "`{s}`: give PORT (on 127.0.0.1), IP:PORT or [IPv6]:PORT, e.g. 9101 or 127.0.0.1:9101"
        )
    })
}

/// One scrape's values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Seconds since the daemon started.
    pub uptime: f64,
    /// The link is up.
    pub link_up: bool,
    /// Frames the NIC received and delivered / sent.
    pub rx_frames: u64,
    /// See `rx_frames`.
    pub tx_frames: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// See `rx_bytes`.
    pub tx_bytes: u64,
    /// Drops: (direction, where, count).
    pub drops: Vec<(&'static str, &'static str, u64)>,
    /// Transmit attempts that found the ring full.
    pub tx_ring_full: u64,
    /// Interrupts taken.
    pub interrupts: u64,
    /// The user half (split mode only).
    pub split: Option<SplitSnapshot>,
}

/// The user half's part of a [`Snapshot`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitSnapshot {
    /// Restarts so far.
    pub restarts: u64,
    /// Hangs the heartbeat caught.
    pub hangs: u64,
    /// Running without a user half.
    pub degraded: bool,
    /// The last recovery (crash to answering again), seconds.
    pub last_recovery: Option<f64>,
    /// Per crossing entry: (direction, name, calls, errors).
    pub entries: Vec<(String, String, u64, u64)>,
}

/// The values now.
pub(crate) fn snapshot(inner: &Inner) -> Snapshot {
    let hot = inner.nd.kernel().hot_stats();
    let st = crate::handlers::status(inner);
    let stack = &inner.stack;
    Snapshot {
        uptime: st.uptime.as_secs_f64(),
        link_up: st.link_up,
        rx_frames: hot.rx_packets,
        tx_frames: hot.tx_packets,
        rx_bytes: hot.rx_bytes,
        tx_bytes: hot.tx_bytes,
        drops: vec![
            ("rx", "nic_error", hot.rx_errors),
            ("rx", "no_listener", hot.rx_dropped),
            ("rx", "tap_write", stack.rx_dropped.load(Ordering::Relaxed)),
            ("tx", "driver_refused", hot.tx_dropped),
            ("tx", "bridge", stack.tx_dropped.load(Ordering::Relaxed)),
        ],
        tx_ring_full: hot.tx_busy,
        interrupts: hot.interrupts,
        split: st.split.map(|s| SplitSnapshot {
            restarts: s.restarts,
            hangs: s.hangs,
            degraded: s.degraded,
            last_recovery: s.last_recovery.map(|d| d.as_secs_f64()),
            entries: s
                .entries
                .into_iter()
                .map(|e| (e.direction, e.name, e.calls, e.errors))
                .collect(),
        }),
    }
}

/// A label value, escaped as the text format wants (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// `s` in the Prometheus text format.
pub fn render(s: &Snapshot) -> String {
    let mut o = String::new();
    head(
        &mut o,
        "e1000d_uptime_seconds",
        "gauge",
        "Seconds since e1000d started.",
    );
    let _ = writeln!(o, "e1000d_uptime_seconds {}", s.uptime);
    head(&mut o, "e1000d_link_up", "gauge", "1 while the link is up.");
    let _ = writeln!(o, "e1000d_link_up {}", u8::from(s.link_up));
    head(
        &mut o,
        "e1000d_frames_total",
        "counter",
        "Frames the NIC received (rx) and sent (tx).",
    );
    let _ = writeln!(o, "e1000d_frames_total{{direction=\"rx\"}} {}", s.rx_frames);
    let _ = writeln!(o, "e1000d_frames_total{{direction=\"tx\"}} {}", s.tx_frames);
    head(
        &mut o,
        "e1000d_bytes_total",
        "counter",
        "Bytes of those frames.",
    );
    let _ = writeln!(o, "e1000d_bytes_total{{direction=\"rx\"}} {}", s.rx_bytes);
    let _ = writeln!(o, "e1000d_bytes_total{{direction=\"tx\"}} {}", s.tx_bytes);
    head(
        &mut o,
        "e1000d_dropped_total",
        "counter",
        "Frames dropped, by direction and place: nic_error (receive errors), no_listener \
         (nobody took a received frame), tap_write (the TAP refused one), driver_refused (a \
         malformed frame), bridge (no carrier, or the ring stayed full).",
    );
    for (dir, place, n) in &s.drops {
        let _ = writeln!(
            o,
            "e1000d_dropped_total{{direction=\"{dir}\",place=\"{place}\"}} {n}"
        );
    }
    head(
        &mut o,
        "e1000d_tx_ring_full_total",
        "counter",
        "Transmits that found the ring full.",
    );
    let _ = writeln!(o, "e1000d_tx_ring_full_total {}", s.tx_ring_full);
    head(
        &mut o,
        "e1000d_interrupts_total",
        "counter",
        "Interrupts taken.",
    );
    let _ = writeln!(o, "e1000d_interrupts_total {}", s.interrupts);
    let Some(sp) = &s.split else {
        return o;
    };
    head(
        &mut o,
        "e1000d_user_half_restarts_total",
        "counter",
        "User-half restarts.",
    );
    let _ = writeln!(o, "e1000d_user_half_restarts_total {}", sp.restarts);
    head(
        &mut o,
        "e1000d_user_half_hangs_total",
        "counter",
        "User-half hangs the heartbeat caught.",
    );
    let _ = writeln!(o, "e1000d_user_half_hangs_total {}", sp.hangs);
    head(
        &mut o,
        "e1000d_degraded",
        "gauge",
        "1 while the driver runs without a user half.",
    );
    let _ = writeln!(o, "e1000d_degraded {}", u8::from(sp.degraded));
    if let Some(r) = sp.last_recovery {
        head(
            &mut o,
            "e1000d_last_recovery_seconds",
            "gauge",
            "The last recovery: from the user half's failure to a new one answering.",
        );
        let _ = writeln!(o, "e1000d_last_recovery_seconds {r}");
    }
    head(
        &mut o,
        "e1000d_calls_total",
        "counter",
        "Calls per crossing entry.",
    );
    for (dir, name, calls, _) in &sp.entries {
        let _ = writeln!(
            o,
            "e1000d_calls_total{{direction=\"{}\",entry=\"{}\"}} {calls}",
            label(dir),
            label(name)
        );
    }
    head(
        &mut o,
        "e1000d_call_errors_total",
        "counter",
        "Failed calls per crossing entry.",
    );
    for (dir, name, _, errors) in &sp.entries {
        let _ = writeln!(
            o,
            "e1000d_call_errors_total{{direction=\"{}\",entry=\"{}\"}} {errors}",
            label(dir),
            label(name)
        );
    }
    o
}

/// The response to a request head: `GET /metrics` gets the metrics, anything else 404 or
/// 405.
fn respond(request: &[u8], body: impl FnOnce() -> String) -> Vec<u8> {
    let line = request.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (status, content_type, body) = match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body())
        }
        (Some("GET"), _) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET /metrics\n".into(),
        ),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

fn serve_one(inner: &Inner, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < MAX_REQUEST {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    stream.write_all(&respond(&req, || render(&snapshot(inner))))
}

/// Serves scrapes on `listener` until the daemon stops (its shutdown connects once to
/// wake this loop).
pub(crate) fn serve(inner: &Arc<Inner>, listener: TcpListener) {
    for stream in listener.incoming() {
        if inner.stop.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(s) => {
                if let Err(e) = serve_one(inner, s) {
                    tracing::debug!(error = %e, "a metrics scrape failed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_is_loopback() {
        assert_eq!(parse_addr("9101"), Ok("127.0.0.1:9101".parse().unwrap()));
        assert_eq!(parse_addr(":9101"), Ok("127.0.0.1:9101".parse().unwrap()));
        assert_eq!(parse_addr("0.0.0.0:80"), Ok("0.0.0.0:80".parse().unwrap()));
        assert_eq!(parse_addr("[::1]:9"), Ok("[::1]:9".parse().unwrap()));
        assert!(parse_addr("localhost").is_err());
        assert!(parse_addr("70000").is_err());
    }

    #[test]
    fn text_format_has_help_type_and_escaped_labels() {
        let s = Snapshot {
            rx_frames: 3,
            drops: vec![("tx", "bridge", 2)],
            split: Some(SplitSnapshot {
                restarts: 1,
                last_recovery: Some(0.25),
                entries: vec![("upcall".into(), "we\"ird\\name".into(), 5, 1)],
                ..SplitSnapshot::default()
            }),
            ..Snapshot::default()
        };
        let t = render(&s);
        assert!(t.contains("# TYPE e1000d_frames_total counter\n"), "{t}");
        assert!(
            t.contains("e1000d_frames_total{direction=\"rx\"} 3\n"),
            "{t}"
        );
        assert!(t.contains("e1000d_dropped_total{direction=\"tx\",place=\"bridge\"} 2\n"));
        assert!(t.contains("e1000d_user_half_restarts_total 1\n"));
        assert!(t.contains("e1000d_last_recovery_seconds 0.25\n"));
        assert!(
            t.contains("e1000d_calls_total{direction=\"upcall\",entry=\"we\\\"ird\\\\name\"} 5\n")
        );
        // Every sample's metric has HELP and TYPE lines before it.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            assert!(t.contains(&format!("# TYPE {name} ")), "no TYPE for {l}");
        }
        // No user half (monolithic): no user-half metrics.
        let mono = render(&Snapshot::default());
        assert!(!mono.contains("restarts"), "{mono}");
    }

    #[test]
    fn only_get_metrics_gets_the_metrics() {
        let ok = respond(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", || {
            "m 1\n".into()
        });
        let ok = String::from_utf8(ok).unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Length: 4\r\n") && ok.ends_with("\r\n\r\nm 1\n"),
            "{ok}"
        );
        let nf = String::from_utf8(respond(b"GET / HTTP/1.1\r\n\r\n", String::new)).unwrap();
        assert!(nf.starts_with("HTTP/1.1 404 "), "{nf}");
        let bad = String::from_utf8(respond(b"\xff\xfe garbage", String::new)).unwrap();
        assert!(bad.starts_with("HTTP/1.1 405 "), "{bad}");
        let empty = String::from_utf8(respond(b"", String::new)).unwrap();
        assert!(empty.starts_with("HTTP/1.1 405 "), "{empty}");
    }
}
