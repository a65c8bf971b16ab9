//! A minimal polling driver for the model, used by the integration tests and the bench.
//! It does what the 8254x SDM chapter 14 ("General Initialization and Reset Operation")
//! asks of software, with no interrupts and no runtime.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use e1000_sim::regs::{self, *};
use e1000_sim::{DmaAllocator, DmaRegion, E1000Sim, Mmio, SimConfig, SimDmaRegion};

pub const BUF: usize = 2048;

pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

pub fn fast_config() -> SimConfig {
    SimConfig {
        autoneg_time: Duration::from_millis(2),
        ..SimConfig::default()
    }
}

pub struct Drv {
    pub sim: E1000Sim,
    pub ntx: u32,
    pub nrx: u32,
    pub tx_ring: SimDmaRegion,
    pub rx_ring: SimDmaRegion,
    pub tx_bufs: SimDmaRegion,
    pub rx_bufs: SimDmaRegion,
    pub tx_tail: u32,
    pub tx_clean: u32,
    pub rx_next: u32,
    pub rx_bufsize: usize,
}

impl Drv {
    pub fn new(cfg: SimConfig) -> Self {
        Self::with_rings(cfg, 256, 256, BUF)
    }

    pub fn with_rings(cfg: SimConfig, ntx: u32, nrx: u32, rx_bufsize: usize) -> Self {
        let sim = E1000Sim::new(cfg).unwrap();
        let dma = sim.dma().clone();
        let tx_ring = dma.alloc(ntx as usize * 16).unwrap();
        let rx_ring = dma.alloc(nrx as usize * 16).unwrap();
        let tx_bufs = dma.alloc(ntx as usize * BUF).unwrap();
        let rx_bufs = dma.alloc(nrx as usize * rx_bufsize).unwrap();
        Self {
            sim,
            ntx,
            nrx,
            tx_ring,
            rx_ring,
            tx_bufs,
            rx_bufs,
            tx_tail: 0,
            tx_clean: 0,
            rx_next: 0,
            rx_bufsize,
        }
    }

    pub fn r(&self, off: u32) -> u32 {
        self.sim.read32(off)
    }

    pub fn w(&self, off: u32, v: u32) {
        self.sim.write32(off, v)
    }

    /// Reads a PHY register through MDIC, polling MDIC.R (SDM 13.4 MDIC).
    pub fn phy_read(&self, reg: u32) -> Result<u16, u32> {
        self.w(
            MDIC,
            mdic::OP_READ | (1 << mdic::PHY_SHIFT) | (reg << mdic::REG_SHIFT),
        );
        self.mdic_wait()
    }

    pub fn phy_write(&self, reg: u32, v: u16) -> Result<u16, u32> {
        self.w(
            MDIC,
            mdic::OP_WRITE | (1 << mdic::PHY_SHIFT) | (reg << mdic::REG_SHIFT) | u32::from(v),
        );
        self.mdic_wait()
    }

    pub fn mdic_wait(&self) -> Result<u16, u32> {
        let mut v = 0;
        assert!(wait_for(Duration::from_secs(2), || {
            v = self.r(MDIC);
            v & mdic::READY != 0
        }));
        if v & mdic::ERROR != 0 {
            Err(v)
        } else {
            Ok(v as u16)
        }
    }

    /// Reads an EEPROM word through EERD (SDM 13.4 EERD).
    pub fn eerd(&self, addr: u32) -> u16 {
        self.w(EERD, eerd::START | (addr << eerd::ADDR_SHIFT));
        let mut v = 0;
        assert!(wait_for(Duration::from_secs(2), || {
            v = self.r(EERD);
            v & eerd::DONE != 0
        }));
        (v >> eerd::DATA_SHIFT) as u16
    }

