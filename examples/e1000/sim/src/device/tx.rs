//! The transmit DMA engine (SDM 3.3): descriptors, contexts, checksum offload, TSO.

use super::*;

/// Largest packet the transmit engine gathers (TSO payloads are limited to 256 KiB).
const MAX_TX_PACKET: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxKind {
    Legacy,
    Data,
}

#[derive(Debug, Default, Clone, Copy)]
struct TxContext {
    ipcss: usize,
    ipcso: usize,
    ipcse: usize,
    tucss: usize,
    tucso: usize,
    tucse: usize,
    tucmd: u32,
    paylen: usize,
    hdr_len: usize,
    mss: usize,
}

#[derive(Debug, Default)]
pub(super) struct TxState {
    ctx: TxContext,
    pkt: Vec<u8>,
    /// Kind and options of the packet being gathered, from its first descriptor.
    kind: Option<TxKind>,
    popts: u32,
    tse: bool,
    /// Legacy CSO/CSS, taken from the packet's first descriptor.
    legacy_cso_css: (u8, u8),
    /// TSO: DCMD and VLAN field of the first data descriptor (SDM 3.3.7.1: with TSE, VLE,
    /// IFCS and the VLAN field are valid only there).
    tso_cmd_special: (u8, u16),
    bad: bool,
    pub(super) stalled: bool,
}

impl Device {
    // -----------------------------------------------------------------------------------
    // Transmit (SDM 3.3)
    // -----------------------------------------------------------------------------------

    /// Processes up to `budget` transmit descriptors; frames to send go to `out`.
    /// Returns the number of descriptors processed.
    pub(crate) fn process_tx(
        &mut self,
        now: Instant,
        budget: usize,
        out: &mut Vec<WireFrame>,
    ) -> usize {
        if !self.tx_ready() {
            return 0;
        }
        let Some((base, count, mut head, tail)) = self.ring(Ring::Tx) else {
            return 0;
        };
        let mut n = 0;
        while head != tail && n < budget {
            let addr = base.wrapping_add(u64::from(head) * DESC_LEN as u64);
            let mut d = [0u8; DESC_LEN];
            if self.dma.bus_read(addr, &mut d).is_err() {
                self.faults.push(Fault::BusError {
                    source: DmaSource::TxDescriptor,
                    addr,
                    len: DESC_LEN,
                });
                self.tx.stalled = true;
                break;
            }
            let (rs, ide) = self.tx_descriptor(&d, head, now, out);
            if rs {
                if self.dma.bus_write(addr + 12, &[txd_stat::DD]).is_err() {
                    self.faults.push(Fault::BusError {
                        source: DmaSource::TxWriteBack,
                        addr: addr + 12,
                        len: 1,
                    });
                }
                let tidv = self.r(TIDV) & 0xFFFF;
                if ide && tidv != 0 {
                    self.tidv_at = Some(now + delay(tidv));
                    let tadv = self.r(TADV) & 0xFFFF;
                    if tadv != 0 && self.tadv_at.is_none() {
                        self.tadv_at = Some(now + delay(tadv));
                    }
                } else {
                    self.icr |= icr::TXDW;
                }
            }
            head = (head + 1) % count;
            n += 1;
        }
        self.set(TDH, head);
        if head == tail && n > 0 {
            self.icr |= icr::TXQE;
        }
        self.update_irq(now);
        n
    }

