//! The pairing table: the tracker's single-threaded core. [`super::ObjectTracker`] wraps it
//! in a lock; everything here is plain data, so it can be tested (and model-checked)
//! directly.

use std::collections::{BTreeMap, VecDeque};

use slab::Slab;

use super::page_index::{Indexed, PageIndex};
use super::{ObjectId, ObjectInfo, TrackerError, TypeTag, NULL_GUARD};

/// How many freed ranges are remembered so that a late pointer into one is reported as
/// `Freed` rather than `Unregistered`.
const TOMBSTONES: usize = 1024;

/// What the local page index holds of an object: its slot and extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalHit {
    slot: usize,
    start: usize,
    size: usize,
}

impl Indexed for LocalHit {
    fn slot(&self) -> usize {
        self.slot
    }
    fn extent(&self) -> (usize, usize) {
        (self.start, self.size)
    }
}

/// Everything a remote-to-local translation needs, copied into the page index so that the
/// hot path (every pointer entering from the peer) touches one cache line, not two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RemoteHit {
    slot: usize,
    generation: u32,
    start: usize,
    size: usize,
    elem_size: usize,
    type_id: u64,
    local: usize,
}

impl Indexed for RemoteHit {
    fn slot(&self) -> usize {
        self.slot
    }
    fn extent(&self) -> (usize, usize) {
        (self.start, self.size)
    }
}

/// Values that slab poisoning and use-after-free patterns leave in pointers.
fn is_poison(addr: usize) -> bool {
    let addr = addr as u64;
    // Linux slab poison (0x6b), redzones (0xbb, 0xcc), free-pointer poisons (0xdead...).
    matches!(
        addr,
        0x6b6b_6b6b_6b6b_6b6b
            | 0xbbbb_bbbb_bbbb_bbbb
            | 0xcccc_cccc_cccc_cccc
            | 0xa5a5_a5a5_a5a5_a5a5
    ) || addr >> 32 == 0xdead_0000
        || addr >> 48 == 0xdead
}

/// One registered object.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) local: usize,
    pub(crate) remote: Option<usize>,
    pub(crate) info: ObjectInfo,
    pub(crate) generation: u32,
    /// For a copy the runtime allocated (allocation mirroring): how to free it.
    pub(crate) release: Option<super::Release>,
}

/// A translated address: the object it falls in and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The address on this side.
    pub addr: usize,
    /// The object's handle.
    pub id: ObjectId,
    /// Byte offset of the address inside the object.
    pub offset: usize,
    /// Element index (`offset / elem_size`).
    pub index: usize,
}

/// The tables.
#[derive(Debug, Default)]
pub(crate) struct Table {
    entries: Slab<Entry>,
    /// The current generation of every slab slot ever used (bumped on free).
    generations: Vec<u32>,
    by_local: BTreeMap<usize, usize>,
    by_remote: BTreeMap<usize, usize>,
    /// Recently freed local ranges (start -> size), oldest first in `tomb_order`.
    tombs_local: BTreeMap<usize, usize>,
    tombs_remote: BTreeMap<usize, usize>,
    tomb_order: VecDeque<(bool, usize)>,
    pages_local: PageIndex<LocalHit>,
    pages_remote: PageIndex<RemoteHit>,
    bytes: usize,
}

/// Which address space an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    Local,
    Remote,
}

fn check_address(addr: usize) -> Result<(), TrackerError> {
    if addr < NULL_GUARD {
        return Err(TrackerError::NearNull { addr });
    }
    if is_poison(addr) {
        return Err(TrackerError::Poisoned { addr });
    }
    Ok(())
}

impl Table {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn paired(&self) -> usize {
        self.by_remote.len()
    }

    fn map(&self, space: Space) -> &BTreeMap<usize, usize> {
        match space {
            Space::Local => &self.by_local,
            Space::Remote => &self.by_remote,
        }
    }

    fn tombs(&self, space: Space) -> &BTreeMap<usize, usize> {
        match space {
            Space::Local => &self.tombs_local,
            Space::Remote => &self.tombs_remote,
        }
    }

