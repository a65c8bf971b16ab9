//! The independent model of the configuration: the requests answered OK, applied in
//! order, and the daemon's and the device's views compared with it.

use std::path::Path;
use std::sync::atomic::AtomicU64;

use e1000d::protocol::{Coalesce, FeatureChange, Reply, Request, Rings};

use super::ask_all;
use super::support::Rng;

/// What the configuration must be: the requests answered OK, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Model {
    pub(crate) rx: u32,
    pub(crate) tx: u32,
    pub(crate) coalesce: Coalesce,
    pub(crate) rx_csum: bool,
}

/// A configuration request and what it would leave if it took effect (None: the driver
/// must refuse it).
pub(crate) fn config_request(rng: &mut Rng, m: &Model, features: bool) -> (Request, Option<Model>) {
    const SIZES: [u32; 6] = [80, 128, 256, 512, 1024, 4096];
    const USECS: [u32; 6] = [0, 3, 8, 50, 128, 1000];
    match rng.below(if features { 10 } else { 8 }) {
        0..=3 => {
            let (rx, tx) = (rng.pick(&SIZES), rng.pick(&SIZES));
            if rng.below(8) == 0 {
                // Not a multiple of 8: refused.
                return (
                    Request::SetRings {
                        rx: Some(rx + 4),
                        tx: Some(tx),
                    },
                    None,
                );
            }
            (
                Request::SetRings {
                    rx: Some(rx),
                    tx: Some(tx),
                },
                Some(Model {
                    rx,
                    tx,
                    ..m.clone()
                }),
            )
        }
        4..=7 => {
            let c = Coalesce {
                rx_usecs: rng.pick(&USECS),
                rx_usecs_abs: rng.pick(&USECS),
                tx_usecs: rng.pick(&USECS),
                tx_usecs_abs: rng.pick(&USECS),
                adaptive: rng.below(2) == 0,
                ..m.coalesce
            };
            if rng.below(8) == 0 {
                return (
                    Request::SetCoalesce {
                        rx_usecs: Some(70_000),
                        tx_usecs: Some(c.tx_usecs),
                        rx_usecs_abs: None,
                        tx_usecs_abs: None,
                        adaptive_rx: None,
                    },
                    None,
                );
            }
            (
                Request::SetCoalesce {
                    rx_usecs: Some(c.rx_usecs),
                    tx_usecs: Some(c.tx_usecs),
                    rx_usecs_abs: Some(c.rx_usecs_abs),
                    tx_usecs_abs: Some(c.tx_usecs_abs),
                    adaptive_rx: Some(c.adaptive),
                },
                Some(Model {
                    coalesce: c,
                    ..m.clone()
                }),
            )
        }
        _ => {
            if rng.below(8) == 0 {
                // A fixed feature: refused.
                return (
                    Request::SetFeatures {
                        changes: vec![FeatureChange {
                            name: "rx-all".into(),
                            on: true,
                        }],
                    },
                    None,
                );
            }
            let on = !m.rx_csum;
            (
                Request::SetFeatures {
                    changes: vec![FeatureChange {
                        name: "rx".into(),
                        on,
                    }],
                },
                Some(Model {
                    rx_csum: on,
                    ..m.clone()
                }),
            )
        }
    }
}

/// The configuration as the daemon shows it (`-g`, `-c`, `-k`) and as the device holds it
/// (`-d`), as a list of differences from `m`.
pub(crate) fn divergences(socket: &Path, m: &Model, slowest: &AtomicU64) -> Vec<String> {
    // The four views asked at once (each is a connection of its own to the daemon).
    let [rings, coalesce, features, regs] = ask_all(
        socket,
        [
            Request::Rings,
            Request::Coalesce,
            Request::Features,
            Request::Regs,
        ],
        slowest,
    );
    let mut out = Vec::new();
    match rings {
        Ok(Reply::Rings(Rings { rx, tx, .. })) => {
            if (rx, tx) != (m.rx, m.tx) {
                out.push(format!("-g shows rx {rx} tx {tx}, model {} {}", m.rx, m.tx));
            }
        }
        other => out.push(format!("-g: {other:?}")),
    }
    match coalesce {
        Ok(Reply::Coalesce(c)) => {
            if c != m.coalesce {
                out.push(format!("-c shows {c:?}, model {:?}", m.coalesce));
            }
        }
        other => out.push(format!("-c: {other:?}")),
    }
    match features {
        Ok(Reply::Features { features }) => {
            let on = features
                .iter()
                .find(|f| f.name == "rx-checksumming")
                .map(|f| f.on);
            if on != Some(m.rx_csum) {
                out.push(format!("-k rx-checksumming {on:?}, model {}", m.rx_csum));
            }
        }
        other => out.push(format!("-k: {other:?}")),
    }
    match regs {
        Ok(Reply::Regs { regs }) => {
            let reg = |name: &str| regs.iter().find(|r| r.name == name).map(|r| r.value);
            let units = |us: u32| ((u64::from(us) * 1000 / 1024) as u32).min(0xFFFF);
            for (name, want) in [
                ("RDLEN", m.rx * 16),
                ("TDLEN", m.tx * 16),
                ("RDTR", units(m.coalesce.rx_usecs)),
                ("TIDV", units(m.coalesce.tx_usecs)),
                ("RADV", units(m.coalesce.rx_usecs_abs)),
                ("TADV", units(m.coalesce.tx_usecs_abs)),
            ] {
                // RDTR bit 31 is the flush bit, never set by the driver.
                let got = reg(name).map(|v| if name == "RDTR" { v & 0xFFFF } else { v });
                if got != Some(want) {
                    out.push(format!("register {name} {got:x?}, model {want:#x}"));
                }
            }
        }
        other => out.push(format!("-d: {other:?}")),
    }
    out
}
