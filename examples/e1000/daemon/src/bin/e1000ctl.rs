//! `e1000ctl`: ethtool's options for the e1000 microdriver, plus the microdriver's own
//! `status`, fault injection, and the simulated wire's ping and traffic generator.
//!
//! ```text
//! e1000ctl -i | -S | -g | -a | -c | -e | -d | -r
//! e1000ctl -G rx N tx N | -A autoneg on rx on tx off | -C rx-usecs N tx-usecs N
//! e1000ctl abs-delay rx-usecs-abs N tx-usecs-abs N | -i/-c/-d --e1000-extras
//! e1000ctl -s speed 100 duplex full autoneg off mdix auto|on|off wol pumbg|d
//! e1000ctl -t [offline|online] | -p SECONDS
//! e1000ctl -k | -K tso off sg on ... | stats64
//! e1000ctl status | suspend | resume | wake | inject FAULT [MS] | ping [COUNT]
//! e1000ctl traffic start FRAMES [--sizes 60,1514] | traffic status | traffic wait
//! e1000ctl cable plug|unplug | shutdown
//! e1000ctl --json ANY-OF-THE-ABOVE
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use e1000d::format;
use e1000d::protocol::{Fault, FeatureChange, Mdix, Reply, Request, TrafficReport};
use e1000d::{request, ClientError};

/// The name shown in ethtool's headers.
const DEV: &str = "e1000";

/// Exit statuses: what `--help` says and [`main`] returns.
const EXIT_STATUS: &str = "Exit status:
  0  done
  1  the command line is wrong, or e1000d refused or failed the request (its reason on
     stderr), a self-test failed (-t), an echo request went unanswered (ping), or the
     traffic stream lost frames (traffic wait)
  2  no answer from e1000d: no daemon at --socket, a timeout, or a malformed reply";
/// Exit status 1 (see [`EXIT_STATUS`]).
const EXIT_FAILED: u8 = 1;
/// Exit status 2 (see [`EXIT_STATUS`]).
const EXIT_NO_ANSWER: u8 = 2;

/// Control the e1000 microdriver daemon (ethtool's options).
#[derive(Debug, Parser)]
#[command(name = "e1000ctl", version, about, after_help = EXIT_STATUS)]
struct Cli {
    /// e1000d's control socket.
    #[arg(long, global = true, value_name = "PATH", default_value = e1000d::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the reply as one JSON document (for scripts) instead of ethtool's layout:
    /// the reply's fields, durations in seconds, MAC addresses as strings, -S as an
    /// object by name; `{}` for a command that only acts.
    #[arg(long, global = true)]
    json: bool,
    /// With -i, -c or -d: after ethtool's lines, what the e1000 has and ethtool does not
    /// show (-i: the part and PBA number; -c: the absolute delay timers and the interrupt
    /// rate limit; -d: every register of the dump, named, not only those ethtool decodes).
    #[arg(long, global = true)]
    e1000_extras: bool,
    #[command(flatten)]
    op: Ops,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Debug, clap::Args)]
