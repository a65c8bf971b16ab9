//! `cargo-microdriver`: run as `cargo microdriver <command> PATH` once installed, or
//! `cargo run -p microdriver-split -- <command> PATH` in the workspace.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    match microdriver_split::cli::run(args, &mut out, &mut err) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        Err(e) => {
            eprintln!("cargo-microdriver: error: {e}");
            ExitCode::from(2)
        }
    }
}
