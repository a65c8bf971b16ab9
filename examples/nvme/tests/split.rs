//! The nvme driver against the controller model (`nvme-sim`): bring-up and identify, I/O
//! with every PRP shape, queue wrap, the doorbell stride, bad completions, a controller
//! that never becomes ready, recovery from a fatal status, a timeout and a forced reset
//! with nothing acknowledged lost or twice, the register and admin policy, and (split) a
//! user-half crash during a write stream.
//!
//! The binary starts user halves, which re-execute it: it has its own `main`
//! (`harness = false`), and runs its tests one at a time (the kernel endpoint is
//! process-wide).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use microdriver_rt::{run_user_half_if_requested, upcall, SupervisorConfig};
use nvme::command::{self, AdminCmd};
use nvme::host::Options;
use nvme::kernel::{self, AdminSqe, DevId};
use nvme::regs::{self, Cqe};
use nvme::{manage, BlockDev, IoOp, NvmeError};
use nvme_sim::{NvmeSim, SimConfig};
use parking_lot::Mutex;

type Test = fn() -> Result<(), Failed>;

fn main() {
    run_user_half_if_requested();
    let mut arguments = Arguments::from_args();
    arguments.test_threads = Some(1);
    let tests: [(&str, Test); 26] = [
        (
            "probe_identifies_what_the_controller_was_given",
            probe_identifies,
        ),
        ("read_write_every_prp_shape", read_write_every_prp_shape),
        ("queues_wrap_under_a_deep_stream", queues_wrap),
        ("doorbell_stride_is_followed", doorbell_stride),
        ("discard_write_zeroes_flush", discard_write_zeroes_flush),
        (
            "bogus_completions_are_refused",
            bogus_completions_are_refused,
        ),
        ("never_ready_controller_times_out", never_ready_times_out),
        (
            "fatal_status_recovers_nothing_lost_or_twice",
            fatal_recovers,
        ),
        (
            "command_timeout_recovers_nothing_lost_or_twice",
            timeout_recovers,
        ),
        ("reset_during_write_stream", reset_during_write_stream),
        ("management_commands", management_commands),
        (
            "user_half_refused_doorbells_bases_and_foreign_queues",
            policy_refusals,
        ),
        (
            "split_user_half_crash_during_write_stream",
            split_crash_during_stream,
        ),
        (
            "split_recovery_waits_for_a_restarted_user_half",
            split_recovery_across_restart,
        ),
        (
            "larger_transfers_after_a_reset_get_larger_buffers",
            transfer_size_grows,
        ),
        ("a_completion_callback_may_submit", callback_submits),
        ("completions_are_reaped_at_interrupts", reaped_at_interrupts),
        (
            "completion_by_polling_takes_no_interrupt",
            reaped_by_polling,
        ),
        (
            "timed_out_commands_are_aborted_and_resubmitted",
            timeout_aborts,
        ),
        (
            "a_command_the_controller_does_not_abort_resets_it",
            timeout_abort_refused_resets,
        ),
        (
            "a_controller_that_lies_about_an_abort_is_reset",
            timeout_abort_lies_resets,
        ),
        (
            "temperature_event_reported_cleared_and_rearmed",
            temperature_event,
        ),
        ("bad_event_completions_are_handled", bad_event_completions),
        ("features_have_their_own_functions", feature_functions),
        ("error_log_pages_past_one_page", error_log_paging),
        (
            "split_timeout_with_no_user_half_resets_from_the_kernel_half",
            split_timeout_without_user_half,
        ),
    ];
    let trials = tests
        .into_iter()
        .map(|(name, test)| Trial::test(name, test))
        .collect();
    libtest_mimic::run(&arguments, trials).exit();
}

fn start(cfg: SimConfig, opts: Options) -> Result<(Arc<NvmeSim>, BlockDev), Failed> {
    let (sim, hw) = nvme_sim::start(cfg);
    let dev = BlockDev::start(hw, opts)?;
    Ok((sim, dev))
}

/// Block contents that say where and when they were written.
fn pattern(lba: u64, blocks: u32, round: u32) -> Vec<u8> {
    (0..blocks as usize * 512)
        .map(|i| (lba as usize * 131 + i * 7 + round as usize * 29 + i / 512) as u8)
        .collect()
}

fn check(cond: bool, what: impl Into<String>) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(what.into().into())
    }
}

fn probe_identifies() -> Result<(), Failed> {
    let cfg = SimConfig {
        serial: "QEMUNVME-0042".into(),
        blocks: 12_345,
        ..SimConfig::default()
    };
    let (_sim, dev) = start(cfg, Options::default())?;
    let c = dev.controller();
    assert_eq!(c.id.sn, "QEMUNVME-0042");
    assert_eq!(c.id.mn, "microdriver NVMe model");
    assert_eq!((c.id.vid, c.id.nn, c.nsid), (0x1B36, 1, 1));
    assert_eq!(
        (c.ns.nsze, c.geometry.blocks, c.geometry.lba_shift),
        (12_345, 12_345, 9)
    );
    assert_eq!(c.geometry.max_pages, 32, "MDTS 5: 2^5 pages");
    assert_eq!(manage::list_ns(dev.dev())?, vec![1]);
    dev.shutdown()?;
    Ok(())
}

