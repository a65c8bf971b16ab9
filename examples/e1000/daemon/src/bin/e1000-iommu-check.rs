//! `e1000-iommu-check PCI_ADDR [--force]`: shows that VFIO confines the NIC's DMA.
//!
//! It opens the 8254x through microdriver-hal's VFIO backend and programs it by hand (no
//! driver): a receive ring of two descriptors, the first aimed at the *physical* address
//! of a sentinel page this process owns but never mapped for the device at that address,
//! the second at a buffer mapped through the IOMMU. It then sends two ARP requests to
//! 10.0.2.2 (QEMU's gateway answers each), so two frames arrive. With the IOMMU in force
//! the first write faults (the kernel logs a DMAR fault) and the sentinel keeps its pattern
//! (`unmapped-untouched`); the second lands (`mapped-received`). Exit status 0 only if both
//! hold. Without an IOMMU (UIO) the first frame would overwrite the sentinel.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use e1000_regs::{self as regs, ctrl, pci, rctl, rxd_stat, tctl, txd_cmd};
use e1000d::device::{open_pci, PciOptions};
use microdriver_hal::vfio::VfioRegion;
use microdriver_hal::{DmaAllocator, DmaRegion, Mmio, UserDriver};

/// Checks that a descriptor aimed at memory the driver never mapped cannot reach it.
#[derive(Debug, Parser)]
#[command(name = "e1000-iommu-check", version)]
struct Args {
    /// The NIC's PCI address.
    pci_addr: String,
    /// Take the NIC from the driver that holds it.
    #[arg(long)]
    force: bool,
}

const PATTERN: u8 = 0xA5;
const OUR_IP: [u8; 4] = [10, 0, 2, 15];
const PEER_IP: [u8; 4] = [10, 0, 2, 2];

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e1000-iommu-check: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The physical address of the page holding `vaddr`, from `/proc/self/pagemap`.
fn phys_addr(vaddr: usize) -> Result<u64, String> {
    let page = 4096u64;
    let f = File::open("/proc/self/pagemap").map_err(|e| format!("pagemap: {e}"))?;
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, vaddr as u64 / page * 8)
        .map_err(|e| format!("pagemap: {e}"))?;
    let e = u64::from_ne_bytes(b);
    let pfn = e & ((1 << 55) - 1);
    if e & (1 << 63) == 0 || pfn == 0 {
        return Err(format!(
            "pagemap entry {e:#x}: page not present or frame hidden (run as root)"
        ));
    }
    Ok(pfn * page + vaddr as u64 % page)
}

fn alloc(dma: &microdriver_hal::vfio::VfioDma, len: usize) -> Result<VfioRegion, String> {
    dma.alloc(len)
        .map_err(|e| format!("DMA allocation of {len} bytes: {e}"))
}

