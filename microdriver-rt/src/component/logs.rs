//! The user half's `tracing` events, forwarded to the kernel half.
//!
//! The user half writes each event as one line (`LEVEL \t target \t message fields`, at
//! most [`MAX_LINE`] bytes, so every write is atomic) to a pipe given to it as another
//! descriptor. The write end is non-blocking: an event that does not fit in the pipe is
//! dropped and counted (the next event that fits says how many), so logging never stalls
//! the user half. A kernel-half thread reads the pipe and re-emits each event with
//! `tracing::event!` at the same level under the target `microdriver::uhalf`, with the
//! user half's pid and its original target as fields.

use std::fmt::Write as _;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// The longest forwarded line (`PIPE_BUF`: a write this size is all or nothing).
pub const MAX_LINE: usize = 4096;

/// The user half's subscriber: forwards every event up to `max` to the kernel half.
pub(crate) struct Forward {
    fd: OwnedFd,
    max: LevelFilter,
    dropped: AtomicU64,
}

impl Forward {
    /// Forwards to `fd` every event the kernel half's subscribers could want: `max` is
    /// their most verbose level when the user half was started (`max_level` parses it;
    /// anything else forwards everything).
    pub(crate) fn new(fd: OwnedFd, max_level: Option<&str>) -> Self {
        Forward {
            fd,
            max: max_level
                .and_then(|level| level.parse().ok())
                .unwrap_or(LevelFilter::TRACE),
            dropped: AtomicU64::new(0),
        }
    }

    fn send(&self, line: &str) -> bool {
        matches!(rustix::io::write(&self.fd, line.as_bytes()), Ok(n) if n == line.len())
    }
}

/// Appends `text` with line breaks and tabs turned into spaces.
fn push_clean(out: &mut String, text: &str) {
    out.extend(text.chars().map(|c| match c {
        '\n' | '\r' | '\t' => ' ',
        c => c,
    }));
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        if field.name() == "message" {
            let _ = write!(text, "{value:?}");
        } else {
            let _ = write!(text, " {}={value:?}", field.name());
        }
        push_clean(self.0, &text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            push_clean(self.0, value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

impl Subscriber for Forward {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut line = String::with_capacity(160);
        let _ = write!(line, "{}\t", meta.level());
        push_clean(&mut line, meta.target());
        line.push('\t');
        event.record(&mut Fields(&mut line));
        if line.len() > MAX_LINE - 1 {
            let mut end = MAX_LINE - 1;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        line.push('\n');
        if !self.send(&line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format!(
                "WARN\tmicrodriver::uhalf\t{dropped} events dropped: the log pipe was full\n"
            );
            if !self.send(&note) {
                self.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Starts the kernel-half thread that re-emits the events of user half `pid` read from
/// `fd` (the pipe's read end). It ends when the user half is gone (end of file).
pub(crate) fn spawn_reader(fd: OwnedFd, pid: u32) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("uhalf-log-{pid}"))
        .spawn(move || read_lines(std::fs::File::from(fd), pid))
}

fn read_lines(mut pipe: std::fs::File, pid: u32) {
    let mut chunk = [0u8; 8192];
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE);
    // True while skipping the rest of a line that was already too long.
    let mut skipping = false;
    loop {
        let n = match pipe.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        for &byte in &chunk[..n] {
            if byte == b'\n' {
                if !skipping {
                    emit(&line, pid);
                }
                line.clear();
                skipping = false;
            } else if !skipping {
                line.push(byte);
                if line.len() >= MAX_LINE {
                    // A hostile or broken user half: emit what fits, drop the rest.
                    emit(&line, pid);
                    line.clear();
                    skipping = true;
                }
            }
        }
    }
}

/// Re-emits one line (untrusted: any bytes) in the kernel half.
fn emit(line: &[u8], pid: u32) {
    let text = String::from_utf8_lossy(line);
    let mut parts = text.splitn(3, '\t');
    let (level, target, message) = match (parts.next(), parts.next(), parts.next()) {
        (Some(level), Some(target), Some(message)) => (level, target, message),
        _ => ("WARN", "?", text.as_ref()),
    };
    let level = match level {
        "ERROR" => Level::ERROR,
        "WARN" => Level::WARN,
        "INFO" => Level::INFO,
        "DEBUG" => Level::DEBUG,
        _ => Level::TRACE,
    };
    macro_rules! at {
        ($level:expr) => {
            tracing::event!(target: "microdriver::uhalf", $level, pid, user_target = target, "{message}")
        };
    }
    match level {
        Level::ERROR => at!(Level::ERROR),
        Level::WARN => at!(Level::WARN),
        Level::INFO => at!(Level::INFO),
        Level::DEBUG => at!(Level::DEBUG),
        _ => at!(Level::TRACE),
    }
}
