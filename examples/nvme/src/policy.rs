//! The register policy: what the user half may do to the controller's registers.
//!
//! The user half has no device access of its own: each register access it makes is a
//! downcall that the kernel half checks here first.
//!
//! * **Reads**: the controller registers of the map ([`MAP`]): CAP, VS, INTMS/INTMC, CC,
//!   CSTS, NSSR, AQA, ASQ, ACQ. Doorbells are write-only and the kernel half's.
//! * **Writes**: CC only. INTMS/INTMC (the interrupt thread's), AQA/ASQ/ACQ (the admin
//!   queue's bases, which the kernel half programs with memory it allocated), NSSR (a
//!   subsystem reset takes every controller on it) and every doorbell are kernel-owned:
//!   the user half never writes a queue base or a doorbell of its own making.
//! * **CC**: no reserved bit; setting EN needs the admin queue the kernel half programmed
//!   since the last disable (the controller starts fetching from it at once) and the
//!   entry sizes and page size the kernel half's queues are built for (64-byte SQEs,
//!   16-byte CQEs, 4 KiB pages, the NVM command set, round-robin arbitration). Clearing EN
//!   (a controller reset) is always allowed: it stops the controller's DMA; it makes the
//!   admin queue not live until the kernel half programs it again.
//!
//! The policy is a pure state machine, tested on its own.

use nvme_regs::{cc, ACQ, AQA, ASQ, CAP, CC, CSTS, DOORBELL_BASE, INTMC, INTMS, NSSR, VS};

/// Why the policy refused an access.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The offset is not a multiple of 4.
    #[error("offset {0:#x} is not 32-bit aligned")]
    Unaligned(u32),
    /// The offset names no controller register.
    #[error("offset {0:#x} is not an NVMe controller register")]
    Unmapped(u32),
    /// The register belongs to the kernel half.
    #[error("{name} ({off:#x}) is owned by the kernel half; use the kernel call for it")]
    KernelOwned {
        /// Register name.
        name: &'static str,
        /// Offset.
        off: u32,
    },
    /// A CC value the policy refuses.
    #[error("CC = {value:#010x} refused: {why}")]
    Cc {
        /// The value.
        value: u32,
        /// Why.
        why: &'static str,
    },
}

/// The controller registers: `(offset, name)`; 64-bit registers have two entries.
pub const MAP: [(u32, &str); 13] = [
    (CAP, "CAP"),
    (CAP + 4, "CAP"),
    (VS, "VS"),
    (INTMS, "INTMS"),
    (INTMC, "INTMC"),
    (CC, "CC"),
    (CSTS, "CSTS"),
    (NSSR, "NSSR"),
    (AQA, "AQA"),
    (ASQ, "ASQ"),
    (ASQ + 4, "ASQ"),
    (ACQ, "ACQ"),
    (ACQ + 4, "ACQ"),
];

/// The CC fields the kernel half's queues fix, and their required values.
const CC_FIXED: u32 = cc::CSS_MASK | cc::MPS_MASK | cc::AMS_MASK | 0xFF << 16;

/// The policy of one controller.
#[derive(Debug, Clone, Default)]
pub struct RegisterPolicy {
    /// The kernel half has programmed the admin queue since the controller was last
    /// disabled (enabling is allowed).
    pub admin_live: bool,
}

/// What an allowed write means for the kernel half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing beyond the write.
    None,
    /// The write disables (resets) the controller: every queue is gone once CSTS.RDY
    /// clears; I/O must stop until queues are re-created.
    Disable,
}

impl RegisterPolicy {
    /// Checks a user-half read (`write` None) or write of `off`.
    pub fn check(&mut self, off: u32, write: Option<u32>) -> Result<Effect, PolicyError> {
        if !off.is_multiple_of(4) {
            return Err(PolicyError::Unaligned(off));
        }
        if off >= DOORBELL_BASE {
            return Err(PolicyError::KernelOwned {
                name: "doorbell",
                off,
            });
        }
        let (_, name) = MAP
            .iter()
            .find(|(o, _)| *o == off)
            .ok_or(PolicyError::Unmapped(off))?;
        let Some(v) = write else {
            return Ok(Effect::None);
        };
        if off != CC {
            return Err(PolicyError::KernelOwned { name, off });
        }
        if v & !cc::KNOWN != 0 {
            return Err(PolicyError::Cc {
                value: v,
                why: "reserved bits set",
            });
        }
        if v & cc::EN == 0 {
            self.admin_live = false;
            return Ok(Effect::Disable);
        }
        if !self.admin_live {
            return Err(PolicyError::Cc {
                value: v,
                why: "enabling needs the admin queue the kernel half programs (admin_queue_setup)",
            });
        }
        if v & CC_FIXED != cc::ENABLE & CC_FIXED {
            return Err(PolicyError::Cc {
                value: v,
                why: "the kernel half's queues need IOSQES 6, IOCQES 4, MPS 0, CSS 0, AMS 0",
            });
        }
        Ok(Effect::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn user_half_writes_only_cc() {
        let mut p = RegisterPolicy::default();
        for (off, _) in MAP {
            assert!(p.check(off, None).is_ok(), "{off:#x} readable");
            let w = p.check(off, Some(0));
            assert_eq!(w.is_ok(), off == CC, "{off:#x} writable only if CC");
        }
        assert_eq!(p.check(0x15, None), Err(PolicyError::Unaligned(0x15)));
        assert_eq!(p.check(0x40, None), Err(PolicyError::Unmapped(0x40)));
        for db in [0x1000, 0x1004, 0x2000, !3] {
            assert!(matches!(
                p.check(db, Some(1)),
                Err(PolicyError::KernelOwned { .. })
            ));
        }
    }

    #[test]
    fn enable_needs_the_kernels_admin_queue_and_sizes() {
        let mut p = RegisterPolicy::default();
        assert!(p.check(CC, Some(cc::ENABLE)).is_err(), "no admin queue");
        p.admin_live = true;
        assert!(
            p.check(CC, Some(cc::ENABLE | 1 << 7)).is_err(),
            "8 KiB pages"
        );
        assert!(
            p.check(CC, Some(cc::EN | 7 << 16 | 4 << 20)).is_err(),
            "128-byte SQEs"
        );
        assert!(
            p.check(CC, Some(cc::ENABLE | 1 << 30)).is_err(),
            "reserved bit"
        );
        assert_eq!(p.check(CC, Some(cc::ENABLE)), Ok(Effect::None));
        assert_eq!(p.check(CC, Some(0)), Ok(Effect::Disable));
        assert!(!p.admin_live);
        assert!(
            p.check(CC, Some(cc::ENABLE)).is_err(),
            "disabled: program again"
        );
    }

    proptest! {
        #[test]
        fn no_write_but_cc_and_no_enable_without_admin_queue(
            ops in proptest::collection::vec((0u32..0x3000, any::<u32>(), any::<bool>()), 0..64)
        ) {
            let mut p = RegisterPolicy::default();
            let mut live = false;
            for (off, v, setup) in ops {
                if setup {
                    p.admin_live = true;
                    live = true;
                }
                let r = p.check(off, Some(v));
                if r.is_ok() {
                    prop_assert_eq!(off, CC);
                    if v & cc::EN != 0 {
                        prop_assert!(live);
                    } else {
                        live = false;
                    }
                }
            }
        }
    }
}
