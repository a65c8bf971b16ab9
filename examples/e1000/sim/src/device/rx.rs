//! The receive engine (SDM 3.2): address filtering, the receive FIFO, descriptor write-back.

use super::*;

#[derive(Debug)]
pub(super) struct RxFrame {
    /// Bytes as stored in host memory (CRC included unless SECRC).
    data: Vec<u8>,
    status: u8,
    errors: u8,
    special: u16,
    csum: u16,
}

impl Device {
    // -----------------------------------------------------------------------------------
    // Receive (SDM 3.2)
    // -----------------------------------------------------------------------------------

    pub(super) fn rx_fifo_capacity(&self) -> usize {
        ((self.r(PBA) & pba::RXA_MASK) as usize) * 1024
    }

    /// Whether a frame of `len` bytes (without FCS) would be taken into the receive FIFO
    /// now (used by the lossless peer).
    pub(crate) fn can_accept(&self, len: usize) -> bool {
        if self.r(RCTL) & rctl::EN == 0 {
            // With the receiver off only armed wake-up logic takes frames (and drops them
            // after filtering).
            return self.wake_armed() && self.phy.link().is_some();
        }
        (self.mac_link || self.loopback())
            && self.rx_fifo_bytes + len + 8 <= self.rx_fifo_capacity()
    }

    pub(super) fn free_rx_descriptors(&self) -> u32 {
        let count = self.r(RDLEN) / DESC_LEN as u32;
        if count == 0 {
            return 0;
        }
        let (h, t) = (self.r(RDH), self.r(RDT));
        if h >= count || t >= count {
            return 0;
        }
        (t + count - h) % count
    }

    pub(super) fn address_match(&self, dst: &[u8; 6]) -> Option<bool> {
        let rctl_v = self.r(RCTL);
        // Exact matches in the receive address array (SDM 13.4).
        for n in 0..RA_LEN {
            let rah_v = self.r(RAH + 8 * n);
            if rah_v & rah::AV != 0
                && rah_v & rah::AS_MASK == 0
                && ra_to_mac(self.r(RAL + 8 * n), rah_v) == *dst
            {
                return Some(true);
            }
        }
        if *dst == net::BROADCAST {
            return (rctl_v & rctl::BAM != 0 || rctl_v & rctl::MPE != 0).then_some(true);
        }
        if net::is_multicast(dst) {
            if rctl_v & rctl::MPE != 0 {
                return Some(false);
            }
            let mo = (rctl_v & rctl::MO_MASK) >> rctl::MO_SHIFT;
            let h = u32::from(mta_hash(*dst, mo));
            let word = self.r(MTA + 4 * (h >> 5));
            return (word & (1 << (h & 31)) != 0).then_some(false);
        }
        (rctl_v & rctl::UPE != 0).then_some(false)
    }

