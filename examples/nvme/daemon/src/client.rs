//! The client side of the control socket (nvmectl, the tests).

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::protocol::{read_message, write_message, ProtocolError, Reply, Request};

/// Sends one request and returns the reply.
pub fn call(socket: &Path, req: &Request, timeout: Duration) -> Result<Reply, ProtocolError> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(timeout))?;
    write_message(&mut s, req)?;
    read_message(&mut BufReader::new(s))
}
