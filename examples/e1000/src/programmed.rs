//! Is the device still the one the kernel half programmed? Another process that takes the
//! device (or a reset from outside: an FLR, a rebind) clears or rewrites the ring
//! registers the kernel half alone writes. The service thread checks them at every
//! watchdog tick, so a daemon whose device was taken under it says so (`status`, the log)
//! instead of reporting a healthy link while no frame moves.

use crate::kernel::Kernel;
use crate::regs;

/// What no longer matches, or `None` if the device holds the rings the kernel half
/// programmed (or it has none programmed). Takes the ring locks, which every change of
/// the ring registers holds.
pub fn check(k: &Kernel) -> Option<String> {
    let status = k.rd(regs::STATUS);
    if status == u32::MAX {
        return Some(
            "the device reads all-ones (STATUS 0xffffffff): removed, powered off, or its \
             memory space disabled by someone else"
                .into(),
        );
    }
    let (Ok(tx), Ok(rx)) = (k.tx.lock(), k.rx.lock()) else {
        return None;
    };
    let rings = [
        (
            "transmit",
            regs::TDBAL,
            tx.ring.as_ref().map(|r| (r.desc_bus(), r.desc_len())),
        ),
        (
            "receive",
            regs::RDBAL,
            rx.ring.as_ref().map(|r| (r.desc_bus(), r.desc_len())),
        ),
    ];
    for (name, bal, want) in rings {
        let Some((bus, len)) = want else { continue };
        let got_bus = u64::from(k.rd(bal + 4)) << 32 | u64::from(k.rd(bal));
        let got_len = k.rd(bal + 8);
        if (got_bus, got_len) != (bus, len) {
            return Some(format!(
                "the {name} ring registers changed under the driver (base {got_bus:#x}, \
                 length {got_len}; programmed {bus:#x}, {len}): the device was reset or \
                 reprogrammed by someone else; restart the daemon"
            ));
        }
    }
    None
}