    /// Reset, link up, rings, receiver and transmitter on. `rctl_extra` is ORed into RCTL.
    pub fn init(&mut self, rctl_extra: u32) {
        self.w(IMC, !0);
        self.w(CTRL, self.r(CTRL) | ctrl::RST);
        assert_eq!(self.r(CTRL) & ctrl::RST, 0);
        self.w(IMC, !0);
        self.r(ICR);
        self.w(
            CTRL,
            (self.r(CTRL) | ctrl::SLU | ctrl::ASDE) & !(ctrl::LRST | ctrl::PHY_RST),
        );
        for i in 0..MTA_LEN {
            self.w(MTA + 4 * i, 0);
        }
        self.setup_rings(rctl_extra);
    }

    pub fn setup_rings(&mut self, rctl_extra: u32) {
        let rb = self.rx_ring.bus_addr();
        self.w(RDBAL, rb as u32);
        self.w(RDBAH, (rb >> 32) as u32);
        self.w(RDLEN, self.nrx * 16);
        self.w(RDH, 0);
        for i in 0..self.nrx {
            self.give_rx(i);
        }
        self.rx_next = 0;
        self.w(RDT, self.nrx - 1);
        let tb = self.tx_ring.bus_addr();
        self.w(TDBAL, tb as u32);
        self.w(TDBAH, (tb >> 32) as u32);
        self.w(TDLEN, self.ntx * 16);
        self.w(TDH, 0);
        self.w(TDT, 0);
        self.tx_tail = 0;
        self.tx_clean = 0;
        let bsize = match self.rx_bufsize {
            2048 => 0,
            1024 => 1 << 16,
            512 => 2 << 16,
            256 => 3 << 16,
            16384 => rctl::BSEX | 1 << 16,
            8192 => rctl::BSEX | 2 << 16,
            4096 => rctl::BSEX | 3 << 16,
            _ => panic!("bad buffer size"),
        };
        self.w(
            RCTL,
            rctl::EN | rctl::BAM | rctl::SECRC | bsize | rctl_extra,
        );
        self.w(
            TCTL,
            tctl::EN | tctl::PSP | (0x0F << tctl::CT_SHIFT) | (0x40 << tctl::COLD_SHIFT),
        );
        self.w(TIPG, 0x0060_200A);
    }

    pub fn give_rx(&self, i: u32) {
        let addr = self.rx_bufs.bus_addr() + u64::from(i) * self.rx_bufsize as u64;
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        self.rx_ring.write(i as usize * 16, &d).unwrap();
    }

    pub fn wait_link(&self) {
        assert!(
            wait_for(Duration::from_secs(5), || self.r(STATUS) & status::LU != 0),
            "link did not come up"
        );
    }

    pub fn tx_free(&self) -> u32 {
        self.ntx - 1 - (self.tx_tail + self.ntx - self.tx_clean) % self.ntx
    }

    /// Queues a raw 16-byte descriptor (not yet visible: call `flush_tx`).
    pub fn push_desc(&mut self, d: [u8; 16]) {
        assert!(self.tx_free() > 0);
        self.tx_ring.write(self.tx_tail as usize * 16, &d).unwrap();
        self.tx_tail = (self.tx_tail + 1) % self.ntx;
    }

    /// Copies `data` to the buffer of the next descriptor slot and returns its bus address.
    pub fn stage(&self, data: &[u8]) -> u64 {
        let off = self.tx_tail as usize * BUF;
        self.tx_bufs.write(off, data).unwrap();
        self.tx_bufs.bus_addr() + off as u64
    }

    pub fn legacy(addr: u64, len: usize, cmd: u8, cso: u8, css: u8, special: u16) -> [u8; 16] {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        d[8..10].copy_from_slice(&(len as u16).to_le_bytes());
        d[10] = cso;
        d[11] = cmd;
        d[13] = css;
        d[14..16].copy_from_slice(&special.to_le_bytes());
        d
    }

    /// Queues one frame as a single legacy descriptor.
    pub fn queue(&mut self, frame: &[u8]) {
        let a = self.stage(frame);
        self.push_desc(Self::legacy(
            a,
            frame.len(),
            txd_cmd::EOP | txd_cmd::IFCS | txd_cmd::RS,
            0,
            0,
            0,
        ));
    }

