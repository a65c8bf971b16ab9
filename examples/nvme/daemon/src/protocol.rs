//! The control socket's protocol: one JSON request per connection, one JSON reply.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

/// A fault to inject into the user half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// The user half aborts inside an upcall.
    Crash,
    /// The user half stops (SIGSTOP): the supervisor's heartbeat finds it hung.
    Hang,
    /// The user half answers with garbage and scribbles over its channel.
    Garbage,
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// `list`.
    List,
    /// `id-ctrl`.
    IdCtrl,
    /// `id-ns`.
    IdNs {
        /// Namespace.
        nsid: u32,
    },
    /// `smart-log`.
    SmartLog,
    /// `error-log`.
    ErrorLog {
        /// Entries to show.
        entries: u32,
    },
    /// `get-feature`.
    GetFeature {
        /// Feature id.
        fid: u8,
        /// Select.
        sel: u8,
    },
    /// `set-feature`.
    SetFeature {
        /// Feature id.
        fid: u8,
        /// Value.
        value: u32,
    },
    /// `format`.
    Format {
        /// Namespace.
        nsid: u32,
        /// LBA format.
        lbaf: u8,
        /// Secure erase setting.
        ses: u8,
    },
    /// `abort`: the Abort command, for an I/O command in flight.
    Abort {
        /// Submission queue.
        sqid: u16,
        /// Command id.
        cid: u16,
    },
    /// `reset`: a controller reset with the queues re-created.
    Reset,
    /// `status`.
    Status,
    /// `inject`.
    Inject {
        /// The fault.
        fault: Fault,
    },
    /// Stop the daemon.
    Shutdown,
}

/// A reply: the text nvmectl prints, or an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Reply {
    /// Success, with what to print.
    Ok {
        /// The output.
        text: String,
    },
    /// Failure.
    Error {
        /// Why.
        message: String,
    },
}

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The socket failed.
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    /// The message is not valid JSON of the expected shape.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
    /// The peer closed without a message.
    #[error("connection closed")]
    Closed,
}

/// Reads one line-delimited JSON message (at most 1 MiB).
pub fn read_message<T: for<'de> Deserialize<'de>>(
    r: &mut impl BufRead,
) -> Result<T, ProtocolError> {
    let mut line = String::new();
    let n = BufRead::read_line(&mut std::io::Read::take(r, 1 << 20), &mut line)?;
    if n == 0 {
        return Err(ProtocolError::Closed);
    }
    Ok(serde_json::from_str(&line)?)
}

/// Writes one message and a newline.
pub fn write_message<T: Serialize>(w: &mut impl Write, m: &T) -> Result<(), ProtocolError> {
    serde_json::to_writer(&mut *w, m)?;
    w.write_all(b"\n")?;
    Ok(())
}
