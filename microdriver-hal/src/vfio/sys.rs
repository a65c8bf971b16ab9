//! The VFIO ioctls (Linux `include/uapi/linux/vfio.h`), each wrapped in a safe function
//! that passes a correctly sized, owned argument: the HAL's only `ioctl` calls.
//!
//! Every request is `_IO(';', 100 + n)` (VFIO passes its argument size in `argsz`, not in
//! the request number).

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

const fn io(n: u32) -> libc::c_ulong {
    ((b';' as u32) << 8 | (100 + n)) as libc::c_ulong
}

const GET_API_VERSION: libc::c_ulong = io(0);
const CHECK_EXTENSION: libc::c_ulong = io(1);
const SET_IOMMU: libc::c_ulong = io(2);
const GROUP_GET_STATUS: libc::c_ulong = io(3);
const GROUP_SET_CONTAINER: libc::c_ulong = io(4);
const GROUP_GET_DEVICE_FD: libc::c_ulong = io(6);
const DEVICE_GET_INFO: libc::c_ulong = io(7);
const DEVICE_GET_REGION_INFO: libc::c_ulong = io(8);
const DEVICE_GET_IRQ_INFO: libc::c_ulong = io(9);
const DEVICE_SET_IRQS: libc::c_ulong = io(10);
const IOMMU_MAP_DMA: libc::c_ulong = io(13);
const IOMMU_UNMAP_DMA: libc::c_ulong = io(14);

/// The API version this code speaks.
pub const API_VERSION: i32 = 0;
/// The type-1 IOMMU, v2 semantics (unmap of partial ranges refused).
pub const TYPE1V2_IOMMU: u32 = 3;
/// The type-1 IOMMU.
pub const TYPE1_IOMMU: u32 = 1;

/// `vfio_group_status.flags`: every device of the group is bound to vfio (or no driver).
pub const GROUP_FLAGS_VIABLE: u32 = 1;

/// `vfio_region_info.flags`.
pub const REGION_INFO_FLAG_READ: u32 = 1;
/// `vfio_region_info.flags`.
pub const REGION_INFO_FLAG_WRITE: u32 = 2;
/// `vfio_region_info.flags`.
pub const REGION_INFO_FLAG_MMAP: u32 = 4;

/// `vfio_irq_info.flags`: the index takes eventfds.
pub const IRQ_INFO_EVENTFD: u32 = 1;

/// PCI region indices.
pub const PCI_BAR0_REGION_INDEX: u32 = 0;
/// The configuration space region.
pub const PCI_CONFIG_REGION_INDEX: u32 = 7;
/// PCI interrupt indices.
pub const PCI_INTX_IRQ_INDEX: u32 = 0;
/// MSI.
pub const PCI_MSI_IRQ_INDEX: u32 = 1;
/// MSI-X.
pub const PCI_MSIX_IRQ_INDEX: u32 = 2;

/// `vfio_irq_set.flags`.
pub const IRQ_SET_DATA_NONE: u32 = 1;
/// `vfio_irq_set.flags`.
pub const IRQ_SET_DATA_EVENTFD: u32 = 4;
/// `vfio_irq_set.flags`.
pub const IRQ_SET_ACTION_MASK: u32 = 8;
/// `vfio_irq_set.flags`.
pub const IRQ_SET_ACTION_UNMASK: u32 = 16;
/// `vfio_irq_set.flags`.
pub const IRQ_SET_ACTION_TRIGGER: u32 = 32;

const DMA_MAP_FLAG_READ: u32 = 1;
const DMA_MAP_FLAG_WRITE: u32 = 2;

#[repr(C)]
#[derive(Debug, Default)]
struct GroupStatus {
    argsz: u32,
    flags: u32,
}

/// `struct vfio_device_info` (up to `num_irqs`: the kernel's minimum size).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct DeviceInfo {
    argsz: u32,
    /// Device flags (bit 1: PCI).
    pub flags: u32,
    /// Number of regions.
    pub num_regions: u32,
    /// Number of interrupt indices.
    pub num_irqs: u32,
}

/// `struct vfio_region_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RegionInfo {
    argsz: u32,
    /// `REGION_INFO_FLAG_*`.
    pub flags: u32,
    index: u32,
    cap_offset: u32,
    /// Size in bytes (0: the region does not exist).
    pub size: u64,
    /// Offset of the region in the device file.
    pub offset: u64,
}