    pub fn flush_tx(&self) {
        self.w(TDT, self.tx_tail);
    }

    pub fn send(&mut self, frame: &[u8]) {
        while self.tx_free() == 0 {
            self.reclaim_tx();
        }
        self.queue(frame);
        self.flush_tx();
    }

    /// Reclaims descriptors the device has written back (DD).
    pub fn reclaim_tx(&mut self) -> u32 {
        let mut n = 0;
        while self.tx_clean != self.tx_tail {
            let mut st = [0u8];
            self.tx_ring
                .read(self.tx_clean as usize * 16 + 12, &mut st)
                .unwrap();
            if st[0] & txd_stat::DD == 0 {
                break;
            }
            self.tx_ring
                .write(self.tx_clean as usize * 16 + 12, &[0])
                .unwrap();
            self.tx_clean = (self.tx_clean + 1) % self.ntx;
            n += 1;
        }
        n
    }

    /// Waits until the device has consumed every queued descriptor (TDH caught up with
    /// the tail; descriptors without RS get no DD), then reclaims them all.
    pub fn wait_tx_done(&mut self) {
        let tail = self.tx_tail;
        assert!(wait_for(Duration::from_secs(5), || self.r(TDH) == tail));
        while self.tx_clean != self.tx_tail {
            self.tx_ring
                .write(self.tx_clean as usize * 16 + 12, &[0])
                .unwrap();
            self.tx_clean = (self.tx_clean + 1) % self.ntx;
        }
    }

    pub fn rx_desc(&self, i: u32) -> RxDesc {
        let mut b = [0u8; 16];
        self.rx_ring.read(i as usize * 16, &mut b).unwrap();
        zerocopy::FromBytes::read_from_bytes(&b[..]).unwrap()
    }

    /// Takes one complete received frame if available: (bytes, descriptors' last write-back).
    pub fn try_recv(&mut self) -> Option<(Vec<u8>, RxDesc)> {
        // Only consume when the whole frame (up to EOP) is done.
        let mut i = self.rx_next;
        let mut n = 0;
        loop {
            let d = self.rx_desc(i);
            if d.status & rxd_stat::DD == 0 {
                return None;
            }
            n += 1;
            if d.status & rxd_stat::EOP != 0 {
                break;
            }
            i = (i + 1) % self.nrx;
            if n >= self.nrx {
                return None;
            }
        }
        let mut data = Vec::new();
        let mut last = RxDesc::default();
        for _ in 0..n {
            let d = self.rx_desc(self.rx_next);
            let off = self.rx_next as usize * self.rx_bufsize;
            let mut b = vec![0u8; usize::from(d.length)];
            self.rx_bufs.read(off, &mut b).unwrap();
            data.extend_from_slice(&b);
            last = d;
            self.give_rx(self.rx_next);
            let give = self.rx_next;
            self.rx_next = (self.rx_next + 1) % self.nrx;
            self.w(RDT, give);
        }
        Some((data, last))
    }

    pub fn recv(&mut self, timeout: Duration) -> Option<(Vec<u8>, RxDesc)> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(f) = self.try_recv() {
                return Some(f);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::yield_now();
        }
    }

    /// Reads every statistics register (clearing them).
    pub fn read_stats(&self) -> std::collections::BTreeMap<u32, u64> {
        let mut m = std::collections::BTreeMap::new();
        let mut off = regs::STATS_BASE;
        while off < regs::STATS_END {
            if regs::STATS_64BIT_LOW.contains(&off) {
                let lo = u64::from(self.r(off));
                let hi = u64::from(self.r(off + 4));
                m.insert(off, lo | (hi << 32));
                off += 8;
                continue;
            }
            if ![0x4024, 0x402C, 0x4044, 0x4084, 0x4098, 0x409C].contains(&off) {
                m.insert(off, u64::from(self.r(off)));
            }
            off += 4;
        }
        m
    }
}
