//! What both Linux backends share: the device's claim, its sysfs side (binding and giving
//! back), memory mappings, the errors, and opening a device.

pub mod claim;
pub mod device;
pub mod error;
pub mod mem;
pub mod sysfs;
