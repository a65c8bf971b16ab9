//! `e1000d --param Name=value`: a bad value stops start-up with the parser's message; good
//! ones reach the driver before the interface opens and show in e1000ctl's output.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{field, register, temp_path, DaemonProcess};

/// Runs `e1000d --sim ARGS` to its exit (it must exit, and quickly): status and stderr.
fn e1000d_exits(args: &[&str]) -> (std::process::ExitStatus, String) {
    let socket = temp_path("params-sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_e1000d"))
        .arg("--socket")
        .arg(&socket)
        .arg("--sim")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning e1000d");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for e1000d") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("e1000d {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut err).expect("reading stderr");
    }
    assert!(!socket.exists(), "no control socket was bound");
    (status, err)
}

#[test]
fn bad_params_stop_start_up_with_the_reason() {
    for (args, needles) in [
        (
            &["--param", "TxDescriptors=100"][..],
            &["TxDescriptors=100", "80..=4096", "96 or 104"][..],
        ),
        (&["--param", "Speed=99"], &["Speed=99", "10, 100 or 1000"]),
        (&["--param", "Sped=100"], &["Sped", "Speed"]),
        (
            &["--param", "Speed=100", "--param", "AutoNeg=0x08"],
            &["AutoNeg=0x08", "Speed=100"],
        ),
        (
            &["--rx-ring", "512", "--param", "RxDescriptors=1024"],
            &["--rx-ring", "RxDescriptors"],
        ),
        // In range, but not for this part: refused by the driver after probe.
        (
            &["--param", "SmartPowerDownEnable=1"],
            &["SmartPowerDownEnable=1", "IGP"],
        ),
    ] {
        let (status, err) = e1000d_exits(args);
        assert!(!status.success(), "{args:?} exited {status}");
        assert!(err.contains("e1000d"), "{err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: {err:?} lacks {n:?}");
        }
    }
}

#[test]
fn good_params_show_in_e1000ctl() {
    let d = DaemonProcess::start(&[
        "--sim",
        "--param",
        "RxDescriptors=1024",
        "--param",
        "TxDescriptors=512,4096",
        "--param",
        "RxIntDelay=50",
        "--param",
        "InterruptThrottleRate=8000",
    ]);
    let g = d.ok(&["-g"]);
    let cur = g
        .split("Current hardware settings:")
        .nth(1)
        .expect("-g shows current settings");
    assert_eq!(field(cur, "RX:"), Some("1024"), "{g}");
    assert_eq!(field(cur, "TX:"), Some("512"), "board 0's value: {g}");
    let c = d.ok(&["-c", "--e1000-extras"]);
    // 50 units of 1.024 us are 51.2 us: shown rounded up, so the register gets 50.
    assert_eq!(field(&c, "rx-usecs"), Some("52"), "{c}");
    assert_eq!(field(&c, "rate-limit"), Some("8000"), "{c}");
    assert!(c.contains("Adaptive RX: off"), "{c}");
    // And in the registers: RDTR in 1.024 us units, ITR in 256 ns (10^9 / (256 * 8000)).
    let regs = d.ok(&["-d", "--e1000-extras"]);
    assert_eq!(register(&regs, "RDTR") & 0xFFFF, 50, "{regs}");
    assert_eq!(register(&regs, "ITR") & 0xFFFF, 488, "{regs}");
}