fn read_write_every_prp_shape() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    // 1 block (part of a page), 1 page, 2 pages (PRP2 a page), 3 and 32 pages (PRP list).
    let mut lba = 0;
    for blocks in [1u32, 8, 16, 24, 100, 256] {
        let data = pattern(lba, blocks, 1);
        dev.write(lba, &data)?;
        assert_eq!(dev.read(lba, blocks)?, data, "{blocks} blocks at {lba}");
        assert_eq!(
            sim.media(lba as usize * 512, data.len()),
            data,
            "on the medium"
        );
        lba += u64::from(blocks) + 3;
    }
    let too_big = dev.read(0, 257);
    check(
        matches!(too_big, Err(NvmeError::Invalid { .. })),
        format!("a 257-block read: {too_big:?}"),
    )?;
    let past_end = dev.read(8191, 2);
    check(
        matches!(past_end, Err(NvmeError::Invalid { .. })),
        format!("past the end: {past_end:?}"),
    )?;
    check(dev.write(0, &[0u8; 100]).is_err(), "a partial block")?;
    dev.shutdown()?;
    Ok(())
}

/// Submits `n` writes of one block each at `lba0..`, all at once; returns the results
/// by lba once every one completed (each must complete exactly once).
fn stream(dev: &BlockDev, lba0: u64, n: u64, round: u32) -> Result<HashMap<u64, u32>, Failed> {
    let (tx, rx) = mpsc::channel();
    for lba in lba0..lba0 + n {
        let tx = tx.clone();
        dev.submit(IoOp::Write, lba, 1, pattern(lba, 1, round), move |r| {
            let _ = tx.send((lba, r));
        });
    }
    drop(tx);
    let mut seen = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.values().sum::<u32>() < n as u32 {
        let left = deadline.saturating_duration_since(Instant::now());
        let (lba, r) = rx
            .recv_timeout(left)
            .map_err(|_| format!("{} of {n} completed", seen.len()))?;
        r.map_err(|e| format!("write at {lba}: {e}"))?;
        *seen.entry(lba).or_insert(0) += 1;
    }
    Ok(seen)
}

fn verify_media(sim: &NvmeSim, lba0: u64, n: u64, round: u32) -> Result<(), Failed> {
    for lba in lba0..lba0 + n {
        if sim.media(lba as usize * 512, 512) != pattern(lba, 1, round) {
            return Err(format!("block {lba} is not what was acknowledged").into());
        }
    }
    Ok(())
}

fn queues_wrap() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    let seen = stream(&dev, 0, 1000, 2)?;
    check(
        seen.len() == 1000 && seen.values().all(|&c| c == 1),
        "each write completed once",
    )?;
    verify_media(&sim, 0, 1000, 2)?;
    let s = dev.stats();
    assert_eq!(
        (s.submitted, s.completed, s.bogus, s.inflight),
        (1000, 1000, 0, 0)
    );
    assert_eq!(sim.counters().bad_doorbells, 0);
    dev.shutdown()?;
    Ok(())
}

fn doorbell_stride() -> Result<(), Failed> {
    let cfg = SimConfig {
        dstrd: 3,
        ..SimConfig::default()
    };
    let (sim, dev) = start(cfg, Options::default())?;
    stream(&dev, 100, 200, 3)?;
    verify_media(&sim, 100, 200, 3)?;
    assert_eq!(
        sim.counters().bad_doorbells,
        0,
        "every doorbell at the 32-byte stride"
    );
    dev.shutdown()?;
    Ok(())
}

fn discard_write_zeroes_flush() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    dev.write(10, &pattern(10, 20, 4))?;
    dev.discard(12, 3)?;
    dev.write_zeroes(20, 2)?;
    dev.flush()?;
    let got = dev.read(10, 20)?;
    for (i, b) in got.chunks(512).enumerate() {
        let lba = 10 + i as u64;
        let zero = (12..15).contains(&lba) || (20..22).contains(&lba);
        let want = if zero {
            vec![0; 512]
        } else {
            pattern(10, 20, 4)[i * 512..(i + 1) * 512].to_vec()
        };
        check(b == want, format!("block {lba}"))?;
    }
    assert_eq!(sim.counters().flushes, 1);
    dev.shutdown()?;
    Ok(())
}