    /// Handles one transmit descriptor; returns (RS, IDE).
    pub(super) fn tx_descriptor(
        &mut self,
        d: &[u8; 16],
        index: u32,
        now: Instant,
        out: &mut Vec<WireFrame>,
    ) -> (bool, bool) {
        let addr = u64::from_le_bytes(d[0..8].try_into().unwrap_or_default());
        let dw2 = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
        let cmd = d[11];
        let rs = cmd & txd_cmd::RS != 0;
        let ide = cmd & txd_cmd::IDE != 0;
        if cmd & txd_cmd::DEXT == 0 {
            // Legacy descriptor (SDM 3.3.3).
            let length = usize::from(u16::from_le_bytes([d[8], d[9]]));
            if self.tx.kind == Some(TxKind::Data) {
                self.tx_reset_packet();
            }
            if self.tx.kind.is_none() {
                // CSS (and CSO) are taken from the first descriptor of the packet.
                self.tx.kind = Some(TxKind::Legacy);
                self.tx.legacy_cso_css = (d[10], d[13]);
            }
            self.gather(addr, length);
            if cmd & txd_cmd::EOP != 0 {
                let mut pkt = std::mem::take(&mut self.tx.pkt);
                if !self.tx.bad {
                    // VLE, IFCS and IC are interpreted only with EOP (SDM 3.3.3.1).
                    if cmd & txd_cmd::IC != 0 {
                        let (cso, css) = self.tx.legacy_cso_css;
                        self.insert_csum(&mut pkt, usize::from(css), 0, usize::from(cso));
                    }
                    let special = u16::from_le_bytes([d[14], d[15]]);
                    self.transmit(pkt, cmd, special, now, out);
                }
                self.tx_reset_packet();
            }
            return (rs, ide);
        }
        let dtyp = (dw2 & dtyp::MASK) >> dtyp::SHIFT;
        match dtyp {
            dtyp::CONTEXT => {
                // Context descriptor (SDM 3.3.6).
                self.tx.ctx = TxContext {
                    ipcss: usize::from(d[0]),
                    ipcso: usize::from(d[1]),
                    ipcse: usize::from(u16::from_le_bytes([d[2], d[3]])),
                    tucss: usize::from(d[4]),
                    tucso: usize::from(d[5]),
                    tucse: usize::from(u16::from_le_bytes([d[6], d[7]])),
                    tucmd: dw2 & 0xFF00_0000,
                    paylen: (dw2 & tucmd::PAYLEN_MASK) as usize,
                    hdr_len: usize::from(d[13]),
                    mss: usize::from(u16::from_le_bytes([d[14], d[15]])),
                };
                (rs, ide)
            }
            dtyp::DATA => {
                // Data descriptor (SDM 3.3.7).
                let length = (dw2 & 0x000F_FFFF) as usize;
                let upper = u32::from_le_bytes([d[12], d[13], d[14], d[15]]);
                if self.tx.kind != Some(TxKind::Data) {
                    if self.tx.kind.is_some() {
                        self.tx_reset_packet();
                    }
                    self.tx.kind = Some(TxKind::Data);
                    self.tx.popts = upper & (popts::IXSM | popts::TXSM);
                    self.tx.tse = cmd & txd_cmd::TSE != 0;
                    self.tx.tso_cmd_special = (cmd, (upper >> 16) as u16);
                }
                self.gather(addr, length);
                if cmd & txd_cmd::EOP != 0 {
                    let pkt = std::mem::take(&mut self.tx.pkt);
                    if !self.tx.bad {
                        let special = (upper >> 16) as u16;
                        if self.tx.tse {
                            let (cmd, special) = self.tx.tso_cmd_special;
                            self.tso(pkt, cmd, special, now, out);
                        } else {
                            let mut pkt = pkt;
                            let c = self.tx.ctx;
                            if self.tx.popts & popts::IXSM != 0 {
                                self.insert_csum(&mut pkt, c.ipcss, c.ipcse, c.ipcso);
                            }
                            if self.tx.popts & popts::TXSM != 0 {
                                self.insert_csum(&mut pkt, c.tucss, c.tucse, c.tucso);
                            }
                            self.transmit(pkt, cmd, special, now, out);
                        }
                    }
                    self.tx_reset_packet();
                }
                (rs, ide)
            }
            _ => {
                self.faults
                    .push(Fault::InvalidDescriptorType { index, dtyp });
                (rs, ide)
            }
        }
    }

    pub(super) fn tx_reset_packet(&mut self) {
        self.tx.pkt.clear();
        self.tx.kind = None;
        self.tx.popts = 0;
        self.tx.tse = false;
        self.tx.legacy_cso_css = (0, 0);
        self.tx.tso_cmd_special = (0, 0);
        self.tx.bad = false;
    }

