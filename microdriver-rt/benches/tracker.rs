//! Tracker and marshaling throughput, as ratios against baselines from the same run.
//!
//! `cargo bench -p microdriver-rt --bench tracker` ends with
//! `ratio translate_100k/translate_10 = X` (time per translation with 100,000 objects
//! registered over time with 10: how close to flat the range lookup stays, on the page
//! index's fast path: one object per page),
//! `ratio translate_100k_fallback/translate_10 = X` (the same with 100,000 objects that a
//! page-granular index cannot answer: small objects sharing pages, and objects over 64
//! pages; the index's line and large-chunk levels answer them; goal at most 4),
//! `ratio translate_100k_btree/translate_10 = X` (16-byte objects, four to a line: no level
//! answers, every lookup takes the B-tree; for information) and
//! `ratio marshal_ring256/memcpy = X` (throughput of encode + decode of a 256-entry ring
//! of 32-byte records, relative to a plain copy of the same bytes).

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{compare, report, Rng};
use microdriver_rt::marshal::{Decoder, Encoder};
use microdriver_rt::tracker::{ObjectInfo, ObjectTracker, TypeTag};
use microdriver_rt::Marshal;

/// A receive descriptor's driver-side bookkeeping: 32 bytes, no padding.
#[derive(Debug, Clone, Copy, PartialEq, Marshal)]
#[repr(C)]
struct RingRecord {
    dma: u64,
    length: u16,
    checksum: u16,
    status: u8,
    errors: u8,
    special: u16,
    cookie: u64,
    timestamp: u64,
}

const K_BASE: usize = 0x7f00_0000_0000;
const U_BASE: usize = 0x5500_0000_0000;
const OBJECT_SPACING: usize = 0x1000;
const RING: usize = 64;

/// A tracker holding `objects` rings of 64 records, and lookups spread over all of them
/// (interior pointers included).
fn tracker_with(objects: usize, rng: &mut Rng) -> (ObjectTracker, Vec<usize>) {
    let tracker = ObjectTracker::new();
    for i in 0..objects {
        tracker
            .register_pair(
                K_BASE + i * OBJECT_SPACING,
                U_BASE + i * OBJECT_SPACING,
                ObjectInfo::array_of::<RingRecord>(RING),
            )
            .expect("register");
    }
    let lookups = (0..4096)
        .map(|_| {
            let object = rng.below(objects as u64) as usize;
            let element = rng.below(RING as u64) as usize;
            U_BASE + object * OBJECT_SPACING + element * std::mem::size_of::<RingRecord>()
        })
        .collect();
    (tracker, lookups)
}

/// A tracker whose 100,000-object population defeats the page index: nine objects in ten
/// are 64-byte arrays packed 64 to a page (pages shared by several objects), one in ten
/// spans 80 pages (over the index's 64-page limit). Lookups spread over all of them.
fn fallback_tracker(objects: usize, rng: &mut Rng) -> (ObjectTracker, Vec<usize>) {
    const SMALL: usize = 2;
    const LARGE: usize = 80 * 4096 / std::mem::size_of::<RingRecord>();
    let tracker = ObjectTracker::new();
    let record = std::mem::size_of::<RingRecord>();
    let mut placed = Vec::with_capacity(objects);
    let mut offset = 0usize;
    for i in 0..objects {
        let count = if i % 10 == 9 { LARGE } else { SMALL };
        if count == LARGE {
            offset = offset.next_multiple_of(4096);
        }
        tracker
            .register_pair(
                K_BASE + offset,
                U_BASE + offset,
                ObjectInfo::array_of::<RingRecord>(count),
            )
            .expect("register");
        placed.push((offset, count));
        offset += count * record;
    }
    let lookups = (0..4096)
        .map(|_| {
            let (start, count) = placed[rng.below(objects as u64) as usize];
            U_BASE + start + rng.below(count as u64) as usize * record
        })
        .collect();
    (tracker, lookups)
}

/// 100,000 16-byte objects packed four to a 64-byte line: every chunk at every level of
/// the index is shared, so each lookup is a B-tree range query.
fn btree_tracker(objects: usize, rng: &mut Rng) -> (ObjectTracker, Vec<usize>) {
    let tracker = ObjectTracker::new();
    for i in 0..objects {
        tracker
            .register_pair(
                K_BASE + i * 16,
                U_BASE + i * 16,
                ObjectInfo::of::<[u64; 2]>(),
            )
            .expect("register");
    }
    let lookups = (0..4096)
        .map(|_| U_BASE + rng.below(objects as u64) as usize * 16)
        .collect();
    (tracker, lookups)
}

/// Lookups of objects of type `T` in a tracker, cycling through its lookup addresses.
struct Translations<'a> {
    tracker: &'a ObjectTracker,
    lookups: &'a [usize],
    tag: TypeTag,
    cursor: usize,
}