    /// Fails if `[addr, addr+size)` overlaps a registered range in `space`.
    fn check_free_range(&self, space: Space, addr: usize, size: usize) -> Result<(), TrackerError> {
        let map = self.map(space);
        let end = addr + size;
        let start_of = |slot: usize| match space {
            Space::Local => self.entries[slot].local,
            Space::Remote => self.entries[slot].remote.unwrap_or(0),
        };
        if let Some((&start, &slot)) = map.range(..end).next_back() {
            let other_end = start + self.entries[slot].info.size();
            if other_end > addr {
                return Err(TrackerError::Overlap {
                    addr,
                    size,
                    existing: start_of(slot),
                });
            }
        }
        Ok(())
    }

    /// Registers a local object (not yet paired).
    pub(crate) fn register(
        &mut self,
        local: usize,
        info: ObjectInfo,
    ) -> Result<ObjectId, TrackerError> {
        check_address(local)?;
        let size = info.checked_size(local)?;
        self.check_free_range(Space::Local, local, size)?;
        let slot = self.entries.vacant_key();
        if slot >= self.generations.len() {
            self.generations.resize(slot + 1, 0);
        }
        let generation = self.generations[slot];
        self.entries.insert(Entry {
            local,
            remote: None,
            info,
            generation,
            release: None,
        });
        self.by_local.insert(local, slot);
        let hit = LocalHit {
            slot,
            start: local,
            size,
        };
        self.pages_local.insert(local, size, hit);
        self.forget_tomb(Space::Local, local, size);
        self.bytes += size;
        Ok(ObjectId {
            index: slot as u32,
            generation,
        })
    }

    /// Records how to free a mirrored copy.
    pub(crate) fn set_release(
        &mut self,
        id: ObjectId,
        release: super::Release,
    ) -> Result<(), TrackerError> {
        let slot = self.slot_of(id)?;
        self.entries[slot].release = Some(release);
        Ok(())
    }

    /// Pairs the registered local object `id` with `remote`.
    pub(crate) fn pair(&mut self, id: ObjectId, remote: usize) -> Result<(), TrackerError> {
        let slot = self.slot_of(id)?;
        check_address(remote)?;
        let entry = &self.entries[slot];
        if let Some(paired) = entry.remote {
            if paired == remote {
                return Ok(());
            }
            return Err(TrackerError::PairingMismatch {
                local: entry.local,
                paired,
                claimed: remote,
            });
        }
        let size = entry.info.checked_size(remote)?;
        self.check_free_range(Space::Remote, remote, size)?;
        let entry = &mut self.entries[slot];
        entry.remote = Some(remote);
        let hit = RemoteHit {
            slot,
            generation: entry.generation,
            start: remote,
            size,
            elem_size: entry.info.elem_size,
            type_id: entry.info.ty.id(),
            local: entry.local,
        };
        self.by_remote.insert(remote, slot);
        self.pages_remote.insert(remote, size, hit);
        self.forget_tomb(Space::Remote, remote, size);
        Ok(())
    }

    fn slot_of(&self, id: ObjectId) -> Result<usize, TrackerError> {
        let slot = id.index as usize;
        let current = self.generations.get(slot).copied();
        match (current, self.entries.get(slot)) {
            (Some(current), Some(entry)) if entry.generation == id.generation => {
                let _ = current;
                Ok(slot)
            }
            (Some(current), _) => Err(TrackerError::StaleHandle {
                index: id.index,
                generation: id.generation,
                current,
            }),
            (None, _) => Err(TrackerError::StaleHandle {
                index: id.index,
                generation: id.generation,
                current: 0,
            }),
        }
    }

    /// The entry behind a handle (generation-checked).
    pub(crate) fn entry(&self, id: ObjectId) -> Result<&Entry, TrackerError> {
        let slot = self.slot_of(id)?;
        Ok(&self.entries[slot])
    }

