//! Payloads that do not fit a call slot, in both directions, across a real user-half
//! process: each is a caller's error the caller can handle (`CallError::TooLarge`,
//! naming the size, the slot capacity and the setting that raises it), never a hostile
//! frame in the kernel half's counters, and never a reason for the user half to exit.

use std::sync::Arc;
use std::time::Duration;

use microdriver_rt::component::{run_user_half_if_requested, ComponentConfig, UserHalf};
use microdriver_rt::lrpc::__private::{inventory, Entry, Served};
use microdriver_rt::lrpc::{install_kernel, uninstall_kernel, CallError};
use microdriver_rt::marshal::{Decoder, Encoder, MarshalError};
use microdriver_rt::tracker::ObjectTracker;
use microdriver_rt::{critical, upcall, Marshal};

/// The slot capacity the tests run with: small, so a few KiB overflow it.
const CAPACITY: usize = 4096;
/// Comfortably more than a slot (and than anything the runtime could spill it to).
const TOO_BIG: u32 = 64 * 1024;

/// The driver's error type: remembers a crossing's `TooLarge` precisely.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
enum TestError {
    TooLarge {
        len: u64,
        capacity: u64,
        message: String,
    },
    Cross(String),
}

impl From<CallError> for TestError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::TooLarge { len, capacity } => TestError::TooLarge {
                len: len as u64,
                capacity: capacity as u64,
                message: e.to_string(),
            },
            other => TestError::Cross(other.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hand-written user-half entry: a reply of `n` bytes.

fn big_reply_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let n = u32::decode(&mut dec)?;
    dec.finish()?;
    vec![0x5au8; n as usize].encode(enc)
}

inventory::submit! {
    Entry { name: "oversize::big_reply", signature: "fn(u32) -> Vec<u8>", served: Served::ByUser, handler: big_reply_handler }
}

fn big_reply(half: &UserHalf, n: u32) -> Result<Vec<u8>, CallError> {
    half.endpoint().call(
        Entry::id_of("oversize::big_reply"),
        "oversize::big_reply",
        &mut (),
        |_, enc| n.encode(enc),
        |_, dec| Vec::<u8>::decode(dec),
    )
}

// ---------------------------------------------------------------------------------------
// Annotated functions: downcalls from the user half with large arguments or replies.

/// Kernel half: takes a buffer (the argument may not fit a slot).
#[critical]
fn kernel_sink(data: Vec<u8>) -> Result<u32, TestError> {
    Ok(data.len() as u32)
}

/// Kernel half: returns a buffer (the reply may not fit a slot).
#[critical]
fn kernel_source(n: u32) -> Result<Vec<u8>, TestError> {
    Ok(vec![0xa5; n as usize])
}

/// Kernel half, and no way to report an error.
#[critical]
fn kernel_sink_unit(data: Vec<u8>) {
    std::hint::black_box(data);
}

/// User half: sends `n` bytes down, reports what came back.
#[upcall]
fn push_down(n: u32) -> Result<u32, TestError> {
    kernel_sink(vec![1; n as usize])
}

/// User half: asks the kernel half for `n` bytes.
#[upcall]
fn pull_up(n: u32) -> Result<u32, TestError> {
    kernel_source(n).map(|v| v.len() as u32)
}

/// User half: sends `n` bytes to a function that cannot report failure.
#[upcall]
fn push_down_unit(n: u32) -> Result<u32, TestError> {
    kernel_sink_unit(vec![2; n as usize]);
    Ok(n)
}

/// The user half's pid.
#[upcall]
fn user_pid() -> Result<u32, TestError> {
    Ok(std::process::id())
}

// ---------------------------------------------------------------------------------------

fn spawn() -> UserHalf {
    let config = ComponentConfig {
        capacity: CAPACITY,
        ..ComponentConfig::default()
    };
    UserHalf::spawn(&config, Arc::new(ObjectTracker::new())).expect("spawning the user half")
}