impl<'a> Translations<'a> {
    fn of<T>((tracker, lookups): &'a (ObjectTracker, Vec<usize>)) -> Self {
        Translations {
            tracker,
            lookups,
            tag: TypeTag::of::<T>(),
            cursor: 0,
        }
    }

    fn step(&mut self) {
        let addr = self.lookups[self.cursor % self.lookups.len()];
        self.cursor += 1;
        black_box(
            self.tracker
                .to_local(black_box(addr), self.tag)
                .expect("translate"),
        );
    }
}

/// Translations in `subject` against the same in the 10-object tracker, interleaved;
/// reports both and returns the median ratio.
fn against_small(
    name: &'static str,
    mut subject: Translations<'_>,
    small: &(ObjectTracker, Vec<usize>),
) -> f64 {
    let mut small = Translations::of::<RingRecord>(small);
    let (ratio, subject_s, small_s) = compare(
        ROUNDS,
        ROUND_TIME,
        (name, &mut || subject.step()),
        ("translate_10", &mut || small.step()),
    );
    report(&small_s);
    report(&subject_s);
    ratio
}

const ROUNDS: usize = 15;
const ROUND_TIME: Duration = Duration::from_millis(40);

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (rounds, round_time) = (ROUNDS, ROUND_TIME);
    let mut rng = Rng::new(0x5eed);

    println!("== tracker translation (range lookup)");
    let small = tracker_with(10, &mut rng);
    let large = tracker_with(100_000, &mut rng);
    let translate_ratio = against_small(
        "translate_100k",
        Translations::of::<RingRecord>(&large),
        &small,
    );

    println!("== tracker translation off the page index (shared pages, objects over 64 pages)");
    let fallback = fallback_tracker(100_000, &mut rng);
    let fallback_ratio = against_small(
        "translate_100k_fallback",
        Translations::of::<RingRecord>(&fallback),
        &small,
    );

    println!("== tracker translation through the B-tree alone (four objects to a line)");
    let btree = btree_tracker(100_000, &mut rng);
    let btree_ratio = against_small(
        "translate_100k_btree",
        Translations::of::<[u64; 2]>(&btree),
        &small,
    );

    println!("== marshal a 256-entry ring of 32-byte records (encode + decode)");
    assert_eq!(std::mem::size_of::<RingRecord>(), 32);
    let ring: Vec<RingRecord> = (0..256u64)
        .map(|i| RingRecord {
            dma: 0x1_0000_0000 + i * 2048,
            length: (64 + i) as u16,
            checksum: i as u16,
            status: 1,
            errors: 0,
            special: 0,
            cookie: i,
            timestamp: i * 3,
        })
        .collect();
    // Copies between two buffers at nearly the same offset within a page run several times
    // slower on these CPUs (4K aliasing). Where the allocator puts a buffer is luck, so the
    // bench places every buffer it controls half a page away from the data it copies from:
    // it measures marshaling, not placement.
    let half_page_from = |from: *const u8, to: *const u8| {
        (from as usize % 4096 + 2048 + 4096 - to as usize % 4096) % 4096
    };
    let mut wire = Vec::with_capacity(32 * 1024);
    let wire_skew = half_page_from(ring.as_ptr().cast(), wire.as_ptr());
    let mut marshal = || {
        wire.clear();
        wire.resize(wire_skew, 0);
        let mut enc = Encoder::new(&mut wire);
        black_box(&ring).encode(&mut enc).expect("encode");
        let mut dec = Decoder::new(black_box(&wire[wire_skew..]));
        let back = Vec::<RingRecord>::decode(&mut dec).expect("decode");
        dec.finish().expect("finish");
        black_box(back);
    };
    // The baseline: one plain copy of the same number of bytes into a buffer that
    // already exists (marshaling copies twice and allocates the decoded ring).
    let bytes = std::mem::size_of_val(ring.as_slice());
    let source = vec![0xa5u8; bytes];
    let mut destination = vec![0u8; bytes + 4096];
    let skew = half_page_from(source.as_ptr(), destination.as_ptr());
    let mut copy = || {
        destination[skew..skew + bytes].copy_from_slice(black_box(&source));
        black_box(&mut destination);
    };
    let (marshal_time_ratio, marshal_s, copy_s) = compare(
        rounds,
        round_time,
        ("marshal_ring256", &mut marshal),
        ("memcpy", &mut copy),
    );
    report(&copy_s);
    report(&marshal_s);
    println!(
        "record layout crosses as one copy: {}",
        <RingRecord as Marshal>::LAYOUT.is_memcpy()
    );

    println!("ratio translate_100k/translate_10 = {translate_ratio:.2}");
    println!("ratio translate_100k_fallback/translate_10 = {fallback_ratio:.2}");
    println!("ratio translate_100k_btree/translate_10 = {btree_ratio:.2}");
    // Throughput ratio: memcpy time over marshal time (higher is better, 1.0 = as fast).
    println!(
        "ratio marshal_ring256/memcpy = {:.2}",
        1.0 / marshal_time_ratio
    );
}