fn run(args: &Args) -> Result<(), String> {
    let opts = PciOptions {
        force: args.force,
        keep_bound: false,
        hugepages: false,
        irq: microdriver_hal::IrqMode::Intx,
    };
    let dev = open_pci(&args.pci_addr, UserDriver::Vfio, opts).map_err(|e| e.to_string())?;
    let hw = dev.hw();
    let dma = dev
        .vfio_dma()
        .ok_or("the device was not opened through VFIO")?;
    let mmio = &hw.mmio;

    // Reset, link up, bus mastering on.
    mmio.write32(regs::IMC, !0);
    mmio.write32(regs::CTRL, mmio.read32(regs::CTRL) | ctrl::RST);
    let t = Instant::now();
    while mmio.read32(regs::CTRL) & ctrl::RST != 0 {
        if t.elapsed() > Duration::from_secs(1) {
            return Err("CTRL.RST did not clear".into());
        }
        std::thread::yield_now();
    }
    mmio.write32(regs::IMC, !0);
    mmio.write32(regs::CTRL, mmio.read32(regs::CTRL) | ctrl::SLU | ctrl::ASDE);
    let cmd = hw.pci.config_read16(pci::COMMAND);
    hw.pci.config_write16(
        pci::COMMAND,
        cmd | pci::command::MEMORY | pci::command::BUS_MASTER,
    );
    let ral = mmio.read32(regs::RAL);
    let rah = mmio.read32(regs::RAH);
    let mut mac = [0u8; 6];
    mac[..4].copy_from_slice(&ral.to_le_bytes());
    mac[4..].copy_from_slice(&rah.to_le_bytes()[..2]);

    // The sentinel: ours, mapped for the device only at its IOVA, never at its physical
    // address. The descriptor below names the physical address.
    let sentinel = alloc(&dma, 4096)?;
    sentinel
        .write(0, &[PATTERN; 4096])
        .map_err(|e| e.to_string())?;
    let target = phys_addr(sentinel.virt_addr())?;
    let good = alloc(&dma, 2048)?;
    let rx_ring = alloc(&dma, 128)?;
    let tx_ring = alloc(&dma, 128)?;
    let tx_buf = alloc(&dma, 2048)?;
    for r in [&sentinel, &good, &rx_ring, &tx_ring, &tx_buf] {
        let (lo, hi) = (r.bus_addr(), r.bus_addr() + r.len() as u64);
        if (lo..hi).contains(&target) {
            return Err(format!(
                "the sentinel's physical address {target:#x} happens to be a mapped IOVA \
                 ({lo:#x}..{hi:#x}): run again"
            ));
        }
    }
    println!(
        "sentinel: physical {target:#x} (mapped for the device only at IOVA {:#x}); good buffer IOVA {:#x}",
        sentinel.bus_addr(),
        good.bus_addr()
    );

    // Receive ring: 8 descriptors (RDLEN must be a multiple of 128), two handed over.
    let desc = |ring: &VfioRegion, i: usize, addr: u64| ring.write_u64(i * 16, addr);
    desc(&rx_ring, 0, target).map_err(|e| e.to_string())?;
    desc(&rx_ring, 1, good.bus_addr()).map_err(|e| e.to_string())?;
    mmio.write32(regs::RDBAL, rx_ring.bus_addr() as u32);
    mmio.write32(regs::RDBAH, (rx_ring.bus_addr() >> 32) as u32);
    mmio.write32(regs::RDLEN, 128);
    mmio.write32(regs::RDH, 0);
    mmio.write32(regs::RDT, 2);
    mmio.write32(
        regs::RCTL,
        rctl::EN | rctl::UPE | rctl::MPE | rctl::BAM | rctl::SECRC,
    );
    mmio.write32(regs::TDBAL, tx_ring.bus_addr() as u32);
    mmio.write32(regs::TDBAH, (tx_ring.bus_addr() >> 32) as u32);
    mmio.write32(regs::TDLEN, 128);
    mmio.write32(regs::TDH, 0);
    mmio.write32(regs::TDT, 0);
    mmio.write32(
        regs::TCTL,
        tctl::EN | tctl::PSP | (0x0F << tctl::CT_SHIFT) | (0x40 << tctl::COLD_SHIFT),
    );

    // Wait for the link (QEMU's model has it up at once, real parts take a while).
    let t = Instant::now();
    while mmio.read32(regs::STATUS) & regs::status::LU == 0 {
        if t.elapsed() > Duration::from_secs(5) {
            return Err("no link within 5 s".into());
        }
        std::thread::yield_now();
    }

    // Two ARP requests: one reply each.
    let frame = e1000_wire::arp(1, mac, OUR_IP, [0; 6], PEER_IP);
    tx_buf.write(0, &frame).map_err(|e| e.to_string())?;
    for i in 0..2usize {
        tx_ring
            .write_u64(i * 16, tx_buf.bus_addr())
            .map_err(|e| e.to_string())?;
        let word =
            (frame.len() as u64) | (u64::from(txd_cmd::EOP | txd_cmd::IFCS | txd_cmd::RS) << 24);
        tx_ring
            .write_u64(i * 16 + 8, word)
            .map_err(|e| e.to_string())?;
        mmio.write32(regs::TDT, i as u32 + 1);
        // Both replies must arrive before the next request, so each lands in its own slot.
        let want = i as u32 + 1;
        let t = Instant::now();
        while mmio.read32(regs::RDH) < want {
            if t.elapsed() > Duration::from_secs(5) {
                return Err(format!(
                    "reply {want} never arrived (RDH {}, TDH {})",
                    mmio.read32(regs::RDH),
                    mmio.read32(regs::TDH)
                ));
            }
            std::thread::yield_now();
        }
    }
    mmio.write32(regs::RCTL, 0);
    mmio.write32(regs::TCTL, 0);

    let mut page = vec![0u8; 4096];
    sentinel.read(0, &mut page).map_err(|e| e.to_string())?;
    let changed = page.iter().filter(|b| **b != PATTERN).count();
    let status0 = rx_ring.read_u64(8).map_err(|e| e.to_string())?;
    let status1 = rx_ring.read_u64(24).map_err(|e| e.to_string())?;
    let mut got = [0u8; 42];
    good.read(0, &mut got).map_err(|e| e.to_string())?;
    let arp_reply = got[12..14] == [0x08, 0x06] && got[20..22] == [0, 2];
    println!(
        "descriptor 0 (physical {target:#x}): status {:#x}; descriptor 1 (IOVA {:#x}): status {:#x}, length {}",
        (status0 >> 32) as u8,
        good.bus_addr(),
        (status1 >> 32) as u8,
        status1 as u16
    );
    let mut ok = true;
    if changed == 0 {
        println!("unmapped-untouched: the sentinel page kept its pattern");
    } else {
        println!("unmapped-WRITTEN: {changed} bytes of the sentinel changed: the device reached unmapped memory");
        ok = false;
    }
    if arp_reply && (status1 >> 32) as u8 & rxd_stat::DD != 0 {
        println!("mapped-received: an ARP reply landed in the mapped buffer");
    } else {
        println!("mapped-MISSING: no ARP reply in the mapped buffer ({got:02x?})");
        ok = false;
    }
    drop((sentinel, good, rx_ring, tx_ring, tx_buf, dma, hw));
    dev.close().map_err(|e| e.to_string())?;
    if ok {
        Ok(())
    } else {
        Err("the IOMMU did not confine the device's DMA".into())
    }
}
