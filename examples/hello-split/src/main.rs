//! The hello-split demo: probe the toy NIC, send frames through the hot path, crash the
//! user half half-way (split mode), and show that no frame was lost and the user half
//! came back.
//!
//! ```sh
//! cargo run -p hello-split                 # split: the user half in its own process
//! cargo run -p hello-split -- --monolithic # the same driver, no split
//! ```

use std::process::ExitCode;
use std::time::Duration;

use hello_split::{probe, set_max_frame, stats, transmit, wire, HelloError, Nic};
use microdriver_rt::{run_user_half_if_requested, SupervisorConfig};

const FRAMES: u32 = 10_000;

fn main() -> ExitCode {
    // A split driver's executable is also its user half: the supervisor re-executes it,
    // and this call is where that process goes instead of running `main`.
    run_user_half_if_requested();
    match run(std::env::args().any(|a| a == "--monolithic")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello-split: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(monolithic: bool) -> Result<(), Box<dyn std::error::Error>> {
    let driver = if monolithic {
        None
    } else {
        Some(microdriver_rt::start(SupervisorConfig::default())?)
    };
    let mode = if monolithic { "monolithic" } else { "split" };
    println!(
        "hello-split ({mode}), kernel half pid {}",
        std::process::id()
    );

    let nic = Nic::attach();
    let info = probe(&nic, 256)?;
    println!(
        "probed device {:#010x} with a ring of {}",
        info.device_id, info.ring_size
    );
    set_max_frame(&nic, 1024)?;
    let refused = set_max_frame(&nic, 20).expect_err("a 20-byte maximum is refused");
    println!("set_max_frame(20) refused: {refused}");

    let mut old_pid = None;
    for seq in 0..FRAMES {
        if seq == FRAMES / 2 {
            if let Some(driver) = &driver {
                old_pid = driver.pid();
                println!("killing the user half (pid {})", old_pid.unwrap_or(0));
                driver.kill_user_half();
            }
        }
        // The hot path never waits for the user half: these go on while it is down.
        transmit(&nic, &frame(seq))?;
    }
    if let Some(driver) = &driver {
        if !driver.wait_restarted(old_pid, Duration::from_secs(10)) {
            return Err("the user half did not come back within 10 s".into());
        }
        println!(
            "user half restarted as pid {} ({} restart)",
            driver.pid().unwrap_or(0),
            driver.status().restarts
        );
    }

    let stats = stats(&nic)?;
    println!(
        "stats from pid {}: {} frames sent, ring {} with tail {}",
        stats.pid, stats.sent, stats.ring_size, stats.tail
    );
    let on_wire = wire();
    let lost = (0..FRAMES)
        .filter(|&seq| on_wire.get(seq as usize) != Some(&frame(seq)))
        .count();
    println!(
        "{} frames on the wire, {lost} lost or out of order",
        on_wire.len()
    );
    if lost != 0 || on_wire.len() != FRAMES as usize || stats.sent != FRAMES {
        return Err(Box::new(HelloError::Call("frames were lost".into())));
    }
    Ok(())
}

/// Frame `seq`: 60 bytes carrying its sequence number.
fn frame(seq: u32) -> Vec<u8> {
    let mut frame = vec![0u8; 60];
    frame[14..18].copy_from_slice(&seq.to_be_bytes());
    frame
}
