//! nvmed without a kernel: the NBD protocol server driven over a socket pair the way the
//! kernel's NBD driver drives it (pipelined requests, replies in any order), and the
//! daemon's control socket with the driver split, on the controller model.
//!
//! Own `main` (`harness = false`): the daemon test starts a user half, which re-executes
//! this binary.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};
use nvme::host::Options;
use nvme::BlockDev;
use nvmed::daemon::{Daemon, DaemonConfig};
use nvmed::nbd::{self, cmd, NbdStats, REPLY_MAGIC, REQUEST_MAGIC};
use nvmed::protocol::{Fault, Reply, Request};

type Test = fn() -> Result<(), Failed>;

fn main() {
    microdriver_rt::run_user_half_if_requested();
    let mut arguments = Arguments::from_args();
    arguments.test_threads = Some(1);
    let tests: [(&str, Test); 4] = [
        ("nbd_64_deep_pipelined_reads", qd64),
        ("nbd_requests_reach_the_controller", nbd_requests),
        ("nbd_bad_magic_ends_the_connection", nbd_bad_magic),
        ("daemon_control_socket_split_with_faults", daemon_control),
    ];
    let trials = tests.into_iter().map(|(n, t)| Trial::test(n, t)).collect();
    libtest_mimic::run(&arguments, trials).exit();
}

struct Kernel {
    sock: UnixStream,
}

impl Kernel {
    fn send(
        &mut self,
        kind: u16,
        handle: u64,
        from: u64,
        len: u32,
        data: &[u8],
    ) -> std::io::Result<()> {
        let mut h = Vec::with_capacity(28 + data.len());
        h.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
        h.extend_from_slice(&u32::from(kind).to_be_bytes());
        h.extend_from_slice(&handle.to_be_bytes());
        h.extend_from_slice(&from.to_be_bytes());
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(data);
        self.sock.write_all(&h)
    }

    /// Reads one reply; `lens` says how many data bytes each handle's reply carries.
    fn reply(&mut self, lens: &HashMap<u64, usize>) -> Result<(u64, u32, Vec<u8>), Failed> {
        let mut h = [0u8; 16];
        self.sock.read_exact(&mut h)?;
        let magic = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if magic != REPLY_MAGIC {
            return Err(format!("reply magic {magic:#x}").into());
        }
        let err = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[8..16]);
        let handle = u64::from_be_bytes(b);
        let mut data = vec![
            0u8;
            if err == 0 {
                lens.get(&handle).copied().unwrap_or(0)
            } else {
                0
            }
        ];
        self.sock.read_exact(&mut data)?;
        Ok((handle, err, data))
    }
}

fn bytes(seed: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(seed) ^ (i >> 9) as u8)
        .collect()
}

fn nbd_requests() -> Result<(), Failed> {
    let (sim, hw) = nvme_sim::start(nvme_sim::SimConfig::default());
    let dev = Arc::new(BlockDev::start(hw, Options::default())?);
    let (ours, theirs) = UnixStream::pair()?;
    let stats = Arc::new(NbdStats::default());
    let server = {
        let (dev, stats) = (Arc::clone(&dev), Arc::clone(&stats));
        std::thread::spawn(move || nbd::serve(dev, ours, stats))
    };
    theirs.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut k = Kernel { sock: theirs };
    // Pipelined: three writes (one of 1 MiB: eight 128 KiB commands), then their reads.
    let writes = [
        (1u64, 65_536u64, bytes(3, 1 << 20)),
        (2, 0, bytes(5, 4096)),
        (3, 2 << 20, bytes(7, 512)),
    ];
    for (h, off, d) in &writes {
        k.send(cmd::WRITE, *h, *off, d.len() as u32, d)?;
    }
    let mut lens = HashMap::new();
    for _ in 0..3 {
        let (h, err, _) = k.reply(&lens)?;
        assert_eq!(err, 0, "write {h}");
    }
    for (h, off, d) in &writes {
        lens.insert(h + 10, d.len());
        k.send(cmd::READ, h + 10, *off, d.len() as u32, &[])?;
    }
    let mut got = HashMap::new();
    for _ in 0..3 {
        let (h, err, data) = k.reply(&lens)?;
        assert_eq!(err, 0);
        got.insert(h, data);
    }
    for (h, off, d) in &writes {
        assert_eq!(&got[&(h + 10)], d, "read back {h}");
        assert_eq!(&sim.media(*off as usize, d.len()), d, "on the medium {h}");
    }
    // Flush, trim, write zeroes.
    k.send(cmd::FLUSH, 20, 0, 0, &[])?;
    k.send(cmd::TRIM, 21, 65_536, 4096, &[])?;
    k.send(cmd::WRITE_ZEROES, 22, 65_536 + 8192, 1024, &[])?;
    for _ in 0..3 {
        assert_eq!(k.reply(&lens)?.1, 0);
    }
    assert_eq!(sim.media(65_536, 4096), vec![0; 4096]);
    assert_eq!(sim.media(65_536 + 8192, 1024), vec![0; 1024]);
    assert_eq!(
        sim.media(65_536 + 9216, 512),
        bytes(3, 1 << 20)[9216..9728].to_vec()
    );
    // Misaligned, past the end, unknown command: errors, the connection lives on.
    k.send(cmd::READ, 30, 100, 512, &[])?;
    k.send(cmd::READ, 31, 8192 * 512, 512, &[])?;
    k.send(99, 32, 0, 0, &[])?;
    let mut errs: Vec<(u64, u32)> = (0..3)
        .map(|_| k.reply(&lens).map(|(h, e, _)| (h, e)))
        .collect::<Result<_, _>>()?;
    errs.sort();
    assert_eq!(errs, vec![(30, 22), (31, 28), (32, 22)]);
    k.send(cmd::DISC, 40, 0, 0, &[])?;
    server.join().map_err(|_| "server panicked")??;
    assert_eq!(
        stats.requests.load(std::sync::atomic::Ordering::Relaxed),
        12
    );
    Arc::try_unwrap(dev).map_err(|_| "shared")?.shutdown()?;
    Ok(())
}

