//! Command execution: admin commands (queue 0) and NVM commands (I/O queues). Each
//! returns `(dword 0, status)`, or `None` for a command the controller holds (an
//! asynchronous event request: this model raises no events).

use nvme_regs::{admin, cns, feat, io, log, status, Sqe, PAGE};

use crate::controller::{CompQ, NvmeSim, State, SubQ};
use crate::prp;

type Outcome = (u32, u16);

/// Error information log entries the model keeps (ELPE + 1): more than one log page's
/// worth, so reading them all needs log page offsets.
pub(crate) const ERROR_ENTRIES: usize = 160;

fn ok(result: u32) -> Outcome {
    (result, status::SUCCESS)
}

fn err(s: u16) -> Outcome {
    (0, s)
}

fn ascii(dst: &mut [u8], s: &str) {
    dst.fill(b' ');
    let n = s.len().min(dst.len());
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

impl NvmeSim {
    pub(crate) fn admin(&self, st: &mut State, c: &Sqe) -> Option<Outcome> {
        let out = match c.opcode {
            admin::IDENTIFY => self.identify(st, c),
            admin::CREATE_CQ => create_cq(st, c),
            admin::CREATE_SQ => create_sq(st, c),
            admin::DELETE_SQ => {
                let qid = c.cdw[0] as u16;
                match st.sqs.remove(&qid) {
                    Some(_) if qid != 0 => ok(0),
                    Some(s) => {
                        st.sqs.insert(0, s);
                        err(status::INVALID_QID)
                    }
                    None => err(status::INVALID_QID),
                }
            }
            admin::DELETE_CQ => {
                let qid = c.cdw[0] as u16;
                if qid == 0 || !st.cqs.contains_key(&qid) {
                    err(status::INVALID_QID)
                } else if st.sqs.values().any(|s| s.cqid == qid) {
                    err(status::INVALID_QUEUE_DELETION)
                } else {
                    st.cqs.remove(&qid);
                    ok(0)
                }
            }
            admin::SET_FEATURES => {
                let out = set_features(st, c);
                self.check_temperature(st);
                out
            }
            admin::GET_FEATURES => get_features(st, c),
            admin::GET_LOG_PAGE => self.get_log_page(st, c),
            admin::ABORT => self.abort(st, c),
            admin::ASYNC_EVENT => {
                if st.aers.len() >= 4 {
                    err(status::AER_LIMIT)
                } else {
                    st.aers.push(c.cid);
                    self.deliver_events(st);
                    return None;
                }
            }
            admin::FORMAT_NVM => {
                if c.nsid != 1 && c.nsid != u32::MAX {
                    err(status::INVALID_NS)
                } else if c.cdw[0] & 0xF != 0 {
                    err(status::INVALID_FORMAT)
                } else {
                    st.storage.fill(0);
                    ok(0)
                }
            }
            _ => err(status::INVALID_OPCODE),
        };
        Some(out)
    }

    /// Abort: a lost command (fetched, never completed) completes with Command Abort
    /// Requested; anything else is not aborted (dword 0 bit 0 set), as the specification
    /// allows.
    fn abort(&self, st: &mut State, c: &Sqe) -> Outcome {
        let sqid = c.cdw[0] as u16;
        let cid = (c.cdw[0] >> 16) as u16;
        let Some(sq) = st.sqs.get(&sqid).cloned() else {
            return err(status::INVALID_FIELD);
        };
        let at = st.lost.iter().position(|l| l.sqid == sqid && l.cid == cid);
        let (true, Some(at)) = (st.abort_works, at) else {
            return ok(1);
        };
        if st.abort_lies {
            return ok(0);
        }
        st.lost.remove(at);
        let cqe = nvme_regs::Cqe {
            result: 0,
            sqhd: sq.head,
            sqid,
            cid,
            phase: false,
            status: status::ABORT_REQ,
            dnr: false,
        };
        if self.post(st, sq.cqid, cqe) {
            st.counters.aborted += 1;
        }
        ok(0)
    }

    fn identify(&self, st: &State, c: &Sqe) -> Outcome {
        let mut d = vec![0u8; PAGE];
        match c.cdw[0] as u8 {
            cns::CONTROLLER => {
                d[0..2].copy_from_slice(&0x1B36u16.to_le_bytes());
                d[2..4].copy_from_slice(&0x1AF4u16.to_le_bytes());
                ascii(&mut d[4..24], &st.cfg.serial);
                ascii(&mut d[24..64], &st.cfg.model);
                ascii(&mut d[64..72], &st.cfg.firmware);
                d[77] = st.cfg.mdts;
                d[78..80].copy_from_slice(&1u16.to_le_bytes());
                d[80..84].copy_from_slice(&0x0001_0400u32.to_le_bytes());
                d[256..258].copy_from_slice(&0x0002u16.to_le_bytes()); // OACS: format
                d[258] = 3; // ACL (0-based)
                d[259] = 3; // AERL (0-based)
                d[261] = 0x04; // LPA: extended data (log page offsets)
                d[262] = (ERROR_ENTRIES - 1) as u8; // ELPE (0-based)
                d[512] = 0x66; // SQES
                d[513] = 0x44; // CQES
                d[516..520].copy_from_slice(&1u32.to_le_bytes()); // NN
                d[520..522].copy_from_slice(&0x000Cu16.to_le_bytes()); // ONCS: DSM, write zeroes
                d[525] = 1; // VWC present
            }
            cns::NAMESPACE => {
                if c.nsid != 1 {
                    return err(status::INVALID_NS);
                }
                let n = st.cfg.blocks;
                for i in 0..3 {
                    d[8 * i..8 * i + 8].copy_from_slice(&n.to_le_bytes());
                }
                d[24] = 0x04; // NSFEAT: deallocated blocks read as zero
                d[25] = 0; // NLBAF: one format
                d[26] = 0; // FLBAS: format 0
                d[128 + 2] = st.lba_shift; // LBAF0: LBADS
            }
            cns::ACTIVE_NS_LIST => {
                if c.nsid < 1 {
                    d[0..4].copy_from_slice(&1u32.to_le_bytes());
                }
            }
            _ => return err(status::INVALID_FIELD),
        }
        match prp::write(&self.dma, c.prp1, c.prp2, &d) {
            Ok(()) => ok(0),
            Err(s) => err(s),
        }
    }

    fn get_log_page(&self, st: &mut State, c: &Sqe) -> Outcome {
        let numd = ((c.cdw[0] >> 16) | (c.cdw[1] & 0xFFFF) << 16) as usize + 1;
        let len = numd * 4;
        let offset = u64::from(c.cdw[2]) | u64::from(c.cdw[3]) << 32;
        let rae = c.cdw[0] & 1 << 15 != 0;
        if offset % 4 != 0 {
            return err(status::INVALID_FIELD);
        }
        let lid = c.cdw[0] as u8;
        let d = match lid {
            log::SMART => {
                let mut d = vec![0u8; log::SMART_LEN];
                let hot = st.temperature >= st.temp_over || st.temperature <= st.temp_under;
                d[0] = if hot { 0x02 } else { 0 }; // critical warning: temperature
                d[1..3].copy_from_slice(&st.temperature.to_le_bytes());
                d[3] = 100; // available spare
                d[4] = 10; // threshold
                d[32..40].copy_from_slice(&st.units_read.div_ceil(1000).to_le_bytes());
                d[48..56].copy_from_slice(&st.units_written.div_ceil(1000).to_le_bytes());
                d[64..72].copy_from_slice(&st.counters.reads.to_le_bytes());
                d[80..88].copy_from_slice(&st.counters.writes.to_le_bytes());
                d[112..120].copy_from_slice(&st.counters.enables.to_le_bytes());
                d[176..184].copy_from_slice(&st.error_count.to_le_bytes());
                d
            }
            log::ERROR => st.errors.iter().flatten().copied().collect::<Vec<u8>>(),
            _ => return err(status::INVALID_LOG_PAGE),
        };
        if !rae {
            // Reading the log clears the event type it reports (NVMe 1.4, 5.2).
            let ty = if lid == log::SMART {
                nvme_regs::aer::TYPE_SMART
            } else {
                nvme_regs::aer::TYPE_ERROR
            };
            st.event_mask &= !(1 << ty);
            st.events.retain(|e| e & 7 != u32::from(ty));
            self.deliver_events(st);
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(d.len());
        let mut d = d[start..].to_vec();
        d.resize(len, 0);
        match prp::write(&self.dma, c.prp1, c.prp2, &d) {
            Ok(()) => ok(0),
            Err(s) => err(s),
        }
    }

    pub(crate) fn io(&self, st: &mut State, c: &Sqe) -> Outcome {
        if c.nsid != 1 {
            return err(status::INVALID_NS);
        }
        let slba = u64::from(c.cdw[0]) | u64::from(c.cdw[1]) << 32;
        let nlb = u64::from(c.cdw[2] & 0xFFFF) + 1;
        let shift = st.lba_shift;
        let range = |st: &State, slba: u64, nlb: u64| -> Result<(usize, usize), u16> {
            match slba.checked_add(nlb) {
                Some(end) if end <= st.cfg.blocks => {
                    Ok(((slba << shift) as usize, (nlb << shift) as usize))
                }
                _ => Err(status::LBA_RANGE),
            }
        };
        match c.opcode {
            io::FLUSH => {
                st.counters.flushes += 1;
                ok(0)
            }
            io::READ | io::WRITE => {
                let (off, len) = match range(st, slba, nlb) {
                    Ok(r) => r,
                    Err(s) => return err(s),
                };
                let mdts = st.cfg.mdts;
                if mdts != 0 && len > PAGE << mdts {
                    return err(status::INVALID_FIELD);
                }
                let units = nlb << shift >> 9;
                if c.opcode == io::READ {
                    st.counters.reads += 1;
                    st.units_read += units;
                    let r = prp::write(&self.dma, c.prp1, c.prp2, &st.storage[off..off + len]);
                    r.map_or_else(err, |()| ok(0))
                } else {
                    st.counters.writes += 1;
                    st.units_written += units;
                    match prp::read(&self.dma, c.prp1, c.prp2, len) {
                        Ok(data) => {
                            st.storage[off..off + len].copy_from_slice(&data);
                            ok(0)
                        }
                        Err(s) => err(s),
                    }
                }
            }
            io::WRITE_ZEROES => match range(st, slba, nlb) {
                Ok((off, len)) => {
                    st.storage[off..off + len].fill(0);
                    ok(0)
                }
                Err(s) => err(s),
            },
            io::DSM => {
                let nr = (c.cdw[0] & 0xFF) as usize + 1;
                let ranges = match prp::read(&self.dma, c.prp1, c.prp2, nr * 16) {
                    Ok(r) => r,
                    Err(s) => return err(s),
                };
                if c.cdw[1] & 0x4 != 0 {
                    for r in ranges.chunks_exact(16) {
                        let nlb = u64::from(u32::from_le_bytes([r[4], r[5], r[6], r[7]]));
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&r[8..16]);
                        match range(st, u64::from_le_bytes(b), nlb) {
                            Ok((off, len)) => st.storage[off..off + len].fill(0),
                            Err(s) => return err(s),
                        }
                    }
                }
                ok(0)
            }
            _ => err(status::INVALID_OPCODE),
        }
    }
}

fn create_cq(st: &mut State, c: &Sqe) -> Outcome {
    let qid = c.cdw[0] as u16;
    let size = (c.cdw[0] >> 16) as u16;
    let granted = st.granted_queues.unwrap_or(0);
    if qid == 0 || qid > granted || st.cqs.contains_key(&qid) {
        return err(status::INVALID_QID);
    }
    if size == 0 || u32::from(size) > u32::from(st.cfg.mqes) {
        return err(status::INVALID_QSIZE);
    }
    if c.cdw[1] & 1 == 0 || c.prp1 == 0 || !c.prp1.is_multiple_of(PAGE as u64) {
        return err(status::INVALID_FIELD);
    }
    st.cqs.insert(
        qid,
        CompQ {
            base: c.prp1,
            size: size + 1,
            head: 0,
            tail: 0,
            phase: true,
            ien: c.cdw[1] & 2 != 0,
        },
    );
    ok(0)
}

fn create_sq(st: &mut State, c: &Sqe) -> Outcome {
    let qid = c.cdw[0] as u16;
    let size = (c.cdw[0] >> 16) as u16;
    let cqid = (c.cdw[1] >> 16) as u16;
    let granted = st.granted_queues.unwrap_or(0);
    if qid == 0 || qid > granted || st.sqs.contains_key(&qid) {
        return err(status::INVALID_QID);
    }
    if cqid == 0 || !st.cqs.contains_key(&cqid) {
        return err(status::INVALID_CQ);
    }
    if size == 0 || u32::from(size) > u32::from(st.cfg.mqes) {
        return err(status::INVALID_QSIZE);
    }
    if c.cdw[1] & 1 == 0 || c.prp1 == 0 || !c.prp1.is_multiple_of(PAGE as u64) {
        return err(status::INVALID_FIELD);
    }
    st.sqs.insert(
        qid,
        SubQ {
            base: c.prp1,
            size: size + 1,
            head: 0,
            tail: 0,
            cqid,
        },
    );
    ok(0)
}

fn set_features(st: &mut State, c: &Sqe) -> Outcome {
    let fid = c.cdw[0] as u8;
    let v = c.cdw[1];
    match fid {
        feat::NUM_QUEUES => {
            if st.granted_queues.is_some() && st.cqs.len() > 1 {
                return err(status::FEATURE_NOT_CHANGEABLE);
            }
            let max = st.cfg.max_io_queues;
            let nsq = ((v & 0xFFFF) as u16).saturating_add(1).min(max);
            let ncq = ((v >> 16) as u16).saturating_add(1).min(max);
            if v & 0xFFFF == 0xFFFF || v >> 16 == 0xFFFF {
                return err(status::INVALID_FIELD);
            }
            st.granted_queues = Some(nsq.min(ncq));
            ok(u32::from(ncq - 1) << 16 | u32::from(nsq - 1))
        }
        feat::TEMP_THRESH => {
            if (v >> 16) & 0xF != 0 {
                return ok(0); // a sensor the model does not have: ignored, like QEMU
            }
            match (v >> 20) & 3 {
                0 => st.temp_over = v as u16,
                1 => st.temp_under = v as u16,
                _ => return err(status::INVALID_FIELD),
            }
            ok(0)
        }
        f if feat::KNOWN.iter().any(|(k, _)| *k == f) => {
            st.features.insert(f, v);
            ok(0)
        }
        _ => err(status::INVALID_FIELD),
    }
}

fn get_features(st: &State, c: &Sqe) -> Outcome {
    let fid = c.cdw[0] as u8;
    match fid {
        feat::NUM_QUEUES => {
            let n = u32::from(st.granted_queues.unwrap_or(st.cfg.max_io_queues).max(1) - 1);
            ok(n << 16 | n)
        }
        feat::TEMP_THRESH => match (c.cdw[1] >> 20) & 3 {
            0 => ok(u32::from(st.temp_over)),
            1 => ok(u32::from(st.temp_under) | 1 << 20),
            _ => err(status::INVALID_FIELD),
        },
        f if feat::KNOWN.iter().any(|(k, _)| *k == f) => {
            ok(st.features.get(&f).copied().unwrap_or(0))
        }
        _ => err(status::INVALID_FIELD),
    }
}
