//! LRPC costs against the floor of this machine, all in one run.
//!
//! `cargo bench -p microdriver-rt --bench lrpc` measures the routing a `#[critical]` stub
//! does against a direct call (2 threads at once), a raw blocking and a raw spinning
//! ping-pong between two processes over shared memory (the floors: one word each way, with
//! the same wait code, spin bound and sleeper announcement as the call slots), null
//! upcalls over `shm` in blocking and in spinning mode, upcalls carrying 4 KiB and 64 KiB,
//! and concurrent upcalls with 1 and 4 user-half workers. It ends with
//! `ratio upcall_64k/memcpy_64k = X`, `ratio critical_stub/direct_call 2 threads = X`,
//! `ratio null_upcall_blocking/futex_floor = X` and `ratio null_upcall_spinning/spin_floor
//! = X` (time ratios: lower is better). A null upcall more than 5% faster than its floor
//! means the floor is broken: the bench says so and exits non-zero.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{compare, report};
use microdriver_rt::__internal::slot::{state, Slot};
use microdriver_rt::__internal::transport::local::LocalTransport;
use microdriver_rt::__internal::transport::shm::ShmTransport;
use microdriver_rt::component::{run_user_half_if_requested, ComponentConfig, UserHalf};
use microdriver_rt::lrpc::__private::{inventory, Entry, Served};
use microdriver_rt::lrpc::{
    current_half, install_kernel, uninstall_kernel, CallOptions, Half, KernelEndpoint, WaitPolicy,
};
use microdriver_rt::marshal::{Decoder, Encoder, Marshal, MarshalError};
use microdriver_rt::tracker::ObjectTracker;

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
const PINGPONG_SPIN_ENV: &str = "MICRODRIVER_BENCH_PINGPONG_SPIN_US";
/// How long spinners keep spinning after their last message: long enough to stay hot within
/// a measurement, short enough that an idle side stops competing for the 2 cores while the
/// other measurement runs. The spinning user half and its floor use the same bound.
const SPIN_FOR: Duration = Duration::from_micros(200);
/// The ping-pong's "stop" state.
const STOP: u32 = state::ABANDONED;

/// The raw floor of a round trip between two processes: one word in shared memory (slot
/// 0's state), moved REQUEST by the parent and REPLY by the child, each side waiting with
/// the very code and policy the call slots use (`Slot::wait_while`: spin up to the
/// policy's bound, then announce itself in the slot's waiter count and sleep on the futex;
/// `Slot::publish`: wake only if someone announced it sleeps). No frames, no doorbell, no
/// bookkeeping: what an upcall costs beyond this is the runtime's own.
fn pingpong_child(fd: i32) -> ! {
    use std::os::fd::FromRawFd;
    // SAFETY: the parent placed the memfd at this descriptor for us.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let area = ShmTransport::attach(fd).expect("attach");
    let spin = std::env::var(PINGPONG_SPIN_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::ZERO, Duration::from_micros);
    let policy = WaitPolicy::spinning(spin);
    let slot = Slot::new(&area, 0).expect("slot 0");
    loop {
        match slot.wait_while(&[state::FREE, state::REPLY], policy, None, &|| false) {
            state::REQUEST => slot.publish(state::REPLY),
            STOP => std::process::exit(0),
            _ => {}
        }
    }
}

struct PingPong {
    area: ShmTransport,
    child: std::process::Child,
    policy: WaitPolicy,
}

impl PingPong {
    /// A ping-pong partner process waiting with `policy` (the parent waits with it too).
    fn start(policy: WaitPolicy) -> PingPong {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let area = ShmTransport::create(1, 1, 64).expect("area");
        let raw = area.fd().as_raw_fd();
        let mut command = std::process::Command::new(std::env::current_exe().expect("exe"));
        command.env(PINGPONG_ENV, "3");
        command.env(PINGPONG_SPIN_ENV, policy.spin.as_micros().to_string());
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
        PingPong {
            area,
            child,
            policy,
        }
    }