    /// A frame arrives from the wire (or loops back).
    pub(crate) fn receive(&mut self, f: WireFrame, now: Instant) {
        self.wake_on_frame(&f);
        let rctl_v = self.r(RCTL);
        if rctl_v & rctl::EN == 0 || !(self.mac_link || self.loopback()) {
            return;
        }
        let wire_len = (f.data.len() + net::FCS_LEN) as u64;
        self.stats.inc(TPR);
        self.stats.add(TORL, wire_len);
        if f.fcs_ok && self.receive_pause(&f.data, now) {
            return;
        }
        let vet = (self.r(VET) & 0xFFFF) as u16;
        let tagged = net::ethertype(&f.data) == vet && f.data.len() >= 18;
        let dst = net::dst_mac(&f.data);
        let filtered = self.address_match(&dst);
        // Length limits (SDM 13.7.15 RLEC, 13.7.34-37 RUC/RFC/ROC/RJC): under 64 bytes is
        // undersized; over 1522 bytes is oversized unless RCTL.LPE (then over 16384).
        let max = if rctl_v & rctl::LPE != 0 { 16384 } else { 1522 };
        let short = wire_len < 64;
        let long = wire_len > max;
        if filtered.is_some() && (short || long) {
            self.stats.inc(RLEC);
            self.stats.inc(match (short, f.fcs_ok) {
                (true, true) => RUC,
                (true, false) => RFC,
                (false, true) => ROC,
                (false, false) => RJC,
            });
            return;
        }
        let mut errors = 0u8;
        if !f.fcs_ok {
            // SDM 13.7.1: CRC errors are counted for frames of legal length.
            if !short && !long {
                self.stats.inc(CRCERRS);
            }
            if rctl_v & rctl::SBP == 0 || short || long {
                return;
            }
            errors |= rxd_err::CE;
        }
        let Some(exact) = filtered else {
            return;
        };
        let mut special = 0u16;
        if tagged {
            let tci = u16::from_be_bytes([f.data[14], f.data[15]]);
            if rctl_v & rctl::VFE != 0 {
                // VLAN filter (SDM 13.4): the VID indexes a bit of VFTA; with CFIEN the
                // CFI bit must equal RCTL.CFI.
                let vid = u32::from(tci & 0x0FFF);
                if self.r(VFTA + 4 * (vid >> 5)) & (1 << (vid & 31)) == 0 {
                    return;
                }
                if rctl_v & rctl::CFIEN != 0 && (tci & 0x1000 != 0) != (rctl_v & rctl::CFI != 0) {
                    return;
                }
            }
            special = tci;
        }
        let store_crc = rctl_v & rctl::SECRC == 0;
        let crc = match (store_crc, f.fcs_ok) {
            (false, _) => 0,
            (true, true) => net::crc32(&f.data),
            (true, false) => !net::crc32(&f.data),
        };
        let mut data = f.data;
        let mut status = 0u8;
        if tagged && self.r(CTRL) & ctrl::VME != 0 {
            data.drain(12..16);
            status |= rxd_stat::VP;
        } else {
            special = 0;
        }
        let (cs_status, cs_errors) = self.rx_checksum(&data);
        status |= cs_status;
        errors |= cs_errors;
        if !exact {
            status |= rxd_stat::PIF;
        }
        if store_crc {
            data.extend_from_slice(&crc.to_le_bytes());
        }
        // The packet checksum (SDM ch. 3, receive checksum offloading): the unadjusted one's complement sum from PCSS,
        // after VLAN stripping, including the CRC unless it is stripped.
        let pcss = (self.r(RXCSUM) & rxcsum::PCSS_MASK) as usize;
        let csum = if pcss < data.len() {
            net::csum_fold(net::csum_add(0, &data[pcss..]))
        } else {
            0
        };
        if self.free_rx_descriptors() == 0 {
            // SDM 13.7.33: no host buffer free when the frame arrived; it is still
            // received if the FIFO has room.
            self.stats.inc(RNBC);
        }
        if self.rx_fifo_bytes + data.len() > self.rx_fifo_capacity() {
            // The packet buffer is full: the frame is missed (SDM 13.7.5).
            self.stats.inc(MPC);
            self.cause(icr::RXO, now);
            return;
        }
        if f.fcs_ok {
            self.stats.inc(GPRC);
            self.stats.add(GORCL, wire_len);
            self.stats.inc(match wire_len {
                64 => PRC64,
                65..=127 => PRC127,
                128..=255 => PRC255,
                256..=511 => PRC511,
                512..=1023 => PRC1023,
                _ => PRC1522,
            });
            if dst == net::BROADCAST {
                self.stats.inc(BPRC);
            } else if net::is_multicast(&dst) {
                self.stats.inc(MPRC);
            }
        }
        self.rx_fifo_bytes += data.len();
        self.rx_fifo.push_back(RxFrame {
            data,
            status,
            errors,
            special,
            csum,
        });
        self.flow_control(now);
    }

    /// Receive checksum offload (SDM ch. 3 receive checksum offloading and 13.4 RXCSUM).
    pub(super) fn rx_checksum(&self, d: &[u8]) -> (u8, u8) {
        let cfg = self.r(RXCSUM);
        let (mut st, mut er) = (0u8, 0u8);
        let et = net::ethertype(d);
        let l3 = &d[net::ETH_HLEN.min(d.len())..];
        let (proto, l4, pseudo) = match et {
            net::ETHERTYPE_IPV4 if l3.len() >= 20 && l3[0] >> 4 == 4 => {
                let ihl = usize::from(l3[0] & 0xF) * 4;
                let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
                if ihl < 20 || ihl > l3.len() || total < ihl || total > l3.len() {
                    return (rxd_stat::IXSM, 0);
                }
                if cfg & rxcsum::IPOFLD != 0 {
                    st |= rxd_stat::IPCS;
                    if net::inet_csum(&l3[..ihl]) != 0 {
                        er |= rxd_err::IPE;
                    }
                }
                let frag = u16::from_be_bytes([l3[6], l3[7]]) & 0x3FFF != 0;
                if frag {
                    return (st, er);
                }
                let l4 = &l3[ihl..total];
                let mut p = net::csum_add(0, &l3[12..20]);
                p += u32::from(l3[9]) + l4.len() as u32;
                (l3[9], l4, p)
            }
            net::ETHERTYPE_IPV6 if l3.len() >= 40 && l3[0] >> 4 == 6 => {
                let plen = usize::from(u16::from_be_bytes([l3[4], l3[5]]));
                if 40 + plen > l3.len() {
                    return (rxd_stat::IXSM, 0);
                }
                let l4 = &l3[40..40 + plen];
                let mut p = net::csum_add(0, &l3[8..40]);
                p += u32::from(l3[6]) + plen as u32;
                (l3[6], l4, p)
            }
            _ => return (rxd_stat::IXSM, 0),
        };
        if cfg & rxcsum::TUOFLD != 0 && (proto == 6 || proto == 17) {
            let min = if proto == 6 { 20 } else { 8 };
            if l4.len() >= min {
                st |= rxd_stat::TCPCS;
                let zero_udp = proto == 17 && l4[6] == 0 && l4[7] == 0;
                if !zero_udp && net::csum_fold(net::csum_add(pseudo, l4)) != 0xFFFF {
                    er |= rxd_err::TCPE;
                }
            }
        }
        if st == 0 {
            st |= rxd_stat::IXSM;
        }
        (st, er)
    }