#[group(multiple = false)]
struct Ops {
    /// Show driver information.
    #[arg(short = 'i', long = "driver")]
    driver: bool,
    /// Show statistics.
    #[arg(short = 'S', long = "statistics")]
    statistics: bool,
    /// Show ring sizes.
    #[arg(short = 'g', long = "show-ring")]
    show_ring: bool,
    /// Set ring sizes: rx N tx N.
    #[arg(short = 'G', long = "set-ring", num_args = 2.., value_names = ["PARAM", "VALUE"])]
    set_ring: Option<Vec<String>>,
    /// Show pause parameters.
    #[arg(short = 'a', long = "show-pause")]
    show_pause: bool,
    /// Set pause parameters: autoneg on|off rx on|off tx on|off.
    #[arg(short = 'A', long = "pause", num_args = 2.., value_names = ["PARAM", "VALUE"])]
    pause: Option<Vec<String>>,
    /// Show interrupt coalescing.
    #[arg(short = 'c', long = "show-coalesce")]
    show_coalesce: bool,
    /// Set interrupt coalescing: rx-usecs N (receive delay, RDTR) tx-usecs N (transmit
    /// delay, TIDV) adaptive-rx on|off. The e1000's absolute timers: `abs-delay`.
    #[arg(short = 'C', long = "coalesce", num_args = 2.., value_names = ["PARAM", "VALUE"])]
    coalesce: Option<Vec<String>>,
    /// Dump the EEPROM: [offset N] [length N].
    #[arg(short = 'e', long = "eeprom-dump", num_args = 0.., value_names = ["PARAM", "VALUE"])]
    eeprom_dump: Option<Vec<String>>,
    /// Dump the registers.
    #[arg(short = 'd', long = "register-dump")]
    register_dump: bool,
    /// Run the self-tests: offline (default; the link drops for a moment) or online.
    #[arg(short = 't', long = "test", num_args = 0..=1, value_name = "offline|online", default_missing_value = "offline")]
    test: Option<String>,
    /// Restart auto-negotiation.
    #[arg(short = 'r', long = "negotiate")]
    negotiate: bool,
    /// Change link settings: speed 10|100|1000 duplex half|full autoneg on|off
    /// mdix auto|on|off (on: MDI-X, off: MDI) wol pumbg|d (Wake-on-LAN modes).
    #[arg(short = 's', long = "change", num_args = 2.., value_names = ["PARAM", "VALUE"])]
    change: Option<Vec<String>>,
    /// Show the feature flags (offloads).
    #[arg(short = 'k', long = "show-features", visible_alias = "show-offload")]
    show_features: bool,
    /// Change feature flags: FEATURE on|off ... (ethtool's names, or rx, tx, sg, tso, rxvlan, txvlan).
    #[arg(short = 'K', long = "features", visible_alias = "offload", num_args = 2.., value_names = ["FEATURE", "on|off"])]
    features: Option<Vec<String>>,
    /// Blink the LED for SECONDS (default 3).
    #[arg(short = 'p', long = "identify", num_args = 0..=1, value_name = "SECONDS", default_missing_value = "3")]
    identify: Option<String>,
}

impl Ops {
    fn any(&self) -> bool {
        self.driver
            || self.statistics
            || self.show_ring
            || self.set_ring.is_some()
            || self.show_pause
            || self.pause.is_some()
            || self.show_coalesce
            || self.coalesce.is_some()
            || self.eeprom_dump.is_some()
            || self.register_dump
            || self.test.is_some()
            || self.negotiate
            || self.change.is_some()
            || self.identify.is_some()
            || self.show_features
            || self.features.is_some()
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The net-device statistics (rtnl_link_stats64), as `ip -s -s link` shows them.
    Stats64,
    /// The microdriver's view: power state, user half, restarts, calls per entry, tracker,
    /// rejections.
    Status,
    /// Suspend the device as a system suspend does: close the interface, arm Wake-on-LAN
    /// (`-s wol`) or, with none, power the PHY down. Only reads work until `resume`.
    Suspend,
    /// Resume a suspended device: power the PHY up, report what woke it, reset and
    /// reprogram it, and reopen the interface if it was open.
    Resume,
    /// Make the simulated peer send a magic packet for the NIC's address (etherwake on
    /// the other end of the wire; --sim only).
    Wake,
    /// Revive a degraded driver (its user half crash-looped) now, instead of at the
    /// supervisor's next attempt (`status` says when), and wait until it answers.
    Revive,
    /// Cause a fault in the user half and wait until it answers again.
    Inject {
        /// crash, kill, hang, garbage, panic, forged, hold-lock, hold-repeatedly, slow MS,
        /// crash-during-reattach, hang-standby.
        fault: String,
        /// Milliseconds, for `slow`.
        arg: Option<u32>,
    },
    /// Ping 10.0.2.2 from the daemon's own stack (simulated wire, no TAP).
    Ping {
        /// Echo requests to send.
        #[arg(default_value_t = 4)]
        count: u32,
    },
    /// The traffic generator on the simulated wire.
    Traffic {
        #[command(subcommand)]
        action: TrafficCmd,
    },
    /// Plug or unplug the simulated wire's cable (--sim only): the link goes down and up
    /// as with a real cable.
    Cable {
        /// plug or unplug.
        #[arg(value_parser = ["plug", "unplug"])]
        action: String,
    },
    /// Set the e1000's absolute interrupt delay timers, which ethtool has no parameters
    /// for: rx-usecs-abs N (RADV) tx-usecs-abs N (TADV). `-c --e1000-extras` shows them.
    AbsDelay {
        /// rx-usecs-abs N and/or tx-usecs-abs N.
        #[arg(num_args = 2.., value_names = ["PARAM", "VALUE"], required = true)]
        params: Vec<String>,
    },
    /// Stop the daemon.
    Shutdown,
}

#[derive(Debug, Subcommand)]
enum TrafficCmd {
    /// Start FRAMES frames each way and return.
    Start {
        /// Frames each way.
        frames: u64,
        /// Frame sizes to cycle through (60 to 1514).
        #[arg(long, value_delimiter = ',', default_value = "60,128,512,1024,1514")]
        sizes: Vec<u32>,
    },
    /// Show the current (or last) stream.
    Status,
    /// Wait for the stream to finish, with a progress line; fails if a frame was lost.
    Wait,
}

/// A command-line error in ethtool's words.
fn bad_args(msg: &str) -> ExitCode {
    eprintln!("e1000ctl: bad command line argument(s): {msg}");
    eprintln!("For more information run e1000ctl -h");
    ExitCode::from(EXIT_FAILED)
}

fn parse_on_off(param: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{param} takes on or off, not {v:?}")),
    }
}

