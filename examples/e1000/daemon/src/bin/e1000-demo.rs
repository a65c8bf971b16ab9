//! The e1000 microdriver demo (README's main command).
//!
//! Starts e1000d on the simulated 82540EM (the driver's kernel half in this process, its
//! user half in a sandboxed child under a supervisor) and drives it through its control
//! socket exactly as `e1000ctl` does: brings the link up, pings the simulated peer, runs
//! traffic both ways with a progress line, kills the user half mid-stream, shows that
//! traffic never stopped and the user half came back, and prints the ethtool-style
//! statistics and the microdriver's status.
//!
//! `cargo run --release -p e1000d --bin e1000-demo` (`-- --frames N`, `-- --monolithic`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use e1000d::format;
use e1000d::protocol::{Fault, Reply, Request, TrafficReport};
use e1000d::{request, Daemon, DaemonConfig};
use microdriver_rt::component::run_user_half_if_requested;

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
                if !(1000..=10_000_000).contains(&out.frames) {
                    return Err("--frames takes 1000 to 10000000".into());
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

fn ask(socket: &Path, req: Request) -> Result<Reply, String> {
    let timeout = Duration::from_secs(60);
    request(socket, &req, timeout).map_err(|e| format!("{req:?}: {e}"))
}

fn traffic(socket: &Path) -> Result<TrafficReport, String> {
    match ask(socket, Request::TrafficStatus)? {
        Reply::Traffic(t) => Ok(t),
        other => Err(format!("unexpected reply {other:?}")),
    }
}

fn run() -> Result<(), String> {
    let args = args()?;
    let started = Instant::now();
    println!("== e1000 microdriver demo: e1000d on a simulated 82540EM, the far end of the wire is 10.0.2.2");
    let socket: PathBuf =
        std::env::temp_dir().join(format!("e1000-demo-{}.sock", std::process::id()));
    let cfg = DaemonConfig {
        monolithic: args.monolithic,
        socket: socket.clone(),
        ..DaemonConfig::default()
    };
    let daemon = Daemon::start(cfg).map_err(|e| format!("starting e1000d: {e}"))?;
    let server = std::thread::spawn(move || daemon.serve());

    let outcome = drive(&socket, &args);
    // Stop the daemon whatever happened, and wait for its clean shutdown.
    let _ = ask(&socket, Request::Shutdown);
    let _ = server.join();
    outcome?;
    println!(
        "\ne1000d shut down cleanly; demo done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn drive(socket: &Path, args: &Args) -> Result<(), String> {
    let status = match ask(socket, Request::Status)? {
        Reply::Status(s) => s,
        other => return Err(format!("unexpected reply {other:?}")),
    };
    match &status.split {
        Some(sp) => println!(
            "e1000d: kernel half in pid {}, user half in sandboxed pid {} (control socket {})",
            status.daemon_pid,
            sp.pid.unwrap_or(0),
            socket.display()
        ),
        None => println!(
            "e1000d --monolithic: the whole driver in pid {}",
            status.daemon_pid
        ),
    }
    if let Reply::DrvInfo(d) = ask(socket, Request::DrvInfo)? {
        println!("probed {} (driver {} {})", d.part, d.driver, d.version);
    }
    if let Reply::Link(l) = ask(socket, Request::LinkSettings)? {
        println!(
            "link {}: {} Mb/s {} duplex, MAC {} (read from the EEPROM by the user half)",
            if l.link_up { "up" } else { "down" },
            l.speed,
            if l.full_duplex { "full" } else { "half" },
            format::mac(l.mac)
        );
    }
    if let Reply::Ping(p) = ask(socket, Request::Ping { count: 3 })? {
        print!("{}", format::ping(&p));
        if p.replies.iter().any(Option::is_none) {
            return Err("the peer did not answer every ping".into());
        }
    }

    println!(
        "\ntraffic: {} frames each way (sizes 60..1514), the user half is killed at 40%",
        args.frames
    );
    ask(
        socket,
        Request::TrafficStart {
            frames: args.frames,
            sizes: vec![60, 128, 512, 1024, 1514],
        },
    )?;
    let mut killed = false;
    let mut last = (Instant::now(), 0u64, 0u64);
    let report = loop {
        std::thread::sleep(Duration::from_millis(250));
        let t = traffic(socket)?;
        let secs = last.0.elapsed().as_secs_f64();
        println!(
            "  tx {:>8} ({:>7.0} pkt/s)  rx {:>8} ({:>7.0} pkt/s)  drops {}",
            t.tx_accepted,
            (t.tx_accepted - last.1) as f64 / secs,
            t.rx_in_order,
            (t.rx_in_order - last.2) as f64 / secs,
            t.rx_bad + t.tx_refused
        );
        last = (Instant::now(), t.tx_accepted, t.rx_in_order);
        if !killed && !args.monolithic && t.rx_in_order >= args.frames * 2 / 5 {
            killed = true;
            let before = match ask(socket, Request::Status)? {
                Reply::Status(s) => s.split.and_then(|s| s.pid).unwrap_or(0),
                _ => 0,
            };
            println!(">>> killing the user half (pid {before}) mid-stream: e1000ctl inject crash");
            match ask(
                socket,
                Request::Inject {
                    fault: Fault::Crash,
                },
            )? {
                Reply::Status(s) => {
                    let sp = s.split.ok_or("a split e1000d reported no user half")?;
                    println!(
                        ">>> user half restarted as pid {} in {:.1} ms (restarts {})",
                        sp.pid.unwrap_or(0),
                        sp.last_recovery.unwrap_or_default().as_secs_f64() * 1e3,
                        sp.restarts
                    );
                }
                other => return Err(format!("unexpected reply {other:?}")),
            }
        }
        if !t.running {
            break t;
        }
    };
    println!("{}", format::traffic(&report));
    if report.lost() != 0 || report.rx_bad != 0 || report.tx_refused != 0 {
        return Err("frames were lost, refused or corrupted".into());
    }
    if killed {
        println!(
            "the user half died mid-stream; traffic never stopped and no accepted frame was lost"
        );
    }

    println!("\n$ e1000ctl -S   (non-zero counters; read through the restarted user half)");
    if let Reply::Stats { stats } = ask(socket, Request::Stats)? {
        let nonzero: Vec<_> = stats.into_iter().filter(|(_, v)| *v != 0).collect();
        print!("{}", format::stats(&nonzero));
    }
    println!("\n$ e1000ctl status");
    if let Reply::Status(s) = ask(socket, Request::Status)? {
        print!("{}", format::status(&s));
    }
    Ok(())
}