fn nbd_bad_magic() -> Result<(), Failed> {
    let (_sim, hw) = nvme_sim::start(nvme_sim::SimConfig::default());
    let dev = Arc::new(BlockDev::start(hw, Options::default())?);
    let (ours, mut theirs) = UnixStream::pair()?;
    let d = Arc::clone(&dev);
    let server = std::thread::spawn(move || nbd::serve(d, ours, Arc::default()));
    theirs.write_all(&[0x55; 28])?;
    match server.join().map_err(|_| "server panicked")? {
        Err(nbd::NbdError::Protocol(_)) => {}
        other => return Err(format!("expected a protocol error, got {other:?}").into()),
    }
    Arc::try_unwrap(dev).map_err(|_| "shared")?.shutdown()?;
    Ok(())
}

fn call(sock: &std::path::Path, req: Request) -> Result<String, Failed> {
    match nvmed::client::call(sock, &req, Duration::from_secs(60))? {
        Reply::Ok { text } => Ok(text),
        Reply::Error { message } => Err(format!("{req:?}: {message}").into()),
    }
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
    })
}

fn daemon_control() -> Result<(), Failed> {
    let dir = std::env::temp_dir().join(format!("nvmed-test-{}", std::process::id()));
    let sock = dir.join("ctl.sock");
    let cfg = DaemonConfig {
        socket: sock.clone(),
        sim_blocks: 20_000,
        ..DaemonConfig::default()
    };
    let d = Daemon::start(cfg, Arc::new(AtomicBool::new(false)))?;
    let server = std::thread::spawn(move || d.serve());
    let id = call(&sock, Request::IdCtrl)?;
    assert_eq!(field(&id, "sn"), Some("SIMNVME0001"), "{id}");
    let ns = call(&sock, Request::IdNs { nsid: 1 })?;
    assert_eq!(field(&ns, "nsze"), Some("0x4e20"), "{ns}");
    for fault in [Fault::Crash, Fault::Garbage, Fault::Hang] {
        let t = call(&sock, Request::Inject { fault })?;
        assert!(t.starts_with("injected"), "{t}");
        let smart = call(&sock, Request::SmartLog)?;
        assert_eq!(
            field(&smart, "temperature"),
            Some("37 C (310 Kelvin)"),
            "{smart}"
        );
    }
    call(&sock, Request::Reset)?;
    call(&sock, Request::SetFeature { fid: 6, value: 1 })?;
    let f = call(&sock, Request::GetFeature { fid: 6, sel: 0 })?;
    assert!(f.contains("Current value:0x00000001"), "{f}");
    // An abort naming no command in flight is refused, clearly.
    match call(
        &sock,
        Request::Abort {
            sqid: 1,
            cid: 0x1234,
        },
    ) {
        Err(e) => assert!(
            format!("{e:?}").contains("no command 0x1234 in flight"),
            "{e:?}"
        ),
        Ok(t) => return Err(format!("an abort of nothing answered {t}").into()),
    }
    // Temperature warnings on, a threshold under the model's 310 K: an event, reported.
    call(
        &sock,
        Request::SetFeature {
            fid: 0x0B,
            value: 2,
        },
    )?;
    call(&sock, Request::SetFeature { fid: 4, value: 300 })?;
    let f = call(&sock, Request::GetFeature { fid: 4, sel: 0 })?;
    assert!(f.contains("Current value:0x0000012c"), "{f}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let st = loop {
        let st = call(&sock, Request::Status)?;
        if st.contains("events: 1 (last: smart: temperature threshold") {
            break st;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("no event in the status: {st}").into());
        }
        std::thread::yield_now();
    };
    assert!(st.contains("recoveries: 1 (pending: no)"), "{st}");
    assert!(
        st.contains("restarts 2") || st.contains("restarts 3"),
        "crash and hang restart it: {st}"
    );
    assert!(st.contains("upcall   nvme::manage::smart_log"), "{st}");
    call(&sock, Request::Shutdown)?;
    server.join().map_err(|_| "daemon panicked")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn qd64() -> Result<(), Failed> {
    let (_sim, hw) = nvme_sim::start(nvme_sim::SimConfig::default());
    let dev = Arc::new(BlockDev::start(hw, Options::default())?);
    let (ours, theirs) = UnixStream::pair()?;
    let d = Arc::clone(&dev);
    let server = std::thread::spawn(move || nbd::serve(d, ours, Arc::default()));
    theirs.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut k = Kernel { sock: theirs };
    let mut lens = HashMap::new();
    for round in 0..20u64 {
        for h in 0..64u64 {
            lens.insert(round * 100 + h, 4096);
            k.send(
                cmd::READ,
                round * 100 + h,
                h * 600 * 4096 % (8000 * 512),
                4096,
                &[],
            )?;
        }
        for _ in 0..64 {
            let (_, e, _) = k.reply(&lens)?;
            assert_eq!(e, 0);
        }
    }
    k.send(cmd::DISC, 1, 0, 0, &[])?;
    server.join().map_err(|_| "panicked")??;
    Ok(())
}
