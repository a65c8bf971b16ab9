//! The client side of the control protocol (what `e1000ctl` and the demo use).

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::protocol::{read_message, write_message, ProtocolError, Reply, Request};

/// Where e1000d listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/e1000d.sock";

/// Errors talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens at the path.
    #[error("cannot reach e1000d at {path}: {source} (is e1000d running? pass --socket PATH if it listens elsewhere)")]
    Unreachable {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The exchange failed.
    #[error("talking to e1000d at {path}: {source}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// Why.
        source: ProtocolError,
    },
    /// The daemon answered with an error.
    #[error("{0}")]
    Daemon(String),
    /// The daemon answered something this request does not expect.
    #[error("e1000d sent an unexpected reply: {0}")]
    Unexpected(String),
}

/// Sends one request and returns the reply (an [`Reply::Error`] becomes
/// [`ClientError::Daemon`]).
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Reply, ClientError> {
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Unreachable {
        path: socket.to_path_buf(),
        source,
    })?;
    let proto = |source: std::io::Error| ClientError::Protocol {
        path: socket.to_path_buf(),
        source: ProtocolError::Io(source),
    };
    stream.set_read_timeout(Some(timeout)).map_err(proto)?;
    stream.set_write_timeout(Some(timeout)).map_err(proto)?;
    let mut writer = stream.try_clone().map_err(proto)?;
    write_message(&mut writer, req).map_err(|source| ClientError::Protocol {
        path: socket.to_path_buf(),
        source,
    })?;
    let reply: Reply =
        read_message(&mut BufReader::new(stream)).map_err(|source| ClientError::Protocol {
            path: socket.to_path_buf(),
            source,
        })?;
    match reply {
        Reply::Error { message } => Err(ClientError::Daemon(message)),
        r => Ok(r),
    }
}