fn bogus_completions_are_refused() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    sim.hold_io(true);
    let (tx, rx) = mpsc::channel();
    dev.submit(IoOp::Write, 5, 1, pattern(5, 1, 5), move |r| {
        let _ = tx.send(r);
    });
    let cqe = |cid, sqid, sqhd| Cqe {
        cid,
        sqid,
        sqhd,
        ..Cqe::default()
    };
    // The write in flight is slot 0's first use: command id 0x0100 (generation 1 above
    // slot 0). Refused: an unknown id, slot 0 with another generation, the right id from
    // a foreign submission queue, the right id with a head outside the queue.
    for bogus in [
        cqe(0x00FF, 1, 1),
        cqe(0x7700, 1, 1),
        cqe(0x0100, 9, 1),
        cqe(0x0100, 1, 999),
    ] {
        check(sim.inject_cqe(1, bogus, false), "injected")?;
    }
    // An entry with the previous pass's phase is not new: the driver must not see it.
    check(sim.inject_cqe(1, cqe(0x0100, 1, 1), true), "injected stale")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while dev.stats().bogus < 4 {
        check(
            Instant::now() < deadline,
            format!("bogus count {}", dev.stats().bogus),
        )?;
        std::thread::yield_now();
    }
    check(
        rx.try_recv().is_err(),
        "no completion was delivered for a bogus entry",
    )?;
    sim.hold_io(false);
    rx.recv_timeout(Duration::from_secs(5))??;
    assert_eq!(
        dev.stats().bogus,
        4,
        "the stale-phase entry was never consumed as new"
    );
    assert_eq!(sim.media(5 * 512, 512), pattern(5, 1, 5));
    dev.write(6, &pattern(6, 1, 5))?;
    dev.shutdown()?;
    Ok(())
}

fn never_ready_times_out() -> Result<(), Failed> {
    let cfg = SimConfig {
        timeout_units: 1,
        ..SimConfig::default()
    };
    let (sim, hw) = nvme_sim::start(cfg);
    sim.set_never_ready(true);
    let t = Instant::now();
    let r = BlockDev::start(hw, Options::default());
    let took = t.elapsed();
    match r {
        Err(NvmeError::Timeout { what, ms: 500 }) if what.contains("RDY") => {}
        other => return Err(format!("expected a CAP.TO timeout, got {other:?}").into()),
    }
    check(
        took < Duration::from_secs(3),
        format!("gave up after {took:?}"),
    )?;
    Ok(())
}

/// Starts `n` writes with the controller holding them, applies `fault`, and checks that
/// every one completes exactly once, successfully, and reached the medium.
fn in_flight_through(
    sim: &NvmeSim,
    dev: &BlockDev,
    n: u64,
    fault: impl FnOnce(),
) -> Result<(), Failed> {
    let counts: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let errors = Arc::new(AtomicU64::new(0));
    for lba in 0..n {
        let (c, e) = (Arc::clone(&counts), Arc::clone(&errors));
        dev.submit(IoOp::Write, lba, 1, pattern(lba, 1, 6), move |r| {
            if r.is_err() {
                e.fetch_add(1, Ordering::SeqCst);
            }
            *c.lock().entry(lba).or_insert(0) += 1;
        });
    }
    check(dev.stats().inflight > 0, "requests in flight")?;
    check(counts.lock().is_empty(), "nothing completed while held")?;
    fault();
    dev.wait_recoveries(1, Duration::from_secs(10))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while counts.lock().len() < n as usize {
        check(
            Instant::now() < deadline,
            format!("{} of {n} completed", counts.lock().len()),
        )?;
        std::thread::yield_now();
    }
    check(
        counts.lock().values().all(|&c| c == 1),
        "each acknowledged exactly once",
    )?;
    assert_eq!(errors.load(Ordering::SeqCst), 0);
    verify_media(sim, 0, n, 6)?;
    let s = dev.stats();
    check(
        s.resubmitted >= 32.min(n),
        format!("resubmitted {}", s.resubmitted),
    )?;
    check(
        u64::from(s.reset_inflight) == s.resubmitted && s.reset_held >= s.reset_inflight,
        format!(
            "{} in flight when submission stopped, {} resubmitted, {} held for the queues",
            s.reset_inflight, s.resubmitted, s.reset_held
        ),
    )?;
    assert_eq!(s.completed, n);
    Ok(())
}

fn fatal_recovers() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    sim.hold_io(true);
    let s2 = Arc::clone(&sim);
    in_flight_through(&sim, &dev, 50, move || {
        s2.set_fatal();
        s2.hold_io(false);
    })?;
    assert_eq!(dev.recoveries(), 1);
    dev.write(60, &pattern(60, 1, 1))?;
    dev.shutdown()?;
    Ok(())
}

fn timeout_recovers() -> Result<(), Failed> {
    let opts = Options {
        io_timeout: Duration::from_millis(300),
        health_period: Duration::from_millis(20),
        ..Options::default()
    };
    let (sim, dev) = start(SimConfig::default(), opts)?;
    sim.hold_io_until_reset();
    in_flight_through(&sim, &dev, 40, || {})?;
    assert_eq!(sim.counters().enables, 2, "one reset");
    // 32 commands overdue at once: the user half resets rather than abort each.
    let log = dev.wait_event_log(Duration::from_secs(5), |l| l.timeout_resets == 1)?;
    check(
        log.aborted == 0
            && log
                .last_timeout
                .as_deref()
                .is_some_and(|t| t.contains("overdue at once")),
        format!("{log:?}"),
    )?;
    dev.shutdown()?;
    Ok(())
}