/// `struct vfio_irq_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct IrqInfo {
    argsz: u32,
    /// `IRQ_INFO_*`.
    pub flags: u32,
    index: u32,
    /// Number of vectors.
    pub count: u32,
}

/// `struct vfio_irq_set` with room for one eventfd.
#[repr(C)]
#[derive(Debug, Default)]
struct IrqSetOne {
    argsz: u32,
    flags: u32,
    index: u32,
    start: u32,
    count: u32,
    data: i32,
}

#[repr(C)]
#[derive(Debug, Default)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}

#[repr(C)]
#[derive(Debug, Default)]
struct DmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}

fn argsz<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

/// An ioctl with no argument.
fn ioctl_val(fd: impl AsFd, req: libc::c_ulong, arg: libc::c_ulong) -> io::Result<i32> {
    // SAFETY: these requests take an integer argument (or none), not a pointer: the kernel
    // reads no memory of ours.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), req, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An ioctl whose argument is `*arg`, which the kernel may read and write within its size.
fn ioctl_ptr<T>(fd: impl AsFd, req: libc::c_ulong, arg: &mut T) -> io::Result<i32> {
    // SAFETY: `arg` is a live, exclusively borrowed `repr(C)` value laid out as the request's
    // structure, whose `argsz` (set by every caller) tells the kernel not to touch more than
    // `size_of::<T>()` bytes.
    let r = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), req, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `VFIO_GET_API_VERSION` on the container.
pub fn api_version(container: impl AsFd) -> io::Result<i32> {
    ioctl_val(container, GET_API_VERSION, 0)
}

/// `VFIO_CHECK_EXTENSION`: whether the container supports IOMMU type `ty`.
pub fn check_extension(container: impl AsFd, ty: u32) -> io::Result<bool> {
    Ok(ioctl_val(container, CHECK_EXTENSION, ty.into())? > 0)
}

/// `VFIO_SET_IOMMU`.
pub fn set_iommu(container: impl AsFd, ty: u32) -> io::Result<()> {
    ioctl_val(container, SET_IOMMU, ty.into()).map(drop)
}

/// `VFIO_GROUP_GET_STATUS`: the group's flags.
pub fn group_status(group: impl AsFd) -> io::Result<u32> {
    let mut st = GroupStatus {
        argsz: argsz::<GroupStatus>(),
        flags: 0,
    };
    ioctl_ptr(group, GROUP_GET_STATUS, &mut st)?;
    Ok(st.flags)
}

/// `VFIO_GROUP_SET_CONTAINER`.
pub fn group_set_container(group: impl AsFd, container: impl AsFd) -> io::Result<()> {
    let mut fd: i32 = container.as_fd().as_raw_fd();
    ioctl_ptr(group, GROUP_SET_CONTAINER, &mut fd).map(drop)
}

/// `VFIO_GROUP_GET_DEVICE_FD` for the device named `name` (its PCI address).
pub fn group_get_device_fd(group: impl AsFd, name: &str) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: the request takes a NUL-terminated string, which `name` is, alive for the call.
    let fd = unsafe {
        libc::ioctl(
            group.as_fd().as_raw_fd(),
            GROUP_GET_DEVICE_FD,
            name.as_ptr(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the ioctl returns a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `VFIO_DEVICE_GET_INFO`.
pub fn device_info(device: impl AsFd) -> io::Result<DeviceInfo> {
    let mut info = DeviceInfo {
        argsz: argsz::<DeviceInfo>(),
        ..DeviceInfo::default()
    };
    ioctl_ptr(device, DEVICE_GET_INFO, &mut info)?;
    Ok(info)
}

/// `VFIO_DEVICE_GET_REGION_INFO` for region `index`.
pub fn region_info(device: impl AsFd, index: u32) -> io::Result<RegionInfo> {
    let mut info = RegionInfo {
        argsz: argsz::<RegionInfo>(),
        index,
        ..RegionInfo::default()
    };
    ioctl_ptr(device, DEVICE_GET_REGION_INFO, &mut info)?;
    Ok(info)
}

/// `VFIO_DEVICE_GET_IRQ_INFO` for interrupt index `index`.
pub fn irq_info(device: impl AsFd, index: u32) -> io::Result<IrqInfo> {
    let mut info = IrqInfo {
        argsz: argsz::<IrqInfo>(),
        index,
        ..IrqInfo::default()
    };
    ioctl_ptr(device, DEVICE_GET_IRQ_INFO, &mut info)?;
    Ok(info)
}

/// `VFIO_DEVICE_SET_IRQS` for vector 0 of `index`: with `eventfd` (DATA_EVENTFD, `flags`
/// the action), or without data (DATA_NONE, e.g. an unmask).
pub fn set_irq(device: impl AsFd, index: u32, action: u32, eventfd: Option<i32>) -> io::Result<()> {
    let mut set = IrqSetOne {
        argsz: argsz::<IrqSetOne>(),
        flags: action
            | if eventfd.is_some() {
                IRQ_SET_DATA_EVENTFD
            } else {
                IRQ_SET_DATA_NONE
            },
        index,
        start: 0,
        count: 1,
        data: eventfd.unwrap_or(-1),
    };
    if eventfd.is_none() {
        // DATA_NONE carries no data: the kernel checks argsz against the header alone.
        set.argsz -= 4;
    }
    ioctl_ptr(device, DEVICE_SET_IRQS, &mut set).map(drop)
}

/// `VFIO_DEVICE_SET_IRQS` with count 0 and DATA_NONE|ACTION_TRIGGER: disables `index`.
pub fn disable_irq(device: impl AsFd, index: u32) -> io::Result<()> {
    let mut set = IrqSetOne {
        argsz: argsz::<IrqSetOne>() - 4,
        flags: IRQ_SET_DATA_NONE | IRQ_SET_ACTION_TRIGGER,
        index,
        start: 0,
        count: 0,
        data: -1,
    };
    ioctl_ptr(device, DEVICE_SET_IRQS, &mut set).map(drop)
}

/// `VFIO_IOMMU_MAP_DMA`: the device may read and write `[iova, iova + size)`, which is
/// `[vaddr, vaddr + size)` of this process (the kernel pins those pages).
pub fn map_dma(container: impl AsFd, vaddr: usize, iova: u64, size: usize) -> io::Result<()> {
    let mut map = DmaMap {
        argsz: argsz::<DmaMap>(),
        flags: DMA_MAP_FLAG_READ | DMA_MAP_FLAG_WRITE,
        vaddr: vaddr as u64,
        iova,
        size: size as u64,
    };
    ioctl_ptr(container, IOMMU_MAP_DMA, &mut map).map(drop)
}

/// `VFIO_IOMMU_UNMAP_DMA` of `[iova, iova + size)`; returns the bytes unmapped.
pub fn unmap_dma(container: impl AsFd, iova: u64, size: usize) -> io::Result<u64> {
    let mut unmap = DmaUnmap {
        argsz: argsz::<DmaUnmap>(),
        flags: 0,
        iova,
        size: size as u64,
    };
    ioctl_ptr(container, IOMMU_UNMAP_DMA, &mut unmap)?;
    Ok(unmap.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_and_layouts_match_the_uapi_header() {
        // _IO(';', 100 + n): VFIO_GET_API_VERSION is 0x3b64, VFIO_IOMMU_MAP_DMA 0x3b71.
        assert_eq!(GET_API_VERSION, 0x3b64);
        assert_eq!(DEVICE_SET_IRQS, 0x3b6e);
        assert_eq!(IOMMU_MAP_DMA, 0x3b71);
        assert_eq!(IOMMU_UNMAP_DMA, 0x3b72);
        assert_eq!(std::mem::size_of::<RegionInfo>(), 32);
        assert_eq!(std::mem::size_of::<DmaMap>(), 32);
        assert_eq!(std::mem::size_of::<DmaUnmap>(), 24);
        assert_eq!(std::mem::size_of::<IrqSetOne>(), 24);
        assert_eq!(std::mem::size_of::<DeviceInfo>(), 16);
    }

    #[test]
    fn ioctls_on_a_non_vfio_file_fail_cleanly() {
        let f = tempfile::tempfile().unwrap();
        assert!(api_version(&f).is_err());
        assert!(region_info(&f, 0).is_err());
        assert!(map_dma(&f, 0x1000, 0x1000, 0x1000).is_err());
    }
}
