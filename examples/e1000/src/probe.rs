//! Probe, remove and shutdown.

use crate::adapter::{Adapter, MacType, HW_WAIT_MS};
use crate::bus::BusInfo;
use crate::config;
use crate::eeprom;
use crate::error::DriverError;
use crate::kernel::{self, DevId};
use crate::regs::{ctrl, pci, CTRL, STATUS};
use crate::wol;
use microdriver_rt::upcall;

/// Probes the device the kernel half attached as `dev`: identifies the part from its PCI
/// ids, records and clears the wake-up status ([`wol::take_wake_status`]), reads the bus
/// it sits on ([`BusInfo`]), resets it, validates the EEPROM checksum, reads the permanent
/// MAC address into `RA[0]` and the configuration words (CTRL defaults, ID LEDs, the PBA
/// number, the default Wake-on-LAN: [`eeprom::EepromConfig`]), reads the PHY id and
/// initialises the PHY (SDM ch. 14, "General Initialization").
#[upcall]
pub fn probe(dev: DevId) -> Result<Adapter, DriverError> {
    let mut a = Adapter::new(dev);
    let vendor = kernel::pci_read16(dev, pci::VENDOR_ID)?;
    let device = kernel::pci_read16(dev, pci::DEVICE_ID)?;
    a.info.mac_type = MacType::from_ids(vendor, device)?;
    a.info.vendor = vendor;
    a.info.device = device;
    a.info.subsys_vendor = kernel::pci_read16(dev, pci::SUBSYSTEM_VENDOR_ID)?;
    a.info.subsys_device = kernel::pci_read16(dev, pci::SUBSYSTEM_ID)?;
    a.info.eeprom_words = eeprom::WORDS;
    a.shared = Some(kernel::shared_state(dev)?);
    a.info.wake_status = wol::take_wake_status(&a)?;
    a.info.bus = BusInfo::decode(a.rd(STATUS)?, a.info.mac_type);
    reset_hw(&a)?;
    eeprom::validate_checksum(&a)?;
    a.info.eeprom = eeprom::EepromConfig::read(&a)?;
    let mac = eeprom::read_mac(&a)?;
    config::check_mac(mac)?;
    a.info.perm_addr = mac;
    a.mac = mac;
    config::init_hw(&mut a)?;
    a.conf.wol = wol::default_from_eeprom(a.info.mac_type, &a.info.eeprom);
    tracing::info!(
        dev = dev.0,
        part = a.info.mac_type.name(),
        mac = ?a.mac,
        phy = format_args!("{:#010x}", a.info.phy_id),
        bus = %a.info.bus.describe(),
        pba = %a.info.eeprom.pba_string(),
        "probed"
    );
    Ok(a)
}

/// Shuts the device down for power-off: closes it, then arms the wake-up modes chosen
/// with ethtool WoL and keeps the PHY up for them, or with none turns wake-up off and
/// powers the PHY down ([`wol::prepare_power_off`]).
#[upcall]
pub fn shutdown(a: &mut Adapter) -> Result<(), DriverError> {
    if a.up {
        config::close(a)?;
    }
    wol::prepare_power_off(a)
}

/// Removes the device: closes it and detaches it from the kernel half. With wake-up modes
/// chosen it is left armed as [`shutdown`] leaves it (a reset would clear the filters the
/// wake-up needs); otherwise it is reset, with wake-up off and the PHY powered down.
#[upcall]
pub fn remove(a: &mut Adapter) -> Result<(), DriverError> {
    if a.up {
        config::close(a)?;
    }
    if a.conf.wol == 0 {
        reset_hw(a)?;
    }
    wol::prepare_power_off(a)?;
    kernel::detach(a.dev)
}

/// Resets the device and waits for the reset to complete (SDM 14.5: at least 1 us; the
/// EEPROM reload follows), leaving interrupts masked. The packet buffer split for the MTU
/// is written first: the reset puts it into effect ([`crate::fifo`]).
pub fn reset_hw(a: &Adapter) -> Result<(), DriverError> {
    crate::fifo::write_pba(a)?;
    kernel::reset_start(a.dev)?;
    a.poll_reg(CTRL, "CTRL.RST to clear", HW_WAIT_MS, |v| {
        v & ctrl::RST == 0
    })?;
    std::thread::sleep(std::time::Duration::from_millis(1));
    kernel::irq_set_mask(a.dev, 0)
}