fn parse_num(param: &str, v: &str) -> Result<u32, String> {
    v.parse()
        .map_err(|_| format!("{param} takes a number, not {v:?}"))
}

/// Splits `PARAM VALUE ...` pairs, checking names against `known`.
fn pairs<'a>(args: &'a [String], known: &[&str]) -> Result<Vec<(&'a str, &'a str)>, String> {
    if !args.len().is_multiple_of(2) {
        return Err(format!(
            "{} has no value",
            args.last().map_or("", String::as_str)
        ));
    }
    let mut seen = Vec::new();
    for chunk in args.chunks(2) {
        let (k, v) = (chunk[0].as_str(), chunk[1].as_str());
        if !known.contains(&k) {
            return Err(format!(
                "unknown parameter {k:?} (expected one of: {})",
                known.join(", ")
            ));
        }
        if seen.iter().any(|(s, _)| *s == k) {
            return Err(format!("{k} given twice"));
        }
        seen.push((k, v));
    }
    Ok(seen)
}

fn build_request(cli: &Cli) -> Result<Request, String> {
    let o = &cli.op;
    if let Some(cmd) = &cli.cmd {
        if o.any() {
            return Err("give either one ethtool option or one command, not both".into());
        }
        return Ok(match cmd {
            Cmd::Stats64 => Request::Stats64,
            Cmd::Status => Request::Status,
            Cmd::Suspend => Request::Suspend,
            Cmd::Resume => Request::Resume,
            Cmd::Wake => Request::Wake,
            Cmd::Revive => Request::Revive,
            Cmd::Inject { fault, arg } => Request::Inject {
                fault: Fault::parse(fault, *arg)?,
            },
            Cmd::Ping { count } => Request::Ping { count: *count },
            Cmd::Traffic { action } => match action {
                TrafficCmd::Start { frames, sizes } => Request::TrafficStart {
                    frames: *frames,
                    sizes: sizes.clone(),
                },
                TrafficCmd::Status | TrafficCmd::Wait => Request::TrafficStatus,
            },
            Cmd::Shutdown => Request::Shutdown,
            Cmd::Cable { action } => Request::Cable {
                plugged: action == "plug",
            },
            Cmd::AbsDelay { params } => {
                let (mut rx, mut tx) = (None, None);
                for (k, v) in pairs(params, &["rx-usecs-abs", "tx-usecs-abs"])? {
                    let n = Some(parse_num(k, v)?);
                    if k == "rx-usecs-abs" {
                        rx = n;
                    } else {
                        tx = n;
                    }
                }
                Request::SetCoalesce {
                    rx_usecs: None,
                    tx_usecs: None,
                    rx_usecs_abs: rx,
                    tx_usecs_abs: tx,
                    adaptive_rx: None,
                }
            }
        });
    }
    if o.driver {
        return Ok(Request::DrvInfo);
    }
    if o.statistics {
        return Ok(Request::Stats);
    }
    if o.show_ring {
        return Ok(Request::Rings);
    }
    if let Some(args) = &o.set_ring {
        let (mut rx, mut tx) = (None, None);
        for (k, v) in pairs(args, &["rx", "tx"])? {
            let n = Some(parse_num(k, v)?);
            if k == "rx" {
                rx = n;
            } else {
                tx = n;
            }
        }
        return Ok(Request::SetRings { rx, tx });
    }
    if o.show_pause {
        return Ok(Request::Pause);
    }
    if let Some(args) = &o.pause {
        let (mut autoneg, mut rx, mut tx) = (None, None, None);
        for (k, v) in pairs(args, &["autoneg", "rx", "tx"])? {
            let b = Some(parse_on_off(k, v)?);
            match k {
                "autoneg" => autoneg = b,
                "rx" => rx = b,
                _ => tx = b,
            }
        }
        return Ok(Request::SetPause { autoneg, rx, tx });
    }
    if o.show_coalesce {
        return Ok(Request::Coalesce);
    }
    if let Some(args) = &o.coalesce {
        let (mut rx_usecs, mut tx_usecs, mut adaptive_rx) = (None, None, None);
        for (k, v) in pairs(args, &["rx-usecs", "tx-usecs", "adaptive-rx"])? {
            match k {
                "rx-usecs" => rx_usecs = Some(parse_num(k, v)?),
                "tx-usecs" => tx_usecs = Some(parse_num(k, v)?),
                _ => adaptive_rx = Some(parse_on_off(k, v)?),
            }
        }
        return Ok(Request::SetCoalesce {
            rx_usecs,
            tx_usecs,
            rx_usecs_abs: None,
            tx_usecs_abs: None,
            adaptive_rx,
        });
    }
    if let Some(args) = &o.eeprom_dump {
        let (mut offset, mut length) = (0, None);
        for (k, v) in pairs(args, &["offset", "length"])? {
            let n = parse_num(k, v)?;
            if k == "offset" {
                offset = n;
            } else {
                length = Some(n);
            }
        }
        return Ok(Request::Eeprom { offset, length });
    }
    if o.register_dump {
        return Ok(Request::Regs);
    }
    if let Some(mode) = &o.test {
        return match mode.as_str() {
            "offline" => Ok(Request::SelfTest { offline: true }),
            "online" => Ok(Request::SelfTest { offline: false }),
            other => Err(format!("-t takes offline or online, not {other:?}")),
        };
    }
    if o.negotiate {
        return Ok(Request::NwayReset);
    }
    if let Some(args) = &o.change {
        let (mut speed, mut full_duplex, mut autoneg) = (None, None, None);
        let (mut mdix, mut wol) = (None, None);
        for (k, v) in pairs(args, &["speed", "duplex", "autoneg", "mdix", "wol"])? {
            match k {
                "speed" => speed = Some(parse_num(k, v)?),
                "duplex" => {
                    full_duplex = Some(match v {
                        "full" => true,
                        "half" => false,
                        _ => return Err(format!("duplex takes half or full, not {v:?}")),
                    })
                }
                "mdix" => {
                    mdix = Some(match v {
                        "auto" => Mdix::Auto,
                        "on" => Mdix::On,
                        "off" => Mdix::Off,
                        _ => {
                            return Err(format!(
                                "mdix takes auto, on (MDI-X) or off (MDI), not {v:?}"
                            ))
                        }
                    })
                }
                "wol" => wol = Some(format::parse_wol(v)?),
                _ => autoneg = Some(parse_on_off(k, v)?),
            }
        }
        return Ok(Request::SetLink {
            speed,
            full_duplex,
            autoneg,
            mdix,
            wol,
        });
    }
    if o.show_features {
        return Ok(Request::Features);
    }
    if let Some(args) = &o.features {
        return feature_request(args);
    }
    if let Some(secs) = &o.identify {
        return Ok(Request::Identify {
            seconds: parse_num("-p", secs)?,
        });
    }
    Ok(Request::LinkSettings)
}

