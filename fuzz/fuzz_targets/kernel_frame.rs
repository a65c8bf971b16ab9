//! The kernel half's receive path for a frame from the user half: header checks, the
//! piggybacked free notices (applied to a tracker holding live pairings), and decoding
//! of values that include tracked pointers. Must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use microdriver_rt::__internal::fuzzing::decode_user_frame;

fuzz_target!(|data: &[u8]| {
    decode_user_frame(data);
});
