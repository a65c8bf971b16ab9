//! Entry tables: the functions each half serves to the other, by stable id.
//!
//! `#[upcall]` and `#[critical]` register an [`Entry`] for every annotated function with
//! [`inventory`]; ids are a hash of the function's module path and name, so a kernel half
//! and a user half built from the same source agree on them, and the table's hash (over
//! every id, name and signature) is compared in the handshake so that halves built from
//! different sources refuse to talk.

use std::sync::OnceLock;

use crate::marshal::{Decoder, Encoder, MarshalError};
use crate::tracker::type_tag::fnv1a;

/// Which half serves an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Served {
    /// The user half (an `#[upcall]`).
    ByUser,
    /// The kernel half (a `#[critical]` function reached by downcall).
    ByKernel,
}

/// The code that serves a call: decodes the arguments and calls [`Decoder::finish`] (so
/// the whole request is checked and applied before anything runs), runs the function,
/// then encodes the result and any `&mut` arguments, in order.
pub type Handler = fn(Decoder<'_>, &mut Encoder<'_>) -> Result<(), MarshalError>;

/// One served function.
#[derive(Debug)]
pub struct Entry {
    /// `module::path::function`.
    pub name: &'static str,
    /// The signature as written (part of the table hash).
    pub signature: &'static str,
    /// Who serves it.
    pub served: Served,
    /// The handler.
    pub handler: Handler,
}

inventory::collect!(Entry);

/// Registers a hand-written [`Entry`]: a function the other half can call by name, for what
/// `#[upcall]` and `#[critical]` cannot express (a handler that writes its own reply bytes,
/// say, to test that the caller rejects a malformed one). The fields are those of
/// [`Entry`]; call it with [`KernelEndpoint::call`](crate::lrpc::KernelEndpoint::call) and
/// [`Entry::id_of`] its name.
///
/// ```
/// use microdriver_rt::lrpc::{Entry, Served};
/// use microdriver_rt::{Decoder, Encoder, MarshalError};
///
/// fn always_seven(dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
///     dec.finish()?;
///     enc.put_u8(7);
///     Ok(())
/// }
///
/// microdriver_rt::entry! {
///     name: "my_driver::always_seven",
///     signature: "fn() -> u8",
///     served: Served::ByUser,
///     handler: always_seven,
/// }
///
/// let table = microdriver_rt::lrpc::EntryTable::get();
/// let id = Entry::id_of("my_driver::always_seven");
/// assert!(table.lookup(Served::ByUser, id).is_some());
/// ```
#[macro_export]
macro_rules! entry {
    ($($field:ident : $value:expr),* $(,)?) => {
        $crate::lrpc::__private::inventory::submit! {
            $crate::lrpc::Entry { $($field: $value),* }
        }
    };
}

impl Entry {
    /// The entry's id: a hash of its name.
    pub const fn id_of(name: &str) -> u32 {
        let hash = fnv1a(name.as_bytes());
        (hash ^ (hash >> 32)) as u32
    }

    /// This entry's id.
    pub fn id(&self) -> u32 {
        Self::id_of(self.name)
    }
}

/// Every entry of this executable, indexed by id.
pub struct EntryTable {
    /// Looked up on every call served: a fast hash (the ids are hashes already).
    by_id: rustc_hash::FxHashMap<(Served, u32), &'static Entry>,
    hash: u64,
    duplicates: Vec<(&'static str, &'static str)>,
}

impl EntryTable {
    fn build() -> Self {
        let mut by_id: rustc_hash::FxHashMap<(Served, u32), &'static Entry> =
            rustc_hash::FxHashMap::default();
        let mut duplicates = Vec::new();
        let mut all: Vec<&'static Entry> = inventory::iter::<Entry>.into_iter().collect();
        all.sort_by_key(|e| (e.name, e.signature));
        let mut text = String::new();
        for entry in all {
            if let Some(previous) = by_id.insert((entry.served, entry.id()), entry) {
                if previous.name != entry.name {
                    duplicates.push((previous.name, entry.name));
                }
            }
            text.push_str(&format!(
                "{:08x} {:?} {} {};",
                entry.id(),
                entry.served,
                entry.name,
                entry.signature
            ));
        }
        EntryTable {
            by_id,
            hash: fnv1a(text.as_bytes()),
            duplicates,
        }
    }

    /// The table of this executable (built once).
    pub fn get() -> &'static EntryTable {
        static TABLE: OnceLock<EntryTable> = OnceLock::new();
        TABLE.get_or_init(EntryTable::build)
    }

    /// Looks an entry up.
    pub fn lookup(&self, served: Served, id: u32) -> Option<&'static Entry> {
        self.by_id.get(&(served, id)).copied()
    }

    /// The hash both halves compare in the handshake.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Pairs of distinct functions whose ids collide (should be empty; reported at start).
    pub fn collisions(&self) -> &[(&'static str, &'static str)] {
        &self.duplicates
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no function is registered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// All entries served by `served`.
    pub fn entries(&self, served: Served) -> impl Iterator<Item = &'static Entry> + '_ {
        self.by_id
            .iter()
            .filter(move |((s, _), _)| *s == served)
            .map(|(_, e)| *e)
    }
}