fn reset_during_write_stream() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    let dev = Arc::new(dev);
    let writer = {
        let dev = Arc::clone(&dev);
        std::thread::spawn(move || stream(&dev, 0, 4000, 7).map_err(|e| format!("{e:?}")))
    };
    let mut caught = 0;
    for _ in 0..3 {
        // Reset while writes are in flight: the writer thread may not have submitted yet,
        // and the model completes a write as soon as its doorbell rings, so it holds them
        // until the reset.
        sim.hold_io_until_reset();
        let deadline = Instant::now() + Duration::from_secs(10);
        while dev.stats().inflight == 0 && !writer.is_finished() {
            check(Instant::now() < deadline, "the stream started")?;
            std::thread::yield_now();
        }
        dev.reset(Duration::from_secs(10))?;
        caught += dev.stats().reset_inflight;
    }
    let seen = writer.join().map_err(|_| "writer panicked")??;
    check(
        caught > 0,
        "a reset stopped submission with requests in flight",
    )?;
    check(
        seen.len() == 4000 && seen.values().all(|&c| c == 1),
        "each write completed once",
    )?;
    verify_media(&sim, 0, 4000, 7)?;
    assert_eq!(sim.counters().enables, 4);
    Arc::try_unwrap(dev)
        .map_err(|_| "still shared")?
        .shutdown()?;
    Ok(())
}

fn management_commands() -> Result<(), Failed> {
    let (_sim, dev) = start(SimConfig::default(), Options::default())?;
    let d = dev.dev();
    dev.write(0, &pattern(0, 16, 8))?;
    dev.read(0, 16)?;
    let smart = manage::smart_log(d)?;
    assert_eq!(
        (smart.host_writes, smart.host_reads, smart.temperature),
        (1, 1, 310)
    );
    let vwc = regs::feat::VOLATILE_WC;
    manage::set_feature(d, vwc, 1)?;
    assert_eq!(manage::get_feature(d, vwc, 0)?, 1);
    check(
        manage::set_feature(d, regs::feat::NUM_QUEUES, 3).is_err(),
        "queues are fixed",
    )?;
    check(
        manage::get_feature(d, 0xC0, 0).is_err(),
        "unknown feature refused",
    )?;
    // A format the namespace does not have fails on the controller and is logged.
    match manage::format(d, 1, 3, 0) {
        Err(NvmeError::Status { status, .. }) => assert_eq!(status, regs::status::INVALID_FORMAT),
        other => return Err(format!("format lbaf 3: {other:?}").into()),
    }
    let log = manage::error_log(d, 4)?;
    assert_eq!(log.len(), 4);
    assert_eq!(
        (log[0].error_count, log[0].sqid, log[0].status_field >> 1),
        (1, 0, regs::status::INVALID_FORMAT)
    );
    manage::format(d, 1, 0, 1)?;
    assert_eq!(dev.read(0, 16)?, vec![0u8; 16 * 512], "formatted");
    assert_eq!(manage::id_ns(d, 1)?.nsze, 8192);
    dev.shutdown()?;
    Ok(())
}

