//! Faults injected into the user half (`nvmectl inject`): each is something a buggy user
//! half really does. The kernel half's answer is the point: I/O keeps completing and the
//! user half comes back.

use microdriver_rt::lrpc::{user_endpoint, Entry, KernelEndpoint, Served};
use microdriver_rt::marshal::{Decoder, Encoder, Marshal, MarshalError};
use microdriver_rt::upcall;
use nvme::NvmeError;

/// Aborts the user half from inside an upcall.
#[upcall]
pub fn crash_user_half() -> Result<(), NvmeError> {
    if user_endpoint().is_none() {
        return Err(NvmeError::Unsupported(
            "crash injection needs the split mode".into(),
        ));
    }
    std::process::abort();
}

/// Writes pseudo-random bytes over the user half's channel, as a wild pointer would.
#[upcall]
pub fn scribble_channel(seed: u64) -> Result<(), NvmeError> {
    let endpoint = user_endpoint()
        .ok_or_else(|| NvmeError::Unsupported("garbage injection needs the split mode".into()))?;
    endpoint.scribble_channel(seed);
    Ok(())
}

const GARBAGE_REPLY: &str = "nvmed::faults::garbage_reply";

/// Answers with random bytes in place of a reply; the first byte is never a valid
/// `Result` tag, so the frame cannot decode.
fn garbage_reply_handler(dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    drop(dec);
    let mut x = u64::from(std::process::id()) | 1;
    enc.put_u8(0xEE);
    for _ in 0..61 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        enc.put_u8(x as u8);
    }
    Ok(())
}

microdriver_rt::entry! {
    name: GARBAGE_REPLY,
    signature: "fn() -> Result<(), NvmeError>",
    served: Served::ByUser,
    handler: garbage_reply_handler,
}

/// Asks the user half for a reply and gets garbage: the kernel half must reject it.
pub fn garbage_reply(endpoint: &KernelEndpoint) -> Result<(), NvmeError> {
    endpoint
        .call(
            Entry::id_of(GARBAGE_REPLY),
            GARBAGE_REPLY,
            &mut (),
            |_, enc| ().encode(enc),
            |_, dec| <Result<(), NvmeError>>::decode(dec),
        )
        .map_err(NvmeError::from)?
}