    /// Moves frames from the receive FIFO into host buffers, up to `budget` descriptors.
    /// Returns the number of descriptors used.
    pub(crate) fn process_rx(&mut self, now: Instant, budget: usize) -> usize {
        if self.rx_fifo.is_empty()
            || self.rx_stalled
            || self.r(RCTL) & rctl::EN == 0
            || !self.pci.bus_master()
        {
            return 0;
        }
        if self.r(RDH) == self.r(RDT) && self.r(RDH) < self.r(RDLEN) / 16 {
            return 0;
        }
        let Some(bufsize) = rctl::buffer_size(self.r(RCTL)) else {
            self.faults.push(Fault::ReservedBufferSize);
            self.rx_stalled = true;
            return 0;
        };
        let Some((base, count, mut head, tail)) = self.ring(Ring::Rx) else {
            return 0;
        };
        let thresh = count >> (((self.r(RCTL) & rctl::RDMTS_MASK) >> rctl::RDMTS_SHIFT) + 1);
        let mut n = 0;
        let mut frames = 0;
        while n < budget && head != tail {
            let Some(frame) = self.rx_fifo.front() else {
                break;
            };
            let addr = base.wrapping_add(u64::from(head) * DESC_LEN as u64);
            let mut b = [0u8; 8];
            if self.dma.bus_read(addr, &mut b).is_err() {
                self.faults.push(Fault::BusError {
                    source: DmaSource::RxDescriptor,
                    addr,
                    len: DESC_LEN,
                });
                self.rx_stalled = true;
                break;
            }
            let buf = u64::from_le_bytes(b);
            let start = self.rx_partial;
            let end = (start + bufsize).min(frame.data.len());
            let last = end == frame.data.len();
            let mut wb = RxDesc {
                addr: buf,
                length: (end - start) as u16,
                ..RxDesc::default()
            };
            let mut errors = 0;
            if self.dma.bus_write(buf, &frame.data[start..end]).is_err() {
                self.faults.push(Fault::BusError {
                    source: DmaSource::RxBuffer,
                    addr: buf,
                    len: end - start,
                });
                errors |= rxd_err::RXE;
            }
            wb.status = rxd_stat::DD;
            if start == 0 {
                // The packet checksum is reported in the first descriptor (SDM 3.2.3).
                wb.csum = frame.csum;
            }
            if last {
                wb.status |= rxd_stat::EOP | frame.status;
                wb.errors = frame.errors | errors;
                wb.special = frame.special;
            } else {
                wb.errors = errors;
            }
            let bytes = zerocopy::IntoBytes::as_bytes(&wb);
            if self.dma.bus_write(addr + 8, &bytes[8..]).is_err() {
                self.faults.push(Fault::BusError {
                    source: DmaSource::RxWriteBack,
                    addr: addr + 8,
                    len: 8,
                });
            }
            head = (head + 1) % count;
            n += 1;
            if last {
                let len = frame.data.len();
                self.rx_fifo.pop_front();
                self.rx_fifo_bytes -= len;
                self.rx_partial = 0;
                frames += 1;
            } else {
                self.rx_partial = end;
            }
            if (tail + count - head) % count == thresh {
                self.icr |= icr::RXDMT0;
            }
        }
        self.set(RDH, head);
        if frames > 0 {
            self.flow_control(now);
            let rdtr = self.r(RDTR) & 0xFFFF;
            if rdtr == 0 {
                self.icr |= icr::RXT0;
            } else {
                self.rdtr_at = Some(now + delay(rdtr));
                let radv = self.r(RADV) & 0xFFFF;
                if radv != 0 && self.radv_at.is_none() {
                    self.radv_at = Some(now + delay(radv));
                }
            }
        }
        self.update_irq(now);
        n
    }

    /// Whether the receive engine could make progress right now.
    pub(crate) fn rx_ready(&self) -> bool {
        self.pci.bus_master()
            && !self.rx_fifo.is_empty()
            && !self.rx_stalled
            && self.free_rx_descriptors() > 0
    }

    /// Whether the receive FIFO holds more than half its capacity.
    pub(crate) fn rx_fifo_half_full(&self) -> bool {
        self.rx_fifo_bytes * 2 > self.rx_fifo_capacity()
    }

    /// Frames waiting in the receive FIFO.
    pub(crate) fn rx_fifo_len(&self) -> usize {
        self.rx_fifo.len()
    }
}