fn policy_refusals() -> Result<(), Failed> {
    let (_sim, dev) = start(SimConfig::default(), Options::default())?;
    let d = dev.dev();
    for (off, what) in [
        (0x1008, "SQ 1 doorbell"),
        (regs::ASQ, "ASQ"),
        (regs::AQA, "AQA"),
        (regs::INTMS, "INTMS"),
        (regs::NSSR, "NSSR"),
        (0x16, "unaligned"),
    ] {
        check(
            kernel::reg_write(d, off, 1).is_err(),
            format!("{what} refused"),
        )?;
    }
    check(
        kernel::reg_read(d, 0x1000).is_err(),
        "doorbells are not read",
    )?;
    let refused = [
        AdminCmd::CreateIoSq { qid: 2, size: 16 },
        AdminCmd::CreateIoCq { qid: 1, size: 16 },
        AdminCmd::CreateIoCq { qid: 2, size: 1000 },
        AdminCmd::GetLogPage {
            lid: 2,
            nsid: 0,
            len: 8192,
            offset: 0,
            rae: true,
        },
        AdminCmd::GetLogPage {
            lid: 1,
            nsid: 0,
            len: 64,
            offset: 6,
            rae: true,
        },
        AdminCmd::Identify { cns: 9, nsid: 0 },
        // An abort naming no command in flight, or an admin command.
        AdminCmd::Abort {
            sqid: 1,
            cid: 0x1234,
        },
        AdminCmd::Abort { sqid: 0, cid: 1 },
    ];
    for cmd in refused {
        check(command::send(d, &cmd).is_err(), format!("{cmd:?} refused"))?;
    }
    // Entries the user half encodes itself reach the kernel half's own checks: an opcode
    // with a data pointer it does not fill, a log page past its buffer, a feature whose
    // dwords carry addresses (host memory buffer), a short entry, a foreign or oversized
    // queue, an abort of nothing.
    let raw = |opcode, cdw: &[u32]| AdminSqe {
        opcode,
        nsid: 0,
        cdw: cdw.to_vec(),
    };
    for (entry, why) in [
        (raw(0x11, &[0; 6]), "admin opcode"),
        (
            raw(regs::admin::GET_LOG_PAGE, &[2 | 2047 << 16, 0, 0, 0, 0, 0]),
            "log page length",
        ),
        (
            raw(regs::admin::SET_FEATURES, &[0x0D, 1, 0, 0, 0, 0]),
            "feature id",
        ),
        (raw(regs::admin::IDENTIFY, &[1, 0, 0]), "six command dwords"),
        (
            raw(regs::admin::CREATE_SQ, &[2 | 15 << 16, 0, 0, 0, 0, 0]),
            "queue id",
        ),
        (
            raw(regs::admin::CREATE_CQ, &[2 | 999 << 16, 0, 0, 0, 0, 0]),
            "queue id",
        ),
        (
            raw(regs::admin::ABORT, &[1 | 0x1234 << 16, 0, 0, 0, 0, 0]),
            "no command 0x1234",
        ),
    ] {
        match kernel::admin_command(d, &entry) {
            Err(e) if e.to_string().contains(why) => {}
            other => return Err(format!("{entry:?}: {other:?}, wanted {why}").into()),
        }
    }
    // Enabling a controller whose admin queue the kernel half has not programmed since
    // the last disable is refused.
    kernel::reg_write(d, regs::CC, 0)?;
    check(
        kernel::reg_write(d, regs::CC, regs::cc::ENABLE).is_err(),
        "enable without admin queue",
    )?;
    // The driver comes back: a reset re-creates everything.
    dev.reset(Duration::from_secs(10))?;
    dev.write(1, &pattern(1, 1, 9))?;
    dev.shutdown()?;
    Ok(())
}

/// The user half's pid (where an upcall runs).
#[upcall]
fn user_half_pid(_dev: DevId) -> Result<u32, NvmeError> {
    Ok(std::process::id())
}

fn split_crash_during_stream() -> Result<(), Failed> {
    let driver = microdriver_rt::start(SupervisorConfig::default())?;
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    let d = dev.dev();
    let first = user_half_pid(d)?;
    check(
        Some(first) == driver.pid() && first != std::process::id(),
        "probe and upcalls run in the user half",
    )?;
    let dev = Arc::new(dev);
    let writer = {
        let dev = Arc::clone(&dev);
        std::thread::spawn(move || -> Result<(), String> {
            for chunk in 0..30 {
                let seen = stream(&dev, chunk * 100, 100, 10).map_err(|e| format!("{e:?}"))?;
                if seen.len() != 100 || seen.values().any(|&c| c != 1) {
                    return Err(format!("chunk {chunk}: {seen:?}"));
                }
            }
            Ok(())
        })
    };
    // Kill the user half in the middle of the stream.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dev.stats().completed < 500 {
        check(Instant::now() < deadline, "the stream started")?;
        std::thread::yield_now();
    }
    driver.kill_user_half();
    check(
        !writer.is_finished(),
        "the stream was still running when the user half died",
    )?;
    check(
        driver.wait_restarted(Some(first), Duration::from_secs(10)),
        "user half restarted",
    )?;
    writer.join().map_err(|_| "writer panicked")??;
    verify_media(&sim, 0, 3000, 10)?;
    let second = user_half_pid(d)?;
    check(second != first, "a new user half answers")?;
    assert_eq!(manage::smart_log(d)?.host_writes, 3000);
    dev.reset(Duration::from_secs(10))?;
    dev.write(3000, &pattern(3000, 1, 10))?;
    Arc::try_unwrap(dev)
        .map_err(|_| "still shared")?
        .shutdown()?;
    driver.stop();
    Ok(())
}

fn split_recovery_across_restart() -> Result<(), Failed> {
    let driver = microdriver_rt::start(SupervisorConfig::default())?;
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    let first = user_half_pid(dev.dev())?;
    sim.hold_io(true);
    // The controller fails while no user half answers: recovery is retried until the
    // restarted one runs it, and the held writes complete once each.
    in_flight_through(&sim, &dev, 45, || {
        driver.kill_user_half();
        sim.set_fatal();
        sim.hold_io(false);
    })?;
    let now = user_half_pid(dev.dev())?;
    check(
        now != first && Some(now) == driver.pid() && now != std::process::id(),
        "a new user half recovered the controller",
    )?;
    assert_eq!(sim.counters().enables, 2);
    dev.shutdown()?;
    driver.stop();
    Ok(())
}

