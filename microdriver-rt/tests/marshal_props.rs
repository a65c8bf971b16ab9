//! Property tests of the wire format: round trips of nested values, and a decoder fed
//! random bytes that must answer with a value or an error, never a panic.

use microdriver_rt::__internal::marshal_frame::{decode_frame, encode_frame};
use microdriver_rt::marshal::{from_bytes, to_bytes, Decoder, TrackedPtr};
use microdriver_rt::tracker::ObjectTracker;
use microdriver_rt::{Marshal, MarshalError};
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq, Marshal)]
struct BufferInfo {
    dma: u64,
    length: u16,
    next_to_watch: Option<u32>,
    flags: [u8; 4],
}

#[derive(Debug, Clone, PartialEq, Marshal)]
enum LinkState {
    Down,
    Up { speed: u32, full_duplex: bool },
    Negotiating(u8),
}

#[derive(Debug, Clone, PartialEq, Marshal)]
struct Ring {
    count: u32,
    #[marshal(len = self.count)]
    buffers: Vec<BufferInfo>,
    name: String,
    stats: Box<[u64; 3]>,
    history: Vec<Option<Box<LinkState>>>,
    nested: Vec<Vec<(u16, char)>>,
    last: Option<Box<Ring>>,
}

fn buffer_info() -> impl Strategy<Value = BufferInfo> {
    (
        any::<u64>(),
        any::<u16>(),
        any::<Option<u32>>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(dma, length, next_to_watch, flags)| BufferInfo {
            dma,
            length,
            next_to_watch,
            flags,
        })
}

fn link_state() -> impl Strategy<Value = LinkState> {
    prop_oneof![
        Just(LinkState::Down),
        (any::<u32>(), any::<bool>())
            .prop_map(|(speed, full_duplex)| LinkState::Up { speed, full_duplex }),
        any::<u8>().prop_map(LinkState::Negotiating),
    ]
}

fn ring_leaf() -> impl Strategy<Value = Ring> {
    (
        prop::collection::vec(buffer_info(), 0..12),
        ".{0,12}",
        any::<[u64; 3]>(),
        prop::collection::vec(prop::option::of(link_state().prop_map(Box::new)), 0..5),
        prop::collection::vec(prop::collection::vec(any::<(u16, char)>(), 0..4), 0..4),
    )
        .prop_map(|(buffers, name, stats, history, nested)| Ring {
            count: buffers.len() as u32,
            buffers,
            name,
            stats: Box::new(stats),
            history,
            nested,
            last: None,
        })
}

fn ring() -> impl Strategy<Value = Ring> {
    ring_leaf().prop_recursive(3, 8, 1, |inner| {
        (ring_leaf(), prop::option::of(inner)).prop_map(|(mut ring, last)| {
            ring.last = last.map(Box::new);
            ring
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn nested_values_roundtrip_exactly(value in ring()) {
        let bytes = to_bytes(&value).expect("encode");
        let back: Ring = from_bytes(&bytes).expect("decode");
        prop_assert_eq!(&back, &value);
        // Through a frame too, and every strict prefix of the payload is an error.
        let frame = encode_frame(&value, 7, None).expect("frame");
        let (_, framed): (_, Ring) = decode_frame(&frame, None).expect("frame decode");
        prop_assert_eq!(framed, value);
        for cut in 0..bytes.len() {
            prop_assert!(from_bytes::<Ring>(&bytes[..cut]).is_err());
        }
    }

    /// Valid encodings with bytes overwritten: reach deep into the decoder, still never panic.
    #[test]
    fn mutated_encodings_never_panic(
        value in ring(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = to_bytes(&value).expect("encode");
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = from_bytes::<Ring>(&bytes);
    }

    #[test]
    fn decode_into_is_all_or_nothing(value in ring(), other in ring(), cut in 0usize..64) {
        let bytes = to_bytes(&value).expect("encode");
        let mut target = other.clone();
        let cut = cut.min(bytes.len().saturating_sub(1));
        let mut dec = Decoder::new(&bytes[..cut]);
        if target.decode_into(&mut dec).is_err() {
            prop_assert_eq!(&target, &other);
        }
    }
}

/// Decodes a `T` from the front of `bytes` (what follows is left unread, as in a stream).
fn prefix<T: Marshal>(bytes: &[u8]) -> Result<(), MarshalError> {
    let mut dec = Decoder::new(bytes);
    T::decode(&mut dec).map(drop)
}

/// 100,000 random byte strings, each against several decoder shapes: values or errors
/// only, never a panic, an overflow or a huge allocation.
#[test]
fn random_bytes_never_panic_the_decoder() {
    let tracker = ObjectTracker::new();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 100_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let decoded = std::cell::Cell::new(0u64);
    let rejected = std::cell::Cell::new(0u64);
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..96), |bytes| {
            for result in [
                from_bytes::<Ring>(&bytes).map(drop),
                prefix::<Ring>(&bytes),
                prefix::<Vec<LinkState>>(&bytes),
                prefix::<(String, Vec<u64>, Option<Box<BufferInfo>>)>(&bytes),
                tracked(&bytes, &tracker),
            ] {
                match result {
                    Ok(()) => decoded.set(decoded.get() + 1),
                    Err(_) => rejected.set(rejected.get() + 1),
                }
            }
            Ok(())
        })
        .expect("no panics");
    let (decoded, rejected) = (decoded.get(), rejected.get());
    assert_eq!(decoded + rejected, 500_000);
    assert!(rejected > 0 && decoded > 0, "both outcomes exercised");
    println!("random inputs: {decoded} decoded, {rejected} rejected");
}

#[derive(Debug, Marshal)]
struct Node {
    value: u32,
    next: TrackedPtr<Node>,
}

/// Decodes a tracked graph from hostile bytes; frees whatever it made.
fn tracked(bytes: &[u8], tracker: &ObjectTracker) -> Result<(), MarshalError> {
    let mut dec = Decoder::with_tracker(bytes, tracker);
    let root = TrackedPtr::<Node>::decode(&mut dec)?;
    dec.finish()?;
    // Walk and free the decoded graph (it may be cyclic).
    let mut seen = std::collections::HashSet::new();
    let mut nodes = Vec::new();
    let mut p = root;
    while !p.is_null() && seen.insert(p.as_ptr() as usize) {
        nodes.push(p);
        // SAFETY: every node the decoder committed is live until freed below.
        p = unsafe { p.get() }.map_or(TrackedPtr::null(), |n| n.next);
    }
    for node in nodes {
        // SAFETY: each decoded node is freed once.
        unsafe { node.free(Some(tracker)) };
    }
    Ok(())
}