    /// Finds the object containing `addr` in `space` and checks type and alignment.
    pub(crate) fn translate(
        &self,
        space: Space,
        addr: usize,
        ty: TypeTag,
    ) -> Result<(Translation, &Entry), TrackerError> {
        check_address(addr)?;
        let Some((start, slot)) = self.find(space, addr) else {
            return Err(self.miss(space, addr, None));
        };
        let entry = &self.entries[slot];
        let size = entry.info.size();
        let offset = addr - start;
        if offset >= size {
            return Err(self.miss(space, addr, Some((start, size))));
        }
        if entry.info.ty != ty {
            return Err(TrackerError::WrongType {
                addr,
                expected: ty.name(),
                found: entry.info.ty.name(),
            });
        }
        let elem_size = entry.info.elem_size;
        if !offset.is_multiple_of(elem_size) {
            return Err(TrackerError::Misaligned {
                addr,
                offset,
                elem_size,
            });
        }
        let target = match space {
            Space::Local => entry
                .remote
                .ok_or(TrackerError::NotPaired { addr: entry.local })?,
            Space::Remote => entry.local,
        };
        Ok((
            Translation {
                addr: target + offset,
                id: ObjectId {
                    index: slot as u32,
                    generation: entry.generation,
                },
                offset,
                index: offset / elem_size,
            },
            entry,
        ))
    }

    /// The hot path of a remote-to-local translation: one probe of the page index. `None`
    /// means "not answered here" (not necessarily an error): ask [`Table::translate`].
    pub(crate) fn translate_remote_fast(&self, addr: usize, ty: TypeTag) -> Option<Translation> {
        let hit = self.pages_remote.candidate(addr)?;
        let offset = addr.checked_sub(hit.start)?;
        if offset >= hit.size
            || hit.type_id != ty.id()
            || offset % hit.elem_size != 0
            || addr < NULL_GUARD
        {
            return None;
        }
        Some(Translation {
            addr: hit.local + offset,
            id: ObjectId {
                index: hit.slot as u32,
                generation: hit.generation,
            },
            offset,
            index: offset / hit.elem_size,
        })
    }

    /// The object starting at or below `addr` (the one that contains it, if any): one hash
    /// probe when the page index knows the page, a B-tree range lookup otherwise.
    fn find(&self, space: Space, addr: usize) -> Option<(usize, usize)> {
        let candidate = match space {
            Space::Local => self
                .pages_local
                .candidate(addr)
                .and_then(|hit| Some((self.entries.get(hit.slot)?.local, hit.slot))),
            Space::Remote => self
                .pages_remote
                .candidate(addr)
                .map(|hit| (hit.start, hit.slot)),
        };
        if let Some((start, slot)) = candidate {
            if start <= addr
                && self
                    .entries
                    .get(slot)
                    .is_some_and(|e| addr - start < e.info.size())
            {
                return Some((start, slot));
            }
        }
        self.map(space)
            .range(..=addr)
            .next_back()
            .map(|(&start, &slot)| (start, slot))
    }

    /// The error for an address that no live object contains.
    fn miss(&self, space: Space, addr: usize, below: Option<(usize, usize)>) -> TrackerError {
        if let Some((&start, &size)) = self.tombs(space).range(..=addr).next_back() {
            if addr < start + size {
                return TrackerError::Freed { addr };
            }
        }
        match below {
            Some((start, size)) if addr == start + size => {
                TrackerError::PastEnd { addr, start, size }
            }
            _ => TrackerError::Unregistered { addr },
        }
    }

    /// The registered local object that starts exactly at `local`, paired or not.
    pub(crate) fn local_at(
        &self,
        local: usize,
        ty: TypeTag,
    ) -> Result<(ObjectId, &Entry), TrackerError> {
        check_address(local)?;
        let Some(&slot) = self.by_local.get(&local) else {
            return Err(match self.translate(Space::Local, local, ty) {
                Err(e) => e,
                Ok((t, _)) => TrackerError::Misaligned {
                    addr: local,
                    offset: t.offset,
                    elem_size: t.offset,
                },
            });
        };
        let entry = &self.entries[slot];
        if entry.info.ty != ty {
            return Err(TrackerError::WrongType {
                addr: local,
                expected: ty.name(),
                found: entry.info.ty.name(),
            });
        }
        Ok((
            ObjectId {
                index: slot as u32,
                generation: entry.generation,
            },
            entry,
        ))
    }