fn transfer_size_grows() -> Result<(), Failed> {
    let cfg = SimConfig {
        mdts: 2,
        ..SimConfig::default()
    };
    let (sim, dev) = start(cfg, Options::default())?;
    assert_eq!(dev.controller().geometry.max_pages, 4);
    stream(&dev, 0, 64, 11)?;
    check(dev.read(0, 40).is_err(), "40 blocks exceed 4 pages")?;
    // After a firmware change and a reset, the slots used before take 32-page transfers.
    sim.set_mdts(5);
    dev.reset(Duration::from_secs(10))?;
    assert_eq!(dev.controller().geometry.max_pages, 32);
    for lba in (0..40 * 64).step_by(200) {
        let data = pattern(lba, 200, 12);
        dev.write(lba, &data)?;
        check(dev.read(lba, 200)? == data, format!("200 blocks at {lba}"))?;
    }
    dev.shutdown()?;
    Ok(())
}

fn callback_submits() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    let dev = Arc::new(dev);
    let (tx, rx) = mpsc::channel();
    sim.hold_io(true);
    let d2 = Arc::clone(&dev);
    // The first write's completion (on the interrupt thread) submits the second.
    dev.submit(IoOp::Write, 1, 1, pattern(1, 1, 13), move |r| {
        let tx2 = tx.clone();
        d2.submit(IoOp::Write, 2, 1, pattern(2, 1, 13), move |r2| {
            let _ = tx2.send(r2);
        });
        let _ = tx.send(r);
    });
    sim.hold_io(false);
    for _ in 0..2 {
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| "a callback that submits deadlocked the completion path")??;
    }
    assert_eq!(
        sim.media(512, 1024),
        [pattern(1, 1, 13), pattern(2, 1, 13)].concat()
    );
    drop(rx);
    Arc::try_unwrap(dev)
        .map_err(|_| "still shared")?
        .shutdown()?;
    Ok(())
}

/// The interrupt thread's counters once it has counted `n` completions (it counts a pass
/// after delivering what the pass reaped, so the last callbacks can run first).
fn reaped_counted(dev: &BlockDev, n: u64) -> Result<nvme::host::IrqStats, Failed> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let irq = dev.irq_stats();
        if irq.reaped_by_irq + irq.reaped_by_poll >= n {
            return Ok(irq);
        }
        if Instant::now() >= deadline {
            return Err(format!("{n} completions never counted: {irq:?}").into());
        }
        std::thread::yield_now();
    }
}

/// The model asserts INTx for its completions: the interrupt thread is woken by the line
/// and reaps there; every completion is counted once, at an interrupt or a quiet-period
/// wake-up, and most at interrupts.
fn reaped_at_interrupts() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    let seen = stream(&dev, 0, 200, 5)?;
    check(seen.values().all(|&c| c == 1), "each write completed once")?;
    verify_media(&sim, 0, 200, 5)?;
    let irq = reaped_counted(&dev, 200)?;
    check(
        irq.reaped_by_irq + irq.reaped_by_poll == 200,
        format!("every completion counted once: {irq:?}"),
    )?;
    check(
        irq.irq_wakes > 0 && irq.reaped_by_irq > irq.reaped_by_poll,
        format!("reaped at interrupts: {irq:?}"),
    )?;
    check(
        dev.stats().device_us > 0,
        "the controller's time is counted",
    )?;
    dev.shutdown()?;
    Ok(())
}

/// With `poll`, the interrupt thread never waits for the line: everything is reaped by
/// polling.
fn reaped_by_polling() -> Result<(), Failed> {
    let opts = Options {
        poll: true,
        ..Options::default()
    };
    let (sim, dev) = start(SimConfig::default(), opts)?;
    let seen = stream(&dev, 0, 200, 6)?;
    check(seen.values().all(|&c| c == 1), "each write completed once")?;
    verify_media(&sim, 0, 200, 6)?;
    let irq = reaped_counted(&dev, 200)?;
    check(
        irq.irq_wakes == 0 && irq.reaped_by_irq == 0 && irq.reaped_by_poll == 200,
        format!("all by polling: {irq:?}"),
    )?;
    dev.shutdown()?;
    Ok(())
}

/// Fast timeouts for the timeout tests.
fn fast_timeouts() -> Options {
    Options {
        io_timeout: Duration::from_millis(300),
        health_period: Duration::from_millis(20),
        ..Options::default()
    }
}

/// Two commands the controller loses: each is reported overdue to the user half, which
/// aborts it; the kernel half resubmits it; each write completes once, no reset.
fn timeout_aborts() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), fast_timeouts())?;
    sim.lose_io(2);
    let seen = stream(&dev, 0, 20, 14)?;
    check(seen.values().all(|&c| c == 1), "each write completed once")?;
    verify_media(&sim, 0, 20, 14)?;
    let s = dev.stats();
    assert_eq!((s.timeouts, s.aborted, s.errors), (2, 2, 0));
    assert_eq!(sim.counters().aborted, 2);
    // The host notes the decision once the upcall returns, after the aborts completed.
    let log = dev.wait_event_log(Duration::from_secs(5), |l| l.timeouts == 2)?;
    assert_eq!((log.timeouts, log.aborted, log.timeout_resets), (2, 2, 0));
    assert_eq!(
        (dev.recoveries(), sim.counters().enables),
        (0, 1),
        "no reset"
    );
    dev.shutdown()?;
    Ok(())
}