/// The message of a `TooLarge` names the size, the capacity and the setting.
/// The user-half caller got `TooLarge` for a frame over the slot, with an actionable
/// message.
fn assert_too_large<T: std::fmt::Debug>(result: Result<T, TestError>) {
    match result {
        Err(TestError::TooLarge {
            len,
            capacity,
            message,
        }) => {
            assert!(len > CAPACITY as u64, "{message}");
            assert_eq!(capacity, CAPACITY as u64, "{message}");
            assert_actionable(&message, len);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

fn assert_actionable(message: &str, len: u64) {
    assert!(
        message.contains(&len.to_string()),
        "size missing: {message}"
    );
    assert!(
        message.contains(&CAPACITY.to_string()),
        "capacity missing: {message}"
    );
    assert!(
        message.contains("ComponentConfig::capacity"),
        "the setting is not named: {message}"
    );
}

/// An upcall whose reply exceeds the slot is `TooLarge`, not a hostile frame.
fn upcall_reply_too_large() {
    let half = spawn();
    let before = half.endpoint().stats().rejected();
    let err = big_reply(&half, TOO_BIG).expect_err("a reply larger than the slot");
    match &err {
        CallError::TooLarge { len, capacity } => {
            assert!(*len > CAPACITY, "{err}");
            assert_eq!(*capacity, CAPACITY, "{err}");
            assert_actionable(&err.to_string(), *len as u64);
        }
        other => panic!("expected TooLarge, got {other:?}: {other}"),
    }
    assert_eq!(
        half.endpoint().stats().rejected(),
        before,
        "a too-large reply was counted as hostile: {:?}",
        half.endpoint().stats().recent_rejections()
    );
    // The channel keeps working.
    assert_eq!(big_reply(&half, 100).expect("a small reply").len(), 100);
    half.shutdown(Duration::from_secs(1));
}

/// A downcall from the user half whose arguments exceed the slot comes back to its
/// caller as an error; the user half keeps running.
fn downcall_arguments_too_large() {
    let half = spawn();
    install_kernel(half.endpoint().clone());
    let pid = user_pid().expect("pid");
    let before = half.endpoint().stats().rejected();
    assert_too_large(push_down(TOO_BIG));
    assert_eq!(push_down(100), Ok(100), "small arguments still cross");
    assert_eq!(user_pid(), Ok(pid), "the user half was not restarted");
    assert!(!half.is_dead());
    assert_eq!(half.endpoint().stats().rejected(), before);
    uninstall_kernel();
    half.shutdown(Duration::from_secs(1));
}

/// A nested downcall whose reply exceeds the slot: the user-half caller gets `TooLarge`,
/// the upcall it runs in completes, and nothing is counted as hostile.
fn downcall_reply_too_large() {
    let half = spawn();
    install_kernel(half.endpoint().clone());
    let pid = user_pid().expect("pid");
    let before = half.endpoint().stats().rejected();
    assert_too_large(pull_up(TOO_BIG));
    assert_eq!(
        half.endpoint().stats().rejected(),
        before,
        "a too-large downcall reply was counted as hostile: {:?}",
        half.endpoint().stats().recent_rejections()
    );
    assert_eq!(pull_up(100), Ok(100), "small replies still cross");
    assert_eq!(user_pid(), Ok(pid), "the user half was not restarted");
    uninstall_kernel();
    half.shutdown(Duration::from_secs(1));
}

/// A `#[critical]` function without a `Result` given arguments that cannot cross: the
/// author's error. It fails the upcall it runs in with a message naming the entry, the
/// sizes and the setting; the user half keeps running and nothing counts as hostile.
fn unit_downcall_arguments_too_large() {
    let half = spawn();
    install_kernel(half.endpoint().clone());
    let pid = user_pid().expect("pid");
    let before = half.endpoint().stats().rejected();
    match push_down_unit(TOO_BIG) {
        Err(TestError::Cross(message)) => {
            assert!(message.contains("kernel_sink_unit"), "{message}");
            assert!(message.contains(&CAPACITY.to_string()), "{message}");
            assert!(message.contains("ComponentConfig::capacity"), "{message}");
        }
        other => panic!("expected the upcall to fail, got {other:?}"),
    }
    assert_eq!(push_down_unit(10), Ok(10));
    assert_eq!(user_pid(), Ok(pid), "the user half was not restarted");
    assert!(!half.is_dead());
    assert_eq!(half.endpoint().stats().rejected(), before);
    uninstall_kernel();
    half.shutdown(Duration::from_secs(1));
}

mod support;

fn main() {
    run_user_half_if_requested();
    support::run_tests(vec![
        ("upcall_reply_too_large", upcall_reply_too_large),
        ("downcall_arguments_too_large", downcall_arguments_too_large),
        ("downcall_reply_too_large", downcall_reply_too_large),
        (
            "unit_downcall_arguments_too_large",
            unit_downcall_arguments_too_large,
        ),
    ]);
}
