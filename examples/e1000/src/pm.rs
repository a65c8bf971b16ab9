//! Power management: system suspend and resume (Linux's e1000 `suspend`/`resume` PM
//! callbacks).
//!
//! Suspend closes the interface if it is open and readies the device to lose power exactly
//! as [`probe::shutdown`](crate::probe::shutdown) does ([`wol::prepare_power_off`]: the
//! wake-up filters armed for the configured Wake-on-LAN modes with the PHY kept up, or
//! wake-up off and the PHY powered down). Resume powers the PHY up, records and clears what
//! woke the device (WUS, SDM 13.6.3), resets the MAC (which loses its filters, SDM 14.5)
//! and programs it again from the adapter's configuration, and reopens the interface if it
//! was open.

use microdriver_rt::upcall;
use microdriver_rt::Marshal;

use crate::adapter::Adapter;
use crate::config;
use crate::error::DriverError;
use crate::probe;
use crate::wol;

/// The adapter's power-management state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct PmState {
    /// Suspended: the device is readied for power-off until [`resume`].
    pub suspended: bool,
    /// The interface was open when it was suspended (resume reopens it).
    pub was_up: bool,
}

/// What [`resume`] found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct ResumeReport {
    /// The wake-up status (WUS) found: which wake-up filters matched while suspended, 0 if
    /// none did (the system was woken by something else).
    pub wake_status: u32,
    /// The ethtool `WAKE_*` modes whose filters matched ([`wol::modes_of`]).
    pub woken_by: u32,
    /// The interface was open at suspend and has been reopened.
    pub reopened: bool,
}

impl ResumeReport {
    /// Whether a wake-up event of the device woke the system.
    pub fn woke_by_wake_up(&self) -> bool {
        self.wake_status != 0
    }
}

/// Suspends the device: closes the interface if it is open (remembering that it was),
/// then arms wake-up as shutdown does ([`wol::prepare_power_off`]). Until [`resume`] the
/// watchdog leaves the device alone and the interface cannot be opened.
#[upcall]
pub fn suspend(a: &mut Adapter) -> Result<(), DriverError> {
    if a.pm.suspended {
        return Err(DriverError::WrongState {
            op: "suspend".into(),
            state: "suspended".into(),
            needed: "running: resume it first".into(),
        });
    }
    let was_up = a.up;
    if was_up {
        config::close(a)?;
    }
    // Recorded before arming: a failure below leaves a closed device that resume can
    // bring back (it resets and reprograms everything).
    a.pm = PmState {
        suspended: true,
        was_up,
    };
    // The watchdog leaves a suspended device alone, so the link last seen goes stale (and
    // the PHY may power down): none is reported until resume looks again.
    a.link = a.link.unknown();
    wol::prepare_power_off(a)?;
    tracing::info!(
        dev = a.dev.0,
        was_up,
        wake = %wol::names(a.conf.wol),
        "suspended"
    );
    Ok(())
}

/// Resumes a suspended device: powers the PHY up ([`wol::power_up_phy`]), records and
/// clears the wake-up status and turns wake-up off ([`wol::take_wake_status`], kept in
/// `a.info.wake_status` for ethtool's WoL report), resets the device and programs it from
/// the adapter's configuration ([`config::init_hw`]: `RA[0]`, flow control, the PHY and
/// the link settings; then the receive filters, the extra unicast addresses, the
/// multicast table and the VLAN filter), and reopens the interface if it was open at
/// suspend ([`config::open`]: rings of the configured sizes, coalescing, offloads).
#[upcall]
pub fn resume(a: &mut Adapter) -> Result<ResumeReport, DriverError> {
    if !a.pm.suspended {
        return Err(DriverError::WrongState {
            op: "resume".into(),
            state: "not suspended".into(),
            needed: "suspended: suspend it first".into(),
        });
    }
    wol::power_up_phy(a)?;
    let wus = wol::take_wake_status(a)?;
    a.info.wake_status = wus;
    probe::reset_hw(a)?;
    a.link = a.link.unknown();
    config::init_hw(a)?;
    config::set_rx_mode(a)?;
    config::apply_vlans(a)?;
    let was_up = a.pm.was_up;
    a.pm = PmState::default();
    if was_up {
        config::open(a)?;
    }
    let report = ResumeReport {
        wake_status: wus,
        woken_by: wol::modes_of(wus),
        reopened: was_up,
    };
    tracing::info!(
        dev = a.dev.0,
        wus = format_args!("{wus:#x}"),
        woken_by = %wol::names(report.woken_by),
        reopened = was_up,
        "resumed"
    );
    Ok(report)
}
