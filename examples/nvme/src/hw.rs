//! The hardware seam (`microdriver-hal`'s traits, re-exported) and the driver's own DMA
//! holder, [`PageBuf`]: memory as NVMe addresses it, one page at a time.
//!
//! NVMe names data by PRPs, one entry per 4 KiB page, so a buffer need not be contiguous
//! in bus address space: each page is its own region. That is what lets the driver run on
//! UIO without hugepages (a one-page region is contiguous by construction) and why it
//! needs no new HAL call.

pub use microdriver_hal::seam::*;

use nvme_regs::PAGE;

/// Pages of DMA memory, each its own region.
#[derive(Default)]
pub struct PageBuf {
    pages: Vec<Box<dyn DmaRegion>>,
}

impl std::fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PageBuf({} pages)", self.pages.len())
    }
}

impl PageBuf {
    /// Allocates `n` zeroed pages.
    pub fn new(dma: &dyn Dma, n: usize) -> Result<Self, DmaError> {
        let pages = (0..n)
            .map(|_| dma.alloc_region(PAGE))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PageBuf { pages })
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.pages.len()
    }

    /// Bus address of page `i` (0 if there is none).
    pub fn bus(&self, i: usize) -> u64 {
        self.pages.get(i).map_or(0, |p| p.bus_addr())
    }

    fn check(&self, off: usize, len: usize) -> Result<(), DmaError> {
        match off.checked_add(len) {
            Some(end) if end <= self.pages.len() * PAGE => Ok(()),
            _ => Err(DmaError::OutOfBounds {
                off,
                len,
                region_len: self.pages.len() * PAGE,
            }),
        }
    }

    /// Copies `buf.len()` bytes at byte offset `off` into `buf`.
    pub fn read(&self, off: usize, buf: &mut [u8]) -> Result<(), DmaError> {
        self.check(off, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let at = off + done;
            let n = (PAGE - at % PAGE).min(buf.len() - done);
            self.pages[at / PAGE].read(at % PAGE, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Copies `data` to byte offset `off`.
    pub fn write(&self, off: usize, data: &[u8]) -> Result<(), DmaError> {
        self.check(off, data.len())?;
        let mut done = 0;
        while done < data.len() {
            let at = off + done;
            let n = (PAGE - at % PAGE).min(data.len() - done);
            self.pages[at / PAGE].write(at % PAGE, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }
}
