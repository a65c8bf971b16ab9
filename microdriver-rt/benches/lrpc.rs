//! LRPC costs against the floor of this machine, all in one run.
//!
//! `cargo bench -p microdriver-rt --bench lrpc` measures a raw futex ping-pong and a raw
//! spin ping-pong between two processes over shared memory (the floor), null upcalls over
//! `shm` in blocking and in spinning mode, upcalls carrying 4 KiB and 64 KiB, and
//! concurrent upcalls with 1 and 4 user-half workers. It ends with
//! `ratio null_upcall_blocking/futex_floor = X`, `ratio null_upcall_spinning/spin_floor = X`
//! and `ratio upcall_64k/memcpy_64k = X` (time ratios: lower is better).

mod common;

use std::hint::black_box;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{compare, report};
use microdriver_rt::component::{run_user_half_if_requested, ComponentConfig, UserHalf};
use microdriver_rt::lrpc::__private::{inventory, Entry, Served};
use microdriver_rt::lrpc::{CallOptions, KernelEndpoint, WaitPolicy};
use microdriver_rt::marshal::{Decoder, Encoder, Marshal, MarshalError};
use microdriver_rt::tracker::ObjectTracker;
use microdriver_rt::transport::shm::ShmTransport;
use microdriver_rt::transport::{wait_on, wake_one, Area, Word};

fn null_handler(dec: Decoder<'_>, _enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()
}

fn bytes_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let data = Vec::<u8>::decode(&mut dec)?;
    dec.finish()?;
    (data.len() as u32).encode(enc)
}

fn slow_handler(dec: Decoder<'_>, _enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()?;
    // Stands for a user-half operation that waits on something (an EEPROM write, a PHY
    // reset): concurrent upcalls overlap only if there are workers to run them.
    std::thread::sleep(Duration::from_micros(500));
    Ok(())
}

inventory::submit! { Entry { name: "bench::null", signature: "fn()", served: Served::ByUser, handler: null_handler } }
inventory::submit! { Entry { name: "bench::bytes", signature: "fn(Vec<u8>) -> u32", served: Served::ByUser, handler: bytes_handler } }
inventory::submit! { Entry { name: "bench::slow", signature: "fn()", served: Served::ByUser, handler: slow_handler } }

const PINGPONG_ENV: &str = "MICRODRIVER_BENCH_PINGPONG_FD";
/// How long spinners keep spinning after their last message: long enough to stay hot within
/// a measurement, short enough that an idle side stops competing for the 2 cores while the
/// other measurement runs.
const SPIN_FOR: Duration = Duration::from_micros(200);

/// The ping-pong child: answers every ping on header word `Shutdown`-free scratch words.
/// Word UserPid is the ball: the parent sets it odd, the child makes it even.
fn pingpong_child(fd: i32) -> ! {
    use std::os::fd::FromRawFd;
    // SAFETY: the parent placed the memfd at this descriptor for us.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let area = ShmTransport::attach(fd).expect("attach");
    let ball = area.header(Word::UserPid);
    let spin = area.header(Word::UserWorkers).load(SeqCst) == 1;
    let mut last = Instant::now();
    loop {
        let v = ball.load(SeqCst);
        if v == u32::MAX {
            std::process::exit(0);
        }
        if v % 2 == 1 {
            ball.store(v + 1, SeqCst);
            wake_one(ball);
            last = Instant::now();
            continue;
        }
        if spin && last.elapsed() < SPIN_FOR {
            std::hint::spin_loop();
        } else {
            wait_on(ball, v, Duration::from_millis(5));
        }
    }
}

struct PingPong {
    area: ShmTransport,
    child: std::process::Child,
    spin: bool,
}

impl PingPong {
    fn start(spin: bool) -> PingPong {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let area = ShmTransport::create(1, 1, 64).expect("area");
        area.header(Word::UserWorkers)
            .store(u32::from(spin), SeqCst);
        let raw = area.fd().as_raw_fd();
        let mut command = std::process::Command::new(std::env::current_exe().expect("exe"));
        command.env(PINGPONG_ENV, "3");
        // SAFETY: only dup2/fcntl between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let flags = libc::fcntl(3, libc::F_GETFD);
                libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                Ok(())
            });
        }
        let child = command.spawn().expect("ping-pong child");
        PingPong { area, child, spin }
    }

    fn round_trip(&self) {
        let ball = self.area.header(Word::UserPid);
        let v = ball.load(SeqCst) | 1;
        ball.store(v, SeqCst);
        wake_one(ball);
        loop {
            let now = ball.load(SeqCst);
            if now != v {
                return;
            }
            if self.spin {
                std::hint::spin_loop();
            } else {
                wait_on(ball, v, Duration::from_millis(5));
            }
        }
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        let ball = self.area.header(Word::UserPid);
        ball.store(u32::MAX, SeqCst);
        wake_one(ball);
        let _ = self.child.wait();
    }
}

fn half(spin: Duration, workers: usize) -> UserHalf {
    let config = ComponentConfig {
        workers,
        options: CallOptions {
            wait: WaitPolicy::spinning(spin),
            timeout: Duration::from_secs(10),
        },
        ..ComponentConfig::default()
    };
    UserHalf::spawn(&config, Arc::new(ObjectTracker::new())).expect("user half")
}

