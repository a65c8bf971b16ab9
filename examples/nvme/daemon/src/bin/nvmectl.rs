//! nvmectl: nvme-cli's commands against the controller nvmed drives.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use nvmed::client;
use nvmed::daemon::DEFAULT_SOCKET;
use nvmed::protocol::{Fault, Reply, Request};

#[derive(Parser, Debug)]
#[command(
    name = "nvmectl",
    about = "nvme-cli's commands, through nvmed's control socket"
)]
struct Args {
    /// nvmed's control socket.
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum FaultArg {
    Crash,
    Hang,
    Garbage,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The device nvmed serves.
    List,
    /// Identify Controller.
    IdCtrl,
    /// Identify Namespace.
    IdNs {
        /// Namespace id.
        #[arg(short = 'n', long = "namespace-id", default_value_t = 1)]
        nsid: u32,
    },
    /// The SMART / health log.
    SmartLog,
    /// The error information log.
    ErrorLog {
        /// Entries.
        #[arg(short = 'e', long = "log-entries", default_value_t = 64)]
        entries: u32,
    },
    /// Get Features.
    GetFeature {
        /// Feature id.
        #[arg(short = 'f', long = "feature-id", value_parser = parse_int)]
        fid: u32,
        /// Select (0 current, 1 default, 2 saved, 3 supported).
        #[arg(short = 's', long = "sel", default_value_t = 0)]
        sel: u8,
    },
    /// Set Features.
    SetFeature {
        /// Feature id.
        #[arg(short = 'f', long = "feature-id", value_parser = parse_int)]
        fid: u32,
        /// Value (dword 11).
        #[arg(short = 'v', long = "value", value_parser = parse_int)]
        value: u32,
    },
    /// Format NVM.
    Format {
        /// Namespace id.
        #[arg(short = 'n', long = "namespace-id", default_value_t = 1)]
        nsid: u32,
        /// LBA format.
        #[arg(short = 'l', long = "lbaf", default_value_t = 0)]
        lbaf: u8,
        /// Secure erase setting.
        #[arg(short = 's', long = "ses", default_value_t = 0)]
        ses: u8,
    },
    /// Abort an I/O command in flight (the driver aborts overdue commands itself).
    Abort {
        /// Submission queue id.
        #[arg(short = 'q', long = "sqid", default_value_t = 1)]
        sqid: u16,
        /// Command id.
        #[arg(short = 'c', long = "cid", value_parser = parse_int)]
        cid: u32,
    },
    /// Reset the controller (queues re-created, in-flight I/O resubmitted).
    Reset,
    /// The driver's state: split, restarts, recoveries, calls per entry.
    Status,
    /// Inject a fault into the user half.
    Inject {
        /// The fault.
        fault: FaultArg,
    },
    /// Stop nvmed.
    Shutdown,
}

fn parse_int(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s}: {e}"))
}

fn byte(v: u32, what: &str) -> u8 {
    u8::try_from(v).unwrap_or_else(|_| {
        eprintln!("nvmectl: {what} {v:#x} does not fit a byte");
        std::process::exit(2)
    })
}

fn main() {
    let a = Args::parse();
    let req = match a.cmd {
        Cmd::List => Request::List,
        Cmd::IdCtrl => Request::IdCtrl,
        Cmd::IdNs { nsid } => Request::IdNs { nsid },
        Cmd::SmartLog => Request::SmartLog,
        Cmd::ErrorLog { entries } => Request::ErrorLog { entries },
        Cmd::GetFeature { fid, sel } => Request::GetFeature {
            fid: byte(fid, "feature id"),
            sel,
        },
        Cmd::SetFeature { fid, value } => Request::SetFeature {
            fid: byte(fid, "feature id"),
            value,
        },
        Cmd::Format { nsid, lbaf, ses } => Request::Format { nsid, lbaf, ses },
        Cmd::Abort { sqid, cid } => Request::Abort {
            sqid,
            cid: u16::try_from(cid).unwrap_or_else(|_| {
                eprintln!("nvmectl: command id {cid:#x} does not fit 16 bits");
                std::process::exit(2)
            }),
        },
        Cmd::Reset => Request::Reset,
        Cmd::Status => Request::Status,
        Cmd::Inject { fault } => Request::Inject {
            fault: match fault {
                FaultArg::Crash => Fault::Crash,
                FaultArg::Hang => Fault::Hang,
                FaultArg::Garbage => Fault::Garbage,
            },
        },
        Cmd::Shutdown => Request::Shutdown,
    };
    match client::call(&a.socket, &req, Duration::from_secs(120)) {
        Ok(Reply::Ok { text }) => print!("{text}"),
        Ok(Reply::Error { message }) => {
            eprintln!("nvmectl: {message}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("nvmectl: {} : {e}", a.socket.display());
            std::process::exit(1);
        }
    }
}