    fn round_trip(&self) {
        let slot = Slot::new(&self.area, 0).expect("slot 0");
        slot.publish(state::REQUEST);
        let seen = slot.wait_while(&[state::REQUEST], self.policy, None, &|| false);
        debug_assert_eq!(seen, state::REPLY);
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        if let Some(slot) = Slot::new(&self.area, 0) {
            slot.publish(STOP);
        }
        let _ = self.child.wait();
    }
}

/// A trivial `#[critical]` function: in the kernel half its stub asks for the route and
/// calls the body directly; what that asking costs is what the routing bench measures.
#[microdriver_rt::critical]
fn critical_add(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// The same work as a plain call the optimiser may not inline.
#[inline(never)]
fn direct_add(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// Calls `f` `iters` times through a pointer the optimiser cannot see through, so the
/// stub and the direct function are both really called (neither inlined into the loop).
fn spin_calls(iters: u64, f: fn(u64) -> u64) -> Duration {
    let f = black_box(f);
    let started = Instant::now();
    let mut x = 0u64;
    for _ in 0..iters {
        x = f(black_box(x));
    }
    black_box(x);
    started.elapsed()
}

/// `#[critical]` stub vs a direct call, on 2 threads at once with a kernel endpoint
/// installed (the route is "direct, in the kernel half"), interleaved round by round.
/// Returns the median per-round time ratio over both threads' rounds and the two medians
/// per call (ns).
fn routing(rounds: usize) -> (f64, f64, f64) {
    let transport = Arc::new(LocalTransport::new(2, 1, 64));
    let endpoint = Arc::new(KernelEndpoint::new(
        transport,
        Arc::new(ObjectTracker::new()),
        CallOptions::default(),
    ));
    install_kernel(endpoint);
    assert_eq!(current_half(), Half::Kernel);
    let iters = {
        let probe = 1 << 20;
        let took = spin_calls(probe, direct_add);
        (probe as f64 * 0.02 / took.as_secs_f64().max(1e-9)) as u64
    }
    .max(1 << 16);
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut samples = Vec::new();
                for _ in 0..rounds {
                    barrier.wait();
                    let direct = spin_calls(iters, direct_add);
                    barrier.wait();
                    let stub = spin_calls(iters, critical_add);
                    samples.push((stub, direct));
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for t in threads {
        samples.extend(t.join().expect("routing thread"));
    }
    uninstall_kernel();
    let mut ratios: Vec<f64> = samples
        .iter()
        .map(|(s, d)| s.as_secs_f64() / d.as_secs_f64().max(1e-12))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let per_call = |d: Duration| d.as_secs_f64() * 1e9 / iters as f64;
    let mut stubs: Vec<f64> = samples.iter().map(|s| per_call(s.0)).collect();
    let mut directs: Vec<f64> = samples.iter().map(|s| per_call(s.1)).collect();
    stubs.sort_by(f64::total_cmp);
    directs.sort_by(f64::total_cmp);
    (
        ratios[ratios.len() / 2],
        stubs[stubs.len() / 2],
        directs[directs.len() / 2],
    )
}

/// A subject faster than its floor by more than 5% means the floor is not the best raw
/// mechanism (or the measurement is broken): refuse to print a flattering ratio.
fn check_floor(name: &str, ratio: f64) -> bool {
    if ratio < 0.95 {
        eprintln!(
            "floor broken: {name} = {ratio:.2}: the subject beat its raw floor by more than 5%, \
             so the floor is not the best raw mechanism with the same wait policy"
        );
        false
    } else {
        true
    }
}

/// Restricts thread `tid` (0: the calling thread) to `cpus`; false if that failed.
fn pin_thread(tid: i32, cpus: &[usize]) -> bool {
    // SAFETY: a zeroed `cpu_set_t` is the empty set; CPU_SET only writes bits inside it
    // (the CPUs are below CPU_SETSIZE); sched_setaffinity(2) only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Restricts every thread of process `pid` to `cpus`.
fn pin_process(pid: u32, cpus: &[usize]) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
            pin_thread(tid, cpus);
        }
    }
}

/// Where the two sides of a round trip run, the same for a subject and its floor, so
/// neither ratio depends on where the scheduler happened to put the two processes:
/// spinners on CPUs of their own (two spinners on one CPU wait out each other's spin
/// bound), sleepers on one CPU (a sleeping side hands its CPU to the other; a wake-up
/// sent to another, idle, CPU costs that CPU's wake from idle, which on a virtual machine
/// dwarfs everything measured).
struct Placement {
    cpus: usize,
    peer_cpu: usize,
}

impl Placement {
    /// Caller on CPU 0, peer on CPU 1 (for spinning).
    fn apart() -> Placement {
        Placement::pinned(1)
    }

    /// Caller and peer on CPU 0 (for blocking).
    fn together() -> Placement {
        Placement::pinned(0)
    }

    fn pinned(peer_cpu: usize) -> Placement {
        let cpus = all_cpus().len();
        if cpus >= 2 {
            pin_thread(0, &[0]);
        }
        Placement { cpus, peer_cpu }
    }

    fn peer(&self, pid: u32) {
        if self.cpus >= 2 {
            pin_process(pid, &[self.peer_cpu]);
        }
    }
}

impl Drop for Placement {
    fn drop(&mut self) {
        pin_thread(0, &all_cpus());
    }
}

/// The CPUs this process may use, as found before anything was pinned (afterwards the
/// standard library's count reflects the pinning).
fn all_cpus() -> Vec<usize> {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let count = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    (0..count).collect()
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
    all_cpus();

    println!(
        "== routing: a trivial #[critical] function (kernel half) vs a direct call, 2 threads"
    );
    let (routing_ratio, stub, direct) = routing(rounds);
    println!(
        "{:<24} median {:>10.2} ns/call over {} rounds x 2 threads",
        "critical_stub", stub, rounds
    );
    println!(
        "{:<24} median {:>10.2} ns/call over {} rounds x 2 threads",
        "direct_call", direct, rounds
    );

    // The null upcalls against their floors: more, shorter rounds, so a load that comes
    // and goes on a shared machine hits both sides of a ratio alike.
    let null_rounds = 21;
    let null_round_time = Duration::from_millis(30);
    let placement = Placement::together();

    println!("== blocking: null upcall vs raw futex ping-pong between two processes");
    let futex = PingPong::start(WaitPolicy::BLOCKING);
    placement.peer(futex.child.id());
    let blocking = half(Duration::ZERO, 1);
    placement.peer(blocking.pid());
    let (blocking_ratio, up, floor) = compare(
        null_rounds,
        null_round_time,
        ("null_upcall_blocking", &mut || {
            null_call(blocking.endpoint())
        }),
        ("futex_floor", &mut || futex.round_trip()),
    );
    report(&floor);
    report(&up);
    drop(futex);
    drop(placement);

    println!("== spinning: null upcall vs raw spin ping-pong between two processes");
    let placement = Placement::apart();
    let spin_pp = PingPong::start(WaitPolicy::spinning(SPIN_FOR));
    placement.peer(spin_pp.child.id());
    let spinning = half(SPIN_FOR, 1);
    placement.peer(spinning.pid());
    let (spin_ratio, up, floor) = compare(
        null_rounds,
        null_round_time,
        ("null_upcall_spinning", &mut || {
            null_call(spinning.endpoint())
        }),
        ("spin_floor", &mut || spin_pp.round_trip()),
    );
    report(&floor);
    report(&up);
    drop(spin_pp);
    spinning.shutdown(Duration::from_secs(1));
    drop(placement);

    // The blocking user half stayed on CPU 0: its caller joins it there again.
    let placement = Placement::together();
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
    drop(placement);

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
    println!("ratio upcall_64k/memcpy_64k = {ratio_64k:.2}");
    println!("ratio critical_stub/direct_call 2 threads = {routing_ratio:.2}");
    let blocking_ok = check_floor("null_upcall_blocking/futex_floor", blocking_ratio);
    let spin_ok = check_floor("null_upcall_spinning/spin_floor", spin_ratio);
    if blocking_ok {
        println!("ratio null_upcall_blocking/futex_floor = {blocking_ratio:.2}");
    }
    if spin_ok {
        println!("ratio null_upcall_spinning/spin_floor = {spin_ratio:.2}");
    }
    if !(blocking_ok && spin_ok) {
        std::process::exit(1);
    }
}