/// `-K FEATURE on|off ...`: the names are the driver's to check (it knows which it has).
fn feature_request(args: &[String]) -> Result<Request, String> {
    if !args.len().is_multiple_of(2) {
        return Err(format!(
            "{} has no value",
            args.last().map_or("", String::as_str)
        ));
    }
    let changes = args
        .chunks(2)
        .map(|c| {
            Ok(FeatureChange {
                name: c[0].clone(),
                on: parse_on_off(&c[0], &c[1])?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Request::SetFeatures { changes })
}

fn timeout_for(req: &Request) -> Duration {
    match req {
        Request::Identify { seconds } => Duration::from_secs(u64::from(*seconds) + 30),
        Request::Ping { count } => Duration::from_secs(u64::from(*count) * 2 + 30),
        Request::SelfTest { .. }
        | Request::Inject { .. }
        | Request::Revive
        | Request::SetRings { .. }
        | Request::Suspend
        | Request::Resume => Duration::from_secs(120),
        _ => Duration::from_secs(30),
    }
}

/// Whether `reply` means the command failed (exit status 1), and why.
fn failure(reply: &Reply) -> Result<(), String> {
    match reply {
        Reply::SelfTest { results } if results.iter().any(|r| r.result != 0) => {
            Err("a self-test failed".into())
        }
        Reply::Ping(p) if p.replies.iter().any(Option::is_none) => {
            Err("some echo requests were not answered".into())
        }
        Reply::Error { message } => Err(message.clone()),
        _ => Ok(()),
    }
}

/// The link partner's PAUSE and asymmetric-PAUSE bits, if it advertised anything (what
/// `ethtool -a` resolves the negotiated pause from).
fn partner_pause(socket: &Path) -> Option<(bool, bool)> {
    match request(socket, &Request::LinkSettings, Duration::from_secs(30)) {
        Ok(Reply::Link(l)) if !l.lp_advertised.is_empty() || l.lp_pause || l.lp_asym_pause => {
            Some((l.lp_pause, l.lp_asym_pause))
        }
        _ => None,
    }
}

/// Prints `reply` (ethtool's layout, or JSON with `--json`); errors say why the command
/// failed.
fn print_reply(cli: &Cli, reply: &Reply) -> Result<(), String> {
    if cli.json && !matches!(reply, Reply::Error { .. }) {
        println!("{}", e1000d::json::reply(reply));
        return failure(reply);
    }
    let extras = cli.e1000_extras;
    let out = match reply {
        Reply::Done => String::new(),
        Reply::DrvInfo(d) if extras => {
            format!("{}{}", format::drvinfo(d), format::drvinfo_extras(d))
        }
        Reply::DrvInfo(d) => format::drvinfo(d),
        Reply::Link(l) => format::link(DEV, l),
        Reply::Stats { stats } => format::stats(stats),
        Reply::Rings(r) => format::rings(DEV, r),
        Reply::Pause(p) => {
            let lp = if p.autoneg {
                partner_pause(&cli.socket)
            } else {
                None
            };
            format::pause(DEV, p, lp)
        }
        Reply::Coalesce(c) if extras => {
            format!("{}{}", format::coalesce(DEV, c), format::coalesce_extras(c))
        }
        Reply::Coalesce(c) => format::coalesce(DEV, c),
        Reply::Eeprom { offset, data } => format::eeprom(*offset, data),
        Reply::Regs { regs } if extras => {
            format!("{}{}", format::regs(regs), format::regs_extras(regs))
        }
        Reply::Regs { regs } => format::regs(regs),
        Reply::SelfTest { results } => format::selftest(results),
        Reply::Features { features } => format::features(DEV, features),
        Reply::FeatureChanges {
            requested,
            before,
            after,
        } => format::feature_changes(requested, before, after),
        Reply::Stats64(n) => format!("{DEV}: net-device statistics\n{}", format::stats64(n)),
        Reply::Status(s) => format::status(s),
        Reply::Suspended(r) => format::suspended(DEV, r),
        Reply::Resumed(r) => format::resumed(DEV, r),
        Reply::Ping(p) => format::ping(p),
        Reply::Traffic(t) => format!("{}\n", format::traffic(t)),
        Reply::Error { .. } => String::new(),
    };
    print!("{out}");
    failure(reply)
}

fn wait_traffic(socket: &Path, json: bool) -> Result<TrafficReport, ClientError> {
    loop {
        let t = match request(socket, &Request::TrafficStatus, Duration::from_secs(30))? {
            Reply::Traffic(t) => t,
            other => return Err(ClientError::Unexpected(format!("{other:?}"))),
        };
        if !t.running {
            if json {
                println!("{}", e1000d::json::reply(&Reply::Traffic(t.clone())));
            } else {
                println!("\r{}", format::traffic(&t));
            }
            return Ok(t);
        }
        if json {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        print!("\r{}   ", format::traffic(&t));
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            return bad_args(first);
        }
    };
    let req = match build_request(&cli) {
        Ok(r) => r,
        Err(msg) => return bad_args(&msg),
    };
    if let Some(Cmd::Traffic {
        action: TrafficCmd::Wait,
    }) = &cli.cmd
    {
        return match wait_traffic(&cli.socket, cli.json) {
            Ok(t) if t.lost() == 0 && t.rx_bad == 0 && t.tx_refused == 0 => ExitCode::SUCCESS,
            Ok(t) => {
                eprintln!(
                    "e1000ctl: the stream lost {} frames ({} bad, {} refused)",
                    t.lost(),
                    t.rx_bad,
                    t.tx_refused
                );
                ExitCode::from(EXIT_FAILED)
            }
            Err(e) => {
                eprintln!("e1000ctl: {e}");
                ExitCode::from(EXIT_NO_ANSWER)
            }
        };
    }
    let fault = match &req {
        Request::Inject { fault } => Some(*fault),
        _ => None,
    };
    let before = if fault.is_some() {
        match request(&cli.socket, &Request::Status, Duration::from_secs(10)) {
            Ok(Reply::Status(s)) => s.split.and_then(|s| s.pid),
            _ => None,
        }
    } else {
        None
    };
    match request(&cli.socket, &req, timeout_for(&req)) {
        Ok(Reply::Status(s)) if fault.is_some() && cli.json => {
            println!("{}", e1000d::json::reply(&Reply::Status(s)));
            ExitCode::SUCCESS
        }
        Ok(Reply::Status(s)) if fault.is_some() => {
            let sp = s.split.as_ref();
            println!(
                "injected {:?}: user half pid {} -> pid {}; restarts {}, hangs {}, rejected frames {}{}",
                fault.unwrap_or(Fault::Crash),
                before.map_or("?".into(), |p| p.to_string()),
                sp.and_then(|s| s.pid).map_or("none".into(), |p| p.to_string()),
                sp.map_or(0, |s| s.restarts),
                sp.map_or(0, |s| s.hangs),
                sp.map_or(0, |s| s.rejected_frames),
                sp.and_then(|s| s.last_recovery)
                    .map(|d| format!(", last recovery {:.1} ms", d.as_secs_f64() * 1e3))
                    .unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(reply) => match print_reply(&cli, &reply) {
            Ok(()) => ExitCode::SUCCESS,
            Err(msg) => {
                eprintln!("e1000ctl: {msg}");
                ExitCode::from(EXIT_FAILED)
            }
        },
        Err(e @ ClientError::Daemon(_)) => {
            eprintln!("e1000ctl: {e}");
            ExitCode::from(EXIT_FAILED)
        }
        Err(e) => {
            eprintln!("e1000ctl: {e}");
            ExitCode::from(EXIT_NO_ANSWER)
        }
    }
}