    /// Removes the object starting at `addr` in `space` after checking its type id.
    pub(crate) fn remove_checked(
        &mut self,
        space: Space,
        addr: usize,
        type_id: u64,
    ) -> Result<Entry, TrackerError> {
        check_address(addr)?;
        let Some(&slot) = self.map(space).get(&addr) else {
            return Err(self.miss(space, addr, None));
        };
        let entry = &self.entries[slot];
        if entry.info.ty.id() != type_id {
            return Err(TrackerError::WrongType {
                addr,
                expected: "the type named in the free notice",
                found: entry.info.ty.name(),
            });
        }
        Ok(self.remove_slot(slot))
    }

    /// Removes the object whose *start* is `addr` in `space`; returns its entry.
    pub(crate) fn remove(&mut self, space: Space, addr: usize) -> Result<Entry, TrackerError> {
        check_address(addr)?;
        let slot = match self.map(space).get(&addr) {
            Some(&slot) => slot,
            None => {
                let near = self
                    .map(space)
                    .range(..=addr)
                    .next_back()
                    .map(|(&start, &slot)| (start, self.entries[slot].info.size()));
                return Err(match near {
                    Some((start, size)) if addr < start + size => TrackerError::Misaligned {
                        addr,
                        offset: addr - start,
                        elem_size: size,
                    },
                    _ => self.miss(space, addr, near),
                });
            }
        };
        Ok(self.remove_slot(slot))
    }

    pub(crate) fn remove_slot(&mut self, slot: usize) -> Entry {
        let entry = self.entries.remove(slot);
        self.generations[slot] = self.generations[slot].wrapping_add(1);
        let size = entry.info.size();
        self.by_local.remove(&entry.local);
        self.pages_local.remove(entry.local, size, slot);
        self.add_tomb(Space::Local, entry.local, size);
        if let Some(remote) = entry.remote {
            self.by_remote.remove(&remote);
            self.pages_remote.remove(remote, size, slot);
            self.add_tomb(Space::Remote, remote, size);
        }
        self.bytes -= size;
        entry
    }

    /// Forgets every pairing with the peer; local objects stay registered, except the
    /// copies the runtime made of the peer's objects (mirrors), which are removed and
    /// returned for the caller to free.
    pub(crate) fn clear_remote(&mut self) -> (usize, Vec<Entry>) {
        let count = self.by_remote.len();
        let mirrors: Vec<usize> = self
            .entries
            .iter()
            .filter(|(_, e)| e.release.is_some())
            .map(|(slot, _)| slot)
            .collect();
        let mirrors: Vec<Entry> = mirrors
            .into_iter()
            .map(|slot| self.remove_slot(slot))
            .collect();
        for (_, slot) in std::mem::take(&mut self.by_remote) {
            self.entries[slot].remote = None;
        }
        self.pages_remote = PageIndex::default();
        self.tombs_remote.clear();
        self.tomb_order.retain(|&(local, _)| local);
        (count, mirrors)
    }

    fn add_tomb(&mut self, space: Space, start: usize, size: usize) {
        let is_local = space == Space::Local;
        let tombs = match space {
            Space::Local => &mut self.tombs_local,
            Space::Remote => &mut self.tombs_remote,
        };
        tombs.insert(start, size);
        self.tomb_order.push_back((is_local, start));
        while self.tomb_order.len() > TOMBSTONES {
            if let Some((local, old)) = self.tomb_order.pop_front() {
                if local {
                    self.tombs_local.remove(&old);
                } else {
                    self.tombs_remote.remove(&old);
                }
            }
        }
    }

    /// A range is live again: drop tombstones it covers.
    fn forget_tomb(&mut self, space: Space, start: usize, size: usize) {
        let tombs = match space {
            Space::Local => &mut self.tombs_local,
            Space::Remote => &mut self.tombs_remote,
        };
        let stale: Vec<usize> = tombs
            .range(..start + size)
            .rev()
            .take_while(|(&s, &len)| s + len > start)
            .map(|(&s, _)| s)
            .collect();
        for s in stale {
            tombs.remove(&s);
        }
    }
}
