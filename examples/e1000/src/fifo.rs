//! The on-chip packet buffer: how its 64 KB are split between receive and transmit (PBA)
//! for the MTU, and the flow-control thresholds that follow from the receive share
//! (FCRTH, FCRTL, FCTTV).
//!
//! The split (SDM 13.4.16 PBA; the rules Linux's e1000 applies at every reset): the
//! 82540/82545/82544 hold 64 KB, 48 KB for receive by default. PBA.RXA is written in KB
//! (a multiple of 8) and TXA = 64 - RXA follows. As Linux's e1000, the split is written
//! before every reset (CTRL.RST), which puts it into effect: [`write_pba`] runs first in
//! [`crate::probe::reset_hw`].
//!
//! * 82540 and 82544 ("legacy" adjustment): with frames over 8 KB the receive share drops
//!   by 8 KB (40 KB receive, 24 KB transmit).
//! * 82545: with frames over a standard frame, transmit must hold two maximum frames (each
//!   with its 16-byte descriptor, without the FCS the MAC appends), rounded up to KB. If
//!   it does not, receive gives up the difference, rounded down to a multiple of 8 KB, but
//!   keeps at least one maximum frame.
//!
//! The thresholds: XOFF is sent when the receive FIFO fills past the high watermark, the
//! lower of 90% of the receive share and the share less one maximum frame (so a frame
//! arriving as the XOFF goes out still fits), in 8-byte units; XON (FCRTL.XONE) when it
//! drains below 8 bytes under that. XOFF frames ask for the longest pause, 0xFFFF quanta.

use crate::adapter::{Adapter, MacType};
use crate::error::DriverError;
use crate::regs::{flow, pba, FCRTH, FCRTL, FCTTV, PBA};

/// Ethernet header length.
const ETH_HLEN: u32 = 14;
/// Frame check sequence length.
const FCS_LEN: u32 = 4;
/// A standard frame with FCS (1500-byte payload).
const STD_FRAME: u32 = 1518;
/// Frames over this need the legacy parts' transmit share enlarged.
const LEGACY_JUMBO: u32 = 8192;
/// A legacy transmit descriptor, which the transmit FIFO stores with each frame.
const TX_DESC_LEN: u32 = 16;
/// The alignment of the 82545's receive share, KB.
const RXA_ALIGN_KB: u32 = 8;
/// The watermarks' granularity (FCRTH/FCRTL bits 15:3).
const WATERMARK_ALIGN: u32 = 8;

/// The largest frame the packet buffer must hold for the MTU, in bytes: header, payload
/// and FCS (Linux's `max_frame_size`).
pub fn buffer_frame(mtu: u32) -> u32 {
    mtu + ETH_HLEN + FCS_LEN
}

fn kb_round_up(bytes: u32) -> u32 {
    bytes.div_ceil(1024)
}

/// The receive share of the packet buffer (PBA.RXA, KB) for `part` at `mtu`.
pub fn rx_kb(part: MacType, mtu: u32) -> u32 {
    let frame = buffer_frame(mtu);
    let rx = pba::RXA_DEFAULT;
    match part {
        MacType::I82540EM | MacType::I82544GC => {
            if frame > LEGACY_JUMBO {
                rx - 8
            } else {
                rx
            }
        }
        MacType::I82545EM => {
            if frame <= STD_FRAME {
                return rx;
            }
            let tx = pba::TOTAL_KB - rx;
            let min_tx = kb_round_up(2 * (frame + TX_DESC_LEN - FCS_LEN));
            let min_rx = kb_round_up(frame);
            if tx >= min_tx || min_tx - tx >= rx {
                return rx;
            }
            let shrunk = (rx - (min_tx - tx)) & !(RXA_ALIGN_KB - 1);
            shrunk.max(min_rx)
        }
    }
}

/// The flow-control thresholds for a receive share of `rx_kb` KB and frames up to
/// `frame` bytes: (high, low) in bytes, as FCRTH and FCRTL take them.
pub fn watermarks(rx_kb: u32, frame: u32) -> (u32, u32) {
    let bytes = rx_kb * 1024;
    let high = (bytes * 9 / 10).min(bytes.saturating_sub(frame)) & !(WATERMARK_ALIGN - 1);
    (high, high.saturating_sub(WATERMARK_ALIGN))
}

/// Writes the packet buffer split for the adapter's part and MTU (PBA), before a reset
/// (with the receiver and transmitter idle).
pub fn write_pba(a: &Adapter) -> Result<(), DriverError> {
    a.wr(PBA, rx_kb(a.info.mac_type, a.conf.mtu))
}

/// Programs the flow-control thresholds from the receive share in effect (PBA.RXA read
/// back) and the MTU: FCRTH, FCRTL with XON enabled, and the pause time FCTTV.
pub fn set_fc_watermarks(a: &Adapter) -> Result<(), DriverError> {
    let rx = a.rd(PBA)? & pba::RXA_MASK;
    let (high, low) = watermarks(rx, buffer_frame(a.conf.mtu));
    a.wr(FCTTV, flow::PAUSE_TIME)?;
    a.wr(FCRTH, high)?;
    a.wr(FCRTL, low | flow::FCRTL_XONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_by_part_and_mtu() {
        for part in [MacType::I82540EM, MacType::I82544GC, MacType::I82545EM] {
            assert_eq!(rx_kb(part, 1500), 48, "{part:?}");
        }
        assert_eq!(rx_kb(MacType::I82540EM, 8000), 48);
        assert_eq!(rx_kb(MacType::I82540EM, 9000), 40);
        assert_eq!(rx_kb(MacType::I82544GC, 16110), 40);
        // 2 * (9018 + 12) = 18060 -> 18 KB of transmit: 48 - 2 = 46, down to 40.
        assert_eq!(rx_kb(MacType::I82545EM, 9000), 40);
        // 2 * (16128 + 12) = 32280 -> 32 KB: 48 - 16 = 32.
        assert_eq!(rx_kb(MacType::I82545EM, 16110), 32);
        // 2 * (2018 + 12) -> 4 KB: 16 KB of transmit already suffice.
        assert_eq!(rx_kb(MacType::I82545EM, 2000), 48);
    }

    #[test]
    fn watermarks_from_share() {
        // 90% of 48 KB = 44236.8 -> 44232.
        assert_eq!(watermarks(48, 1518), (44232, 44224));
        // 40 KB - 9018 = 31942 -> 31936 (under 90%).
        assert_eq!(watermarks(40, 9018), (31936, 31928));
        // 32 KB - 16128 = 16640.
        assert_eq!(watermarks(32, 16128), (16640, 16632));
    }
}