/// QEMU's controller never aborts (dword 0 bit 0 set): the user half resets instead, and
/// the lost write is resubmitted on the new queues.
fn timeout_abort_refused_resets() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), fast_timeouts())?;
    sim.set_abort_works(false);
    sim.lose_io(1);
    let seen = stream(&dev, 0, 10, 15)?;
    check(seen.values().all(|&c| c == 1), "each write completed once")?;
    verify_media(&sim, 0, 10, 15)?;
    let log = dev.wait_event_log(Duration::from_secs(5), |l| l.timeout_resets == 1)?;
    check(
        log.last_timeout
            .as_deref()
            .is_some_and(|t| t.contains("did not abort")),
        format!("{log:?}"),
    )?;
    assert_eq!((dev.recoveries(), sim.counters().enables), (1, 2));
    assert_eq!(dev.stats().aborted, 0);
    dev.shutdown()?;
    Ok(())
}

/// A controller that says it aborted a command and never completes it: the kernel half
/// does not wait for the user half again, it resets once the command is a timeout past
/// its report.
fn timeout_abort_lies_resets() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), fast_timeouts())?;
    sim.set_abort_lies(true);
    sim.lose_io(1);
    let seen = stream(&dev, 0, 10, 16)?;
    check(seen.values().all(|&c| c == 1), "each write completed once")?;
    verify_media(&sim, 0, 10, 16)?;
    let log = dev.wait_event_log(Duration::from_secs(5), |l| l.timeouts == 1)?;
    assert_eq!((log.timeouts, log.aborted, log.timeout_resets), (1, 1, 0));
    assert_eq!(dev.recoveries(), 1, "the kernel half reset on its own");
    assert_eq!(
        dev.stats().timeouts,
        1,
        "reported once, not again after the abort"
    );
    dev.shutdown()?;
    Ok(())
}

/// A temperature threshold below the temperature raises a SMART / health event: the user
/// half logs it, reads the SMART log (which clears it) and re-arms. The model withholds
/// a second event of the type until the log is read, so the second one proves the clear.
fn temperature_event() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    let d = dev.dev();
    check(sim.outstanding_aers() == 1, "bring-up arms one request")?;
    manage::set_async_event_config(
        d,
        manage::AsyncEventConfig {
            smart: regs::aer::SMART_TEMPERATURE,
            notices: 0,
        },
    )?;
    manage::set_temp_threshold(d, 300, false)?;
    let log = dev.wait_event_log(Duration::from_secs(5), |l| l.events >= 1)?;
    let text = log.recent.back().cloned().unwrap_or_default();
    check(
        text.contains("temperature threshold") && text.contains("310 K"),
        format!("the event as reported: {text}"),
    )?;
    check(
        manage::smart_log(d)?.critical_warning & 2 != 0,
        "SMART critical warning: temperature",
    )?;
    // Cool down, raise the threshold, heat up past it: a second event.
    sim.set_temperature(290);
    manage::set_temp_threshold(d, 350, false)?;
    sim.set_temperature(360);
    let log = dev.wait_event_log(Duration::from_secs(5), |l| l.events >= 2)?;
    assert_eq!(log.events, 2);
    assert_eq!(sim.counters().events, 2);
    let rearmed = Instant::now() + Duration::from_secs(5);
    while sim.outstanding_aers() != 1 {
        check(Instant::now() < rearmed, "re-armed after the second event")?;
        std::thread::yield_now();
    }
    dev.write(0, &pattern(0, 1, 17))?;
    dev.shutdown()?;
    Ok(())
}

/// Event completions the driver cannot make sense of: a reserved type naming a log page
/// the controller does not have, then a failed request (not re-armed: a controller that
/// fails every request would keep the driver busy); a reset arms it again.
fn bad_event_completions() -> Result<(), Failed> {
    let (sim, dev) = start(SimConfig::default(), Options::default())?;
    check(sim.complete_aer_raw(0xFFFF_FFFD, 0), "completed")?;
    let log = dev.wait_event_log(Duration::from_secs(5), |l| l.events >= 1)?;
    let text = log.recent.back().cloned().unwrap_or_default();
    check(
        text.contains("reserved-type") && text.contains("log page 0xff:"),
        format!("the event as reported: {text}"),
    )?;
    let rearmed = Instant::now() + Duration::from_secs(5);
    while sim.outstanding_aers() != 1 {
        check(Instant::now() < rearmed, "re-armed after a strange event")?;
        std::thread::yield_now();
    }
    check(
        sim.complete_aer_raw(0, regs::status::AER_LIMIT),
        "failed the request",
    )?;
    let log = dev.wait_event_log(Duration::from_secs(5), |l| l.events >= 2)?;
    check(
        log.recent
            .back()
            .is_some_and(|t| t.contains("not re-armed")),
        format!("{log:?}"),
    )?;
    assert_eq!(sim.outstanding_aers(), 0);
    dev.reset(Duration::from_secs(10))?;
    assert_eq!(sim.outstanding_aers(), 1, "bring-up arms it again");
    dev.write(0, &pattern(0, 1, 18))?;
    dev.shutdown()?;
    Ok(())
}

