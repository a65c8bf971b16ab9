//! The bounded, always-run twin of the `kernel_frame` fuzz target: random and mutated
//! frames through the kernel half's decode path (header, free notices, tracked pointers).

use microdriver_rt::__internal::fuzzing::{decode_user_frame, Counters, Reply};
use microdriver_rt::__internal::lrpc_frame::{begin, end};
use microdriver_rt::marshal::{Encoder, Marshal, TrackedPtr};
use proptest::prelude::*;

/// A well-formed frame to mutate.
fn seed_frame(frees: &[(u64, u64)], replies: &[Reply]) -> Vec<u8> {
    let mut buf = Vec::new();
    begin(&mut buf, 7, frees);
    let mut enc = Encoder::new(&mut buf);
    replies.to_vec().encode(&mut enc).expect("encode");
    end(&mut buf).expect("end");
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn random_bytes(data in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_user_frame(&data);
    }

    #[test]
    fn mutated_frames(
        frees in prop::collection::vec((any::<u64>(), any::<u64>()), 0..4),
        data in prop::collection::vec(any::<u8>(), 0..64),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let object = TrackedPtr::new(Counters::default());
        let mut frame = seed_frame(&frees, &[Reply::Data(data), Reply::Object(object), Reply::Empty]);
        // SAFETY: freed once; the frame holds only its address and contents.
        unsafe { object.free(None) };
        for (at, byte) in edits {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        decode_user_frame(&frame);
    }
}
