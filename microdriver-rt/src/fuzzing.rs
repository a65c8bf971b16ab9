//! The kernel half's decode path for a frame that arrived from the user half, packaged for
//! the fuzzer (`fuzz/`, `cargo +nightly fuzz run kernel_frame`) and for the bounded
//! property test CI runs (`tests/fuzz_frames.rs`). Whatever the bytes, it returns: a value,
//! or an error; never a panic, an out-of-bounds access or an unbounded allocation.

use crate::lrpc::frame;
use crate::marshal::{Marshal, TrackedPtr};
use crate::tracker::{ObjectInfo, ObjectTracker};

/// A kernel-half object the fuzzed frames may name.
#[derive(Debug, Clone, Default, crate::Marshal)]
pub struct Counters {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// A link to another object (graphs, cycles).
    pub next: TrackedPtr<Counters>,
}

/// What a fuzzed reply may carry.
#[derive(Debug, Clone, crate::Marshal)]
pub enum Reply {
    /// Nothing.
    Empty,
    /// Bytes.
    Data(Vec<u8>),
    /// A tracked object.
    Object(TrackedPtr<Counters>),
    /// Nested values.
    Nested(Vec<Option<Box<(u32, String)>>>),
}

/// A tracker with live pairings (what a kernel half holds mid-session), and the objects.
fn populated() -> (ObjectTracker, Vec<TrackedPtr<Counters>>) {
    let tracker = ObjectTracker::new();
    let objects: Vec<_> = (0..4u64)
        .map(|i| {
            let object = TrackedPtr::new(Counters {
                packets: i,
                ..Counters::default()
            });
            let _ = tracker.register_pair(
                object.as_ptr() as usize,
                0x5500_0000_0000 + (i as usize) * 0x1000,
                ObjectInfo::of::<Counters>(),
            );
            object
        })
        .collect();
    (tracker, objects)
}

/// Decodes `data` as the kernel half decodes a reply frame; returns whether it decoded.
pub fn decode_user_frame(data: &[u8]) -> bool {
    let (tracker, objects) = populated();
    let ok = match frame::open(data, &tracker) {
        Ok((_entry, mut dec)) => {
            let value = Vec::<Reply>::decode(&mut dec);
            value.is_ok() && dec.finish().is_ok()
        }
        Err(_) => false,
    };
    // Copies the frame created (mirrors) are freed by the tracker; the kernel's own
    // objects are freed here.
    tracker.clear_peer();
    for object in objects {
        // SAFETY: each object was created above and is freed once; decoding may have
        // updated it in place but never freed it (frees from the peer only unpair).
        unsafe { object.free(Some(&tracker)) };
    }
    ok
}