fn feature_functions() -> Result<(), Failed> {
    let (_sim, dev) = start(SimConfig::default(), Options::default())?;
    let d = dev.dev();
    let c = manage::IrqCoalescing {
        time_100us: 5,
        threshold: 7,
    };
    manage::set_irq_coalescing(d, c)?;
    assert_eq!(manage::irq_coalescing(d)?, c);
    assert_eq!(
        manage::get_feature(d, regs::feat::IRQ_COALESCE, 0)?,
        0x0507,
        "time in bits 15:8, threshold in 7:0"
    );
    manage::set_write_cache(d, false)?;
    check(!manage::write_cache(d)?, "write cache off")?;
    manage::set_write_cache(d, true)?;
    check(manage::write_cache(d)?, "write cache on")?;
    manage::set_temp_threshold(d, 350, false)?;
    manage::set_temp_threshold(d, 270, true)?;
    assert_eq!(
        (
            manage::temp_threshold(d, false)?,
            manage::temp_threshold(d, true)?
        ),
        (350, 270)
    );
    let aec = manage::AsyncEventConfig {
        smart: 0x1F,
        notices: 0x3,
    };
    manage::set_async_event_config(d, aec)?;
    assert_eq!(manage::async_event_config(d)?, aec);
    let too_wide = manage::AsyncEventConfig {
        smart: 0,
        notices: 1 << 24,
    };
    check(
        matches!(
            manage::set_async_event_config(d, too_wide),
            Err(NvmeError::Invalid { .. })
        ),
        "notices beyond the dword refused",
    )?;
    dev.shutdown()?;
    Ok(())
}

/// More errors than a log page holds: the user half reads them a page at a time.
fn error_log_paging() -> Result<(), Failed> {
    let (_sim, dev) = start(SimConfig::default(), Options::default())?;
    let d = dev.dev();
    for _ in 0..100 {
        check(manage::format(d, 1, 3, 0).is_err(), "format lbaf 3 fails")?;
    }
    let log = manage::error_log(d, 150)?;
    assert_eq!(log.len(), 150);
    let counts: Vec<u64> = log.iter().map(|e| e.error_count).collect();
    let want: Vec<u64> = (1..=100).rev().chain(std::iter::repeat_n(0, 50)).collect();
    assert_eq!(counts, want, "newest first, across the page boundary at 64");
    assert_eq!(
        manage::error_log(d, 100_000)?.len(),
        160,
        "what the controller keeps (ELPE + 1)"
    );
    dev.shutdown()?;
    Ok(())
}

/// A command times out while no user half answers (it died, and its restart is slow):
/// the kernel half resets on its own, and recovery waits for the restarted user half; the
/// lost write completes once.
fn split_timeout_without_user_half() -> Result<(), Failed> {
    let cfg = SupervisorConfig {
        // The first death makes the driver degraded (calls fail at once) until a revival
        // 1.5 s later: longer than the 300 ms I/O timeout, so the timeout finds no user
        // half to decide.
        max_restarts: 0,
        revive_backoff_initial: Duration::from_millis(1500),
        warm_standby: false,
        ..SupervisorConfig::default()
    };
    let driver = microdriver_rt::start(cfg)?;
    let (sim, dev) = start(SimConfig::default(), fast_timeouts())?;
    let first = user_half_pid(dev.dev())?;
    sim.lose_io(1);
    let (tx, rx) = mpsc::channel();
    dev.submit(IoOp::Write, 3, 1, pattern(3, 1, 19), move |r| {
        let _ = tx.send(r);
    });
    driver.kill_user_half();
    rx.recv_timeout(Duration::from_secs(20))
        .map_err(|_| "the lost write never completed")??;
    check(
        rx.recv_timeout(Duration::from_millis(50)).is_err(),
        "completed once",
    )?;
    verify_media(&sim, 3, 1, 19)?;
    let log = dev.wait_event_log(Duration::from_secs(5), |l| l.timeout_resets == 1)?;
    check(
        log.last_timeout
            .as_deref()
            .is_some_and(|t| t.contains("reset by the kernel half")),
        format!("{log:?}"),
    )?;
    // The write completes when the new queues start, before recovery returns.
    dev.wait_recoveries(1, Duration::from_secs(10))?;
    assert_eq!(dev.recoveries(), 1);
    let now = user_half_pid(dev.dev())?;
    check(now != first, "a revived user half recovered the controller")?;
    dev.shutdown()?;
    driver.stop();
    Ok(())
}
