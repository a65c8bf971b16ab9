//! A minimal `tracing` subscriber for the bench's child processes: warnings and errors the
//! driver and the runtime log (a transmit hang, a failed reset, a user half declared hung)
//! go to stderr, tagged with the configuration, so a run that goes wrong says why.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

struct Stderr {
    tag: String,
    next_span: AtomicU64,
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed))
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        eprintln!(
            "  [{}] {} {}:{}",
            self.tag,
            event.metadata().level(),
            event.metadata().target(),
            fields.0
        );
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Sends this process's warnings and errors to stderr, tagged with `tag`.
pub fn init(tag: String) {
    let _ = tracing::subscriber::set_global_default(Stderr {
        tag,
        next_span: AtomicU64::new(1),
    });
}