fn null_call(endpoint: &KernelEndpoint) {
    endpoint
        .call(
            Entry::id_of("bench::null"),
            "bench::null",
            &mut (),
            |_, _| Ok(()),
            |_, _| Ok(()),
        )
        .expect("null upcall");
}

fn bytes_call(endpoint: &KernelEndpoint, data: &Vec<u8>) {
    let n: u32 = endpoint
        .call(
            Entry::id_of("bench::bytes"),
            "bench::bytes",
            &mut (),
            |_, enc| data.encode(enc),
            |_, dec| u32::decode(dec),
        )
        .expect("bytes upcall");
    assert_eq!(n as usize, data.len());
}

/// Upcalls per second from 4 kernel threads at once, `calls` each.
fn concurrent_throughput(endpoint: &Arc<KernelEndpoint>, calls: usize) -> f64 {
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let endpoint = endpoint.clone();
            std::thread::spawn(move || {
                for _ in 0..calls {
                    endpoint
                        .call(
                            Entry::id_of("bench::slow"),
                            "bench::slow",
                            &mut (),
                            |_, _| Ok(()),
                            |_, _| Ok(()),
                        )
                        .expect("slow upcall");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("caller");
    }
    (4 * calls) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    if let Ok(fd) = std::env::var(PINGPONG_ENV) {
        pingpong_child(fd.parse().expect("fd"));
    }
    run_user_half_if_requested();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = 11;
    let round_time = Duration::from_millis(60);

    println!("== blocking: null upcall vs raw futex ping-pong between two processes");
    let futex = PingPong::start(false);
    let blocking = half(Duration::ZERO, 1);
    let (blocking_ratio, up, floor) = compare(
        rounds,
        round_time,
        ("null_upcall_blocking", &mut || {
            null_call(blocking.endpoint())
        }),
        ("futex_floor", &mut || futex.round_trip()),
    );
    report(&floor);
    report(&up);
    drop(futex);

    println!("== spinning: null upcall vs raw spin ping-pong between two processes");
    let spin_pp = PingPong::start(true);
    let spinning = half(SPIN_FOR, 1);
    let (spin_ratio, up, floor) = compare(
        rounds,
        round_time,
        ("null_upcall_spinning", &mut || {
            null_call(spinning.endpoint())
        }),
        ("spin_floor", &mut || spin_pp.round_trip()),
    );
    report(&floor);
    report(&up);
    drop(spin_pp);
    spinning.shutdown(Duration::from_secs(1));

    println!("== payloads (blocking): 4 KiB and 64 KiB arguments vs copying 64 KiB");
    let data_4k = vec![0x5au8; 4096];
    let data_64k = vec![0xa5u8; 65536];
    let (ratio_4k, up4, null_s) = compare(
        rounds,
        round_time,
        ("upcall_4k", &mut || {
            bytes_call(blocking.endpoint(), &data_4k)
        }),
        ("null_upcall_blocking", &mut || {
            null_call(blocking.endpoint())
        }),
    );
    report(&null_s);
    report(&up4);
    println!("upcall_4k / null_upcall_blocking = {ratio_4k:.2}");
    let mut destination = vec![0u8; 65536 + 4096];
    let skew = (data_64k.as_ptr() as usize % 4096 + 2048 + 4096
        - destination.as_ptr() as usize % 4096)
        % 4096;
    let (ratio_64k, up64, copy) = compare(
        rounds,
        round_time,
        ("upcall_64k", &mut || {
            bytes_call(blocking.endpoint(), &data_64k)
        }),
        ("memcpy_64k", &mut || {
            destination[skew..skew + 65536].copy_from_slice(black_box(&data_64k));
            black_box(&mut destination);
        }),
    );
    report(&copy);
    report(&up64);
    blocking.shutdown(Duration::from_secs(1));

    println!("== concurrency: 4 kernel threads, upcalls that wait 500 us in the user half");
    let one = half(Duration::ZERO, 1);
    let one_ep = one.endpoint().clone();
    let four = half(Duration::ZERO, 4);
    let four_ep = four.endpoint().clone();
    let mut tput1 = Vec::new();
    let mut tput4 = Vec::new();
    for _ in 0..3 {
        tput1.push(concurrent_throughput(&one_ep, 50));
        tput4.push(concurrent_throughput(&four_ep, 50));
    }
    tput1.sort_by(f64::total_cmp);
    tput4.sort_by(f64::total_cmp);
    println!("concurrent_1_worker   median {:>10.0} upcalls/s", tput1[1]);
    println!("concurrent_4_workers  median {:>10.0} upcalls/s", tput4[1]);
    one.shutdown(Duration::from_secs(1));
    four.shutdown(Duration::from_secs(1));

    println!(
        "ratio concurrent_4_workers/concurrent_1_worker = {:.2}",
        tput4[1] / tput1[1]
    );
    println!("ratio null_upcall_blocking/futex_floor = {blocking_ratio:.2}");
    println!("ratio null_upcall_spinning/spin_floor = {spin_ratio:.2}");
    println!("ratio upcall_64k/memcpy_64k = {ratio_64k:.2}");
}
