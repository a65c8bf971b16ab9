//! The user-half protocol: the downcalls that hold, snapshot and release a kernel-half
//! lock, and the kernel half's handling of them.

use super::*;

/// The kernel half's handling of a user-half hold request for lock `id` (what the
/// [`HOLD_ENTRY`] downcall runs): waits up to `wait` for the lock, then marks it held by
/// the user half and writes code 0, the token and the contents into `enc`.
pub fn hold_for_user(
    id: u64,
    wait: Duration,
    enc: &mut Encoder<'_>,
) -> Result<HoldToken, ComboLockError> {
    let lock = lookup(id).ok_or(ComboLockError::UnknownLock { id })?;
    lock.hold_for_user(Instant::now() + wait, enc)
}

/// The kernel half's handling of a user-half snapshot request for lock `id` (what the
/// [`SNAPSHOT_ENTRY`] downcall runs): waits up to `wait` for the lock, writes code 0 and
/// the contents into `enc`, and releases.
pub fn snapshot_for_user(
    id: u64,
    wait: Duration,
    enc: &mut Encoder<'_>,
) -> Result<(), ComboLockError> {
    let lock = lookup(id).ok_or(ComboLockError::UnknownLock { id })?;
    lock.snapshot_for_user(Instant::now() + wait, enc)
}

/// The kernel half's handling of a user-half release (what the [`RELEASE_ENTRY`] downcall
/// runs): with `Some(decoder)` over the contents, decodes them completely and writes them
/// into the kernel copy; with `None`, writes nothing; then releases. Rejects unknown ids,
/// locks not held by the user half and foreign tokens, leaving everything untouched.
pub fn release_from_user(
    id: u64,
    token: HoldToken,
    value: Option<Decoder<'_>>,
) -> Result<(), ComboLockError> {
    let lock = lookup(id).ok_or(ComboLockError::UnknownLock { id })?;
    lock.release_from_user(token.0, value)
}

pub(super) fn hold_handler(
    mut dec: Decoder<'_>,
    enc: &mut Encoder<'_>,
) -> Result<(), MarshalError> {
    let id = u64::decode(&mut dec)?;
    dec.finish()?;
    match hold_for_user(id, USER_LOCK_WAIT, enc) {
        Ok(_) => Ok(()),
        // Part of the contents is in the reply: fail the call (the reply is rebuilt).
        Err(ComboLockError::Encode { reason, .. }) => Err(MarshalError::BadHeader { reason }),
        Err(e) => {
            enc.put_u8(e.code());
            Ok(())
        }
    }
}

pub(super) fn snapshot_handler(
    mut dec: Decoder<'_>,
    enc: &mut Encoder<'_>,
) -> Result<(), MarshalError> {
    let id = u64::decode(&mut dec)?;
    dec.finish()?;
    match snapshot_for_user(id, USER_LOCK_WAIT, enc) {
        Ok(()) => Ok(()),
        Err(ComboLockError::Encode { reason, .. }) => Err(MarshalError::BadHeader { reason }),
        Err(e) => {
            enc.put_u8(e.code());
            Ok(())
        }
    }
}

pub(super) fn release_handler(
    mut dec: Decoder<'_>,
    enc: &mut Encoder<'_>,
) -> Result<(), MarshalError> {
    let id = u64::decode(&mut dec)?;
    let token = u64::decode(&mut dec)?;
    let with_value = bool::decode(&mut dec)?;
    let result = if with_value {
        release_from_user(id, HoldToken(token), Some(dec))
    } else {
        dec.finish()?;
        release_from_user(id, HoldToken(token), None)
    };
    enc.put_u8(result.map_or_else(|e| e.code(), |()| 0));
    Ok(())
}

inventory::submit! {
    Entry {
        name: HOLD_ENTRY,
        signature: "fn(id: u64) -> (u8, u64, T)",
        served: Served::ByKernel,
        handler: hold_handler,
    }
}

inventory::submit! {
    Entry {
        name: SNAPSHOT_ENTRY,
        signature: "fn(id: u64) -> (u8, T)",
        served: Served::ByKernel,
        handler: snapshot_handler,
    }
}

inventory::submit! {
    Entry {
        name: RELEASE_ENTRY,
        signature: "fn(id: u64, token: u64, Option<T>) -> u8",
        served: Served::ByKernel,
        handler: release_handler,
    }
}

/// Makes the release downcall from the user half.
pub(super) fn release_remote<T: Marshal>(
    id: u64,
    token: u64,
    value: Option<&T>,
) -> Result<(), ComboLockError> {
    let code = downcall(
        RELEASE_ENTRY,
        &mut (),
        |_, enc| {
            id.encode(enc)?;
            token.encode(enc)?;
            value.is_some().encode(enc)?;
            value.map_or(Ok(()), |v| v.encode(enc))
        },
        |_, dec| {
            let offset = dec.position();
            Ok((dec.take_u8()?, offset))
        },
    )
    .map_err(|error| ComboLockError::Call { id, error })?;
    match code {
        (0, _) => Ok(()),
        (code, offset) => {
            Err(ComboLockError::from_code(code, id, offset)
                .unwrap_or(ComboLockError::Malformed { id }))
        }
    }
}
