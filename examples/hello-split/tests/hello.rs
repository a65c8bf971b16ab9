//! hello-split end to end: split (the user half in its own process) and monolithic, a
//! user-half crash in the middle of a stream, and the kernel half refusing what the user
//! half may not do.
//!
//! A test binary that starts user halves is re-executed as the user half, so it has its own
//! `main` (`harness = false` in Cargo.toml) that calls `run_user_half_if_requested` first,
//! then runs the tests one at a time through `libtest-mimic` (the installed kernel endpoint
//! and the device are process-wide).

use std::time::Duration;

use hello_split::device::reg;
use hello_split::{
    probe, program_ring, set_max_frame, stats, transmit, wire, write_reg, HelloError, Nic,
};
use libtest_mimic::{Arguments, Failed, Trial};
use microdriver_rt::{current_half, run_user_half_if_requested, upcall, Half, SupervisorConfig};

type Test = fn() -> Result<(), Failed>;

fn main() {
    run_user_half_if_requested();
    let mut arguments = Arguments::from_args();
    arguments.test_threads = Some(1);
    let tests: [(&str, Test); 4] = [
        ("split_probe_transmit_stats", split_probe_transmit_stats),
        (
            "user_half_crash_loses_no_frame",
            user_half_crash_loses_no_frame,
        ),
        ("monolithic_same_driver", monolithic_same_driver),
        (
            "kernel_half_refuses_the_user_half",
            kernel_half_refuses_the_user_half,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, test)| Trial::test(name, test))
        .collect();
    libtest_mimic::run(&arguments, trials).exit();
}

fn frame(seq: u32) -> Vec<u8> {
    let mut frame = vec![0u8; 60];
    frame[14..18].copy_from_slice(&seq.to_be_bytes());
    frame
}

fn check_wire(frames: u32) -> Result<(), Failed> {
    let on_wire = wire();
    if on_wire.len() != frames as usize {
        return Err(format!("{} frames on the wire, {frames} sent", on_wire.len()).into());
    }
    if let Some(seq) = (0..frames).find(|&seq| on_wire[seq as usize] != frame(seq)) {
        return Err(format!("frame {seq} is not the one sent in its place").into());
    }
    Ok(())
}

fn split_probe_transmit_stats() -> Result<(), Failed> {
    let driver = microdriver_rt::start(SupervisorConfig::default())?;
    assert_eq!(current_half(), Half::Kernel);
    let nic = Nic::attach();
    let info = probe(&nic, 64)?;
    assert_eq!(info.ring_size, 64);
    for seq in 0..1000 {
        transmit(&nic, &frame(seq))?;
    }
    let stats = stats(&nic)?;
    assert_eq!(Some(stats.pid), driver.pid(), "stats ran in the user half");
    assert_ne!(stats.pid, std::process::id());
    assert_eq!(
        (stats.sent, stats.ring_size, stats.tail),
        (1000, 64, 1000 % 64)
    );
    check_wire(1000)?;
    driver.stop();
    assert_eq!(
        current_half(),
        Half::Monolithic,
        "stop returns to monolithic"
    );
    Ok(())
}

fn user_half_crash_loses_no_frame() -> Result<(), Failed> {
    let driver = microdriver_rt::start(SupervisorConfig::default())?;
    let nic = Nic::attach();
    probe(&nic, 256)?;
    set_max_frame(&nic, 128)?;
    let old_pid = driver.pid();
    for seq in 0..20_000 {
        if seq == 5_000 {
            driver.kill_user_half();
            // The old user half is gone: an upcall now fails with an error (or, once the
            // restart is through, reaches the new one); the hot path goes on regardless.
            if let Ok(stats) = stats(&nic) {
                assert_ne!(Some(stats.pid), old_pid, "a dead user half answered");
            }
        }
        transmit(&nic, &frame(seq))?;
    }
    if !driver.wait_restarted(old_pid, Duration::from_secs(10)) {
        return Err("the user half did not come back".into());
    }
    let stats = stats(&nic)?;
    assert_ne!(Some(stats.pid), old_pid, "a new user half answers");
    assert_eq!(stats.sent, 20_000);
    check_wire(20_000)?;
    // The configuration lives in the kernel half: the crash did not reset it.
    assert_eq!(nic.config.lock()?.max_frame, 128);
    assert_eq!(driver.status().restarts, 1);
    Ok(())
}

fn monolithic_same_driver() -> Result<(), Failed> {
    assert_eq!(current_half(), Half::Monolithic);
    let nic = Nic::attach();
    probe(&nic, 64)?;
    for seq in 0..1000 {
        transmit(&nic, &frame(seq))?;
    }
    let stats = stats(&nic)?;
    assert_eq!(stats.pid, std::process::id(), "everything runs here");
    assert_eq!((stats.sent, stats.tail), (1000, 1000 % 64));
    check_wire(1000)
}

/// A user-half function that tries to write the hot path's tail register.
#[upcall]
fn write_tail_from_user_half(value: u32) -> Result<(), HelloError> {
    write_reg(reg::TAIL, value)
}

/// A user-half function that tries to program an impossible ring.
#[upcall]
fn program_huge_ring(nic: &Nic) -> Result<(), HelloError> {
    program_ring(nic, 1 << 20)
}

fn kernel_half_refuses_the_user_half() -> Result<(), Failed> {
    let _driver = microdriver_rt::start(SupervisorConfig::default())?;
    let nic = Nic::attach();
    assert_eq!(
        transmit(&nic, &frame(0)),
        Err(HelloError::NotProbed),
        "no transmit before probe"
    );
    assert_eq!(probe(&nic, 1), Err(HelloError::BadRingSize(1)));
    probe(&nic, 16)?;
    assert_eq!(
        write_tail_from_user_half(3),
        Err(HelloError::Refused(reg::TAIL))
    );
    assert_eq!(
        program_huge_ring(&nic),
        Err(HelloError::BadRingSize(1 << 20))
    );
    assert_eq!(set_max_frame(&nic, 10), Err(HelloError::BadMaxFrame(10)));
    assert!(matches!(
        transmit(&nic, &[0; 2000]),
        Err(HelloError::BadFrame {
            len: 2000,
            max: 1514
        })
    ));
    // Nothing the user half was refused reached the device.
    transmit(&nic, &frame(0))?;
    check_wire(1)
}