    pub(super) fn gather(&mut self, addr: u64, len: usize) {
        // Descriptors with a null address or zero length transfer no data (SDM 3.3.3).
        if self.tx.bad || addr == 0 || len == 0 {
            return;
        }
        if self.tx.pkt.len() + len > MAX_TX_PACKET {
            self.faults.push(Fault::TxPacketTooLong {
                len: self.tx.pkt.len() + len,
            });
            self.tx.bad = true;
            return;
        }
        if self
            .dma
            .bus_read_append(addr, len, &mut self.tx.pkt)
            .is_err()
        {
            self.faults.push(Fault::BusError {
                source: DmaSource::TxBuffer,
                addr,
                len,
            });
            self.tx.bad = true;
        }
    }

    /// Sums `pkt[start..=end]` (`end == 0`: to the end of the packet) and stores the
    /// complemented sum at `offset`, big-endian (SDM 3.3.5 "Checksum Offloading").
    pub(super) fn insert_csum(&mut self, pkt: &mut [u8], start: usize, end: usize, offset: usize) {
        let stop = if end == 0 {
            pkt.len()
        } else {
            (end + 1).min(pkt.len())
        };
        if start >= stop || offset + 2 > pkt.len() {
            self.faults.push(Fault::ChecksumOffsetOutOfRange {
                start,
                offset,
                len: pkt.len(),
            });
            return;
        }
        let c = !net::csum_fold(net::csum_add(0, &pkt[start..stop]));
        pkt[offset..offset + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// TCP/UDP segmentation (SDM ch. 3 "TCP Segmentation").
    pub(super) fn tso(
        &mut self,
        pkt: Vec<u8>,
        cmd: u8,
        special: u16,
        now: Instant,
        out: &mut Vec<WireFrame>,
    ) {
        let c = self.tx.ctx;
        let ipv4 = c.tucmd & tucmd::IP != 0;
        let tcp = c.tucmd & tucmd::TCP != 0;
        let reason = if c.tucmd & tucmd::TSE == 0 {
            Some("context descriptor without TSE")
        } else if c.mss == 0 {
            Some("MSS is zero")
        } else if c.hdr_len == 0 || c.hdr_len > pkt.len() {
            Some("header length outside the packet")
        } else if c.tucss + if tcp { 18 } else { 8 } > c.hdr_len
            || c.ipcss + if ipv4 { 20 } else { 40 } > c.hdr_len
        {
            Some("header offsets outside the header")
        } else {
            None
        };
        if let Some(reason) = reason {
            self.faults.push(Fault::TsoInvalid { reason });
            self.stats.inc(TSCTFC);
            return;
        }
        let (hdr, payload) = pkt.split_at(c.hdr_len);
        // SDM 3.3.7.1: when the data does not add up to PAYLEN the context terminates
        // abnormally (counted in TSCTFC); the model still sends the data it has.
        let paylen_ok = payload.len() == c.paylen;
        if !paylen_ok {
            self.faults.push(Fault::TsoInvalid {
                reason: "PAYLEN differs from the data descriptors' payload",
            });
        }
        let ip_id = u16::from_be_bytes([hdr[c.ipcss + 4], hdr[c.ipcss + 5]]);
        let seq0 = u32::from_be_bytes(hdr[c.tucss + 4..c.tucss + 8].try_into().unwrap_or_default());
        let seed = u16::from_be_bytes([
            hdr[c.tucso.min(hdr.len() - 2)],
            hdr[(c.tucso + 1).min(hdr.len() - 1)],
        ]);
        let nseg = payload.len().div_ceil(c.mss).max(1);
        for i in 0..nseg {
            let chunk =
                &payload[(i * c.mss).min(payload.len())..((i + 1) * c.mss).min(payload.len())];
            let last = i + 1 == nseg;
            let mut seg = Vec::with_capacity(hdr.len() + chunk.len());
            seg.extend_from_slice(hdr);
            seg.extend_from_slice(chunk);
            let len = seg.len();
            if ipv4 {
                let total = (len - c.ipcss) as u16;
                seg[c.ipcss + 2..c.ipcss + 4].copy_from_slice(&total.to_be_bytes());
                let id = ip_id.wrapping_add(i as u16);
                seg[c.ipcss + 4..c.ipcss + 6].copy_from_slice(&id.to_be_bytes());
            } else {
                let plen = (len - c.ipcss - 40) as u16;
                seg[c.ipcss + 4..c.ipcss + 6].copy_from_slice(&plen.to_be_bytes());
            }
            let l4_len = len - c.tucss;
            if tcp {
                let seq = seq0.wrapping_add((i * c.mss) as u32);
                seg[c.tucss + 4..c.tucss + 8].copy_from_slice(&seq.to_be_bytes());
                if !last {
                    seg[c.tucss + 13] &= !0x09; // FIN and PSH only on the last segment
                }
            } else {
                seg[c.tucss + 4..c.tucss + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            }
            if ipv4 && self.tx.popts & popts::IXSM != 0 && c.ipcso + 2 <= len {
                seg[c.ipcso..c.ipcso + 2].fill(0);
                let end = if c.ipcse == 0 {
                    c.tucss.saturating_sub(1)
                } else {
                    c.ipcse
                };
                self.insert_csum(&mut seg, c.ipcss, end, c.ipcso);
            }
            if self.tx.popts & popts::TXSM != 0 && c.tucso + 2 <= len {
                // The driver seeds the pseudo-header sum without the length; the hardware
                // adds each segment's TCP/UDP length.
                seg[c.tucso..c.tucso + 2].fill(0);
                let sum = net::csum_add(u32::from(seed) + l4_len as u32, &seg[c.tucss..]);
                let v = !net::csum_fold(sum);
                seg[c.tucso..c.tucso + 2].copy_from_slice(&v.to_be_bytes());
            }
            self.transmit(seg, cmd, special, now, out);
        }
        self.stats.inc(if paylen_ok { TSCTC } else { TSCTFC });
    }

    /// Puts a finished frame on the wire: VLAN insertion, padding, FCS, statistics.
    pub(super) fn transmit(
        &mut self,
        mut f: Vec<u8>,
        cmd: u8,
        special: u16,
        _now: Instant,
        out: &mut Vec<WireFrame>,
    ) {
        if cmd & txd_cmd::VLE != 0 && self.r(CTRL) & ctrl::VME != 0 && f.len() >= 12 {
            let vet = (self.r(VET) & 0xFFFF) as u16;
            let mut tag = [0u8; 4];
            tag[..2].copy_from_slice(&vet.to_be_bytes());
            tag[2..].copy_from_slice(&special.to_be_bytes());
            f.splice(12..12, tag);
        }
        let fcs_ok = if cmd & txd_cmd::IFCS != 0 {
            if self.r(TCTL) & tctl::PSP != 0 && f.len() < net::ETH_ZLEN {
                f.resize(net::ETH_ZLEN, 0);
            }
            true
        } else if f.len() >= net::FCS_LEN {
            // Software supplied the FCS as the last four bytes.
            let n = f.len() - net::FCS_LEN;
            let given = u32::from_le_bytes([f[n], f[n + 1], f[n + 2], f[n + 3]]);
            f.truncate(n);
            net::crc32(&f) == given
        } else {
            false
        };
        let wire_len = (f.len() + net::FCS_LEN) as u64;
        self.stats.inc(TPT);
        self.stats.add(TOTL, wire_len);
        if wire_len >= 64 {
            self.stats.inc(GPTC);
            self.stats.add(GOTCL, wire_len);
            self.stats.inc(match wire_len {
                64 => PTC64,
                65..=127 => PTC127,
                128..=255 => PTC255,
                256..=511 => PTC511,
                512..=1023 => PTC1023,
                _ => PTC1522,
            });
            let dst = net::dst_mac(&f);
            if dst == net::BROADCAST {
                self.stats.inc(BPTC);
            } else if net::is_multicast(&dst) {
                self.stats.inc(MPTC);
            }
        }
        out.push(WireFrame { data: f, fcs_ok });
    }

    /// Whether the transmit engine could make progress right now.
    ///
    /// Without link the transmitter does not fetch descriptors (the MAC has nowhere to send
    /// them); queued work resumes when the link comes back.
    pub(crate) fn tx_ready(&self) -> bool {
        self.pci.bus_master()
            && self.r(TCTL) & tctl::EN != 0
            && !self.tx.stalled
            && self.tx_paused_until.is_none()
            && self.r(TDH) != self.r(TDT)
            && (self.mac_link || self.loopback())
    }
}
