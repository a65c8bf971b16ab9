//! The sysfs side of the backends against a fake tree: device lookup, id checks, the claim,
//! the bind refusal and the files the bind / give-back dance writes, and the errors'
//! messages.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use microdriver_hal::sysfs::{normalize_addr, parse_id, BindOutcome, Sysfs, UserDriver};
use microdriver_hal::{open_at, Claim, HalError as UioError, OpenOptions, Roots};

const UIO: UserDriver = UserDriver::Uio;

/// The ids the e1000 driver accepts (its daemon passes them as `OpenOptions::ids`).
const E1000_IDS: [(u16, u16, &str); 3] = [
    (0x8086, 0x100E, "82540EM"),
    (0x8086, 0x100F, "82545EM"),
    (0x8086, 0x100C, "82544GC"),
];

fn roots(t: &Path, sysfs: Sysfs) -> Roots {
    Roots {
        sysfs,
        dev: t.join("dev"),
        proc: t.join("proc"),
        locks: t.join("run"),
        require_root: false,
    }
}

fn e1000_opts() -> OpenOptions {
    OpenOptions {
        ids: E1000_IDS.to_vec(),
        ..OpenOptions::new(UIO)
    }
}

const ADDR: &str = "0000:00:03.0";

/// A fake /sys with one PCI function `ADDR` of the given ids, optionally bound to `driver`,
/// with or without the uio_pci_generic driver directory.
fn fake(root: &Path, ids: (&str, &str), driver: Option<&str>, uio_loaded: bool) -> Sysfs {
    let dev = root.join("bus/pci/devices").join(ADDR);
    fs::create_dir_all(&dev).unwrap();
    fs::write(dev.join("vendor"), format!("{}\n", ids.0)).unwrap();
    fs::write(dev.join("class"), "0x020000\n").unwrap();
    fs::write(dev.join("device"), format!("{}\n", ids.1)).unwrap();
    fs::write(dev.join("driver_override"), "").unwrap();
    fs::write(dev.join("config"), [0u8; 256]).unwrap();
    fs::write(root.join("bus/pci/drivers_probe"), "").unwrap();
    let drivers = root.join("bus/pci/drivers");
    if let Some(d) = driver {
        fs::create_dir_all(drivers.join(d)).unwrap();
        fs::write(drivers.join(d).join("unbind"), "").unwrap();
        fs::write(drivers.join(d).join("bind"), "").unwrap();
        symlink(drivers.join(d), dev.join("driver")).unwrap();
    }
    if uio_loaded && driver != Some("uio_pci_generic") {
        let u = drivers.join("uio_pci_generic");
        fs::create_dir_all(&u).unwrap();
        for f in ["bind", "unbind", "new_id", "remove_id"] {
            fs::write(u.join(f), "").unwrap();
        }
    }
    Sysfs::at(root)
}

#[test]
fn addresses_are_normalised_or_refused() {
    assert_eq!(normalize_addr("00:03.0").unwrap(), ADDR);
    assert_eq!(normalize_addr("0000:00:03.0").unwrap(), ADDR);
    assert_eq!(normalize_addr(" 0000:0A:1f.7\n").unwrap(), "0000:0a:1f.7");
    for bad in [
        "",
        "03.0",
        "00:03",
        "00:20.0",
        "00:03.8",
        "zz:03.0",
        "1:2:3:4.0",
        "00:03.0.1",
    ] {
        let e = normalize_addr(bad).unwrap_err();
        assert!(matches!(e, UioError::BadAddress(_)), "{bad}: {e}");
        assert!(e.to_string().contains("lspci -D"), "{e}");
    }
}

#[test]
fn ids_parse() {
    assert_eq!(parse_id("0x8086\n"), Some(0x8086));
    assert_eq!(parse_id("0x100e"), Some(0x100E));
    assert_eq!(parse_id("8086"), None);
    assert_eq!(parse_id("0xzz"), None);
}

#[test]
fn supported_device_is_found_and_its_driver_read() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(t.path(), ("0x8086", "0x100e"), Some("e1000"), true);
    assert_eq!(s.ids(ADDR).unwrap(), (0x8086, 0x100E));
    assert_eq!(s.driver(ADDR).as_deref(), Some("e1000"));
    let list = s.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].class, 0x020000);
    assert_eq!(list[0].driver.as_deref(), Some("e1000"));
}

#[test]
fn missing_device_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(t.path(), ("0x8086", "0x100e"), None, true);
    let e = s.device("0000:00:04.0").unwrap_err();
    assert!(matches!(e, UioError::NoSuchDevice { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("0000:00:04.0") && msg.contains("lspci"),
        "{msg}"
    );
}

#[test]
fn wrong_ids_are_refused_with_the_supported_list() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(t.path(), ("0x8086", "0x10d3"), Some("e1000e"), true);
    let r = roots(t.path(), s);
    let e = open_at(&r, ADDR, &e1000_opts()).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, UioError::WrongIds { device: 0x10D3, .. }),
        "{msg}"
    );
    for want in [
        "8086:10d3",
        "8086:100e 82540EM",
        "8086:100f 82545EM",
        "8086:100c 82544GC",
    ] {
        assert!(msg.contains(want), "{msg} lacks {want}");
    }
    // The ids are checked before anything is touched, even with force.
    let forced = OpenOptions {
        force: true,
        ..e1000_opts()
    };
    assert!(matches!(
        open_at(&r, ADDR, &forced),
        Err(UioError::WrongIds { .. })
    ));
    let unbind = t.path().join("bus/pci/drivers/e1000e/unbind");
    assert_eq!(fs::read_to_string(unbind).unwrap(), "");
}

#[test]
fn all_three_qemu_variants_are_accepted() {
    for dev in ["0x100e", "0x100f", "0x100c"] {
        let t = tempfile::tempdir().unwrap();
        let s = fake(t.path(), ("0x8086", dev), Some("e1000"), true);
        let r = roots(t.path(), s);
        // Accepted ids get as far as the bind refusal (the kernel's e1000 holds it).
        let e = open_at(&r, ADDR, &e1000_opts()).unwrap_err();
        assert!(matches!(e, UioError::HeldByDriver { .. }), "{dev}: {e}");
    }
}

#[test]
fn a_device_held_by_another_driver_is_refused_without_force() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(t.path(), ("0x8086", "0x100e"), Some("e1000"), true);
    let net = t.path().join("bus/pci/devices").join(ADDR).join("net/eth0");
    fs::create_dir_all(&net).unwrap();
    fs::write(net.join("flags"), "0x1003\n").unwrap();
    let e = s.bind(ADDR, UIO, false).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("network interface eth0 (up)"), "{msg}");
    assert!(
        matches!(e, UioError::HeldByDriver { ref driver, .. } if driver == "e1000"),
        "{msg}"
    );
    assert!(msg.contains("--force"), "{msg}");
    // Nothing was written.
    let unbind = t.path().join("bus/pci/drivers/e1000/unbind");
    assert_eq!(fs::read_to_string(unbind).unwrap(), "");
}

#[test]
fn force_unbinds_and_binds_through_driver_override() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(t.path(), ("0x8086", "0x100e"), Some("e1000"), true);
    // The fake kernel does not react to the writes, so the final check fails; the writes
    // are what a real kernel acts on.
    let e = s.bind(ADDR, UIO, true).unwrap_err();
    assert!(matches!(e, UioError::NotBound { .. }), "{e}");
    let p = t.path().join("bus/pci");
    assert_eq!(
        fs::read_to_string(p.join("drivers/e1000/unbind")).unwrap(),
        ADDR
    );
    assert_eq!(
        fs::read_to_string(p.join("devices").join(ADDR).join("driver_override")).unwrap(),
        "uio_pci_generic"
    );
    assert_eq!(
        fs::read_to_string(p.join("drivers/uio_pci_generic/bind")).unwrap(),
        ADDR
    );
    assert_eq!(
        fs::read_to_string(p.join("drivers/uio_pci_generic/new_id")).unwrap(),
        ""
    );
}

#[test]
fn without_driver_override_new_id_is_used() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(t.path(), ("0x8086", "0x100f"), None, true);
    fs::remove_file(
        t.path()
            .join("bus/pci/devices")
            .join(ADDR)
            .join("driver_override"),
    )
    .unwrap();
    assert!(s.bind(ADDR, UIO, false).is_err());
    let u = t.path().join("bus/pci/drivers/uio_pci_generic");
    assert_eq!(fs::read_to_string(u.join("new_id")).unwrap(), "8086 100f");
    assert_eq!(fs::read_to_string(u.join("bind")).unwrap(), ADDR);
}

#[test]
fn already_bound_is_not_touched() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(
        t.path(),
        ("0x8086", "0x100e"),
        Some("uio_pci_generic"),
        true,
    );
    assert_eq!(s.bind(ADDR, UIO, false).unwrap(), BindOutcome::AlreadyBound);
}

#[test]
fn missing_uio_module_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(t.path(), ("0x8086", "0x100e"), None, false);
    let e = s.bind(ADDR, UIO, false).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, UioError::DriverModuleMissing { .. }), "{msg}");
    assert!(msg.contains("modprobe uio_pci_generic"), "{msg}");
}

#[test]
fn unbind_gives_the_device_back() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(
        t.path(),
        ("0x8086", "0x100e"),
        Some("uio_pci_generic"),
        true,
    );
    // The fake kernel leaves the link in place, so the driver still reads as uio.
    assert_eq!(
        s.release(ADDR, None).unwrap().as_deref(),
        Some("uio_pci_generic")
    );
    let p = t.path().join("bus/pci");
    assert_eq!(
        fs::read_to_string(p.join("drivers/uio_pci_generic/unbind")).unwrap(),
        ADDR
    );
    assert_eq!(
        fs::read_to_string(p.join("devices").join(ADDR).join("driver_override")).unwrap(),
        "\n"
    );
    assert_eq!(fs::read_to_string(p.join("drivers_probe")).unwrap(), ADDR);
}

#[test]
fn uio_node_is_found_or_reported() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(
        t.path(),
        ("0x8086", "0x100e"),
        Some("uio_pci_generic"),
        true,
    );
    let e = s.uio_node(ADDR).unwrap_err();
    assert!(matches!(e, UioError::NoUioNode { .. }), "{e}");
    assert!(e.to_string().contains("dmesg"), "{e}");
    let u = t.path().join("bus/pci/devices").join(ADDR).join("uio");
    fs::create_dir_all(u.join("uio3")).unwrap();
    fs::create_dir_all(u.join("power")).unwrap();
    assert_eq!(s.uio_node(ADDR).unwrap(), "uio3");
}

#[test]
fn open_without_bind_refuses_an_unbound_device() {
    let t = tempfile::tempdir().unwrap();
    let roots = roots(
        t.path(),
        fake(t.path(), ("0x8086", "0x100e"), Some("e1000"), true),
    );
    let opts = OpenOptions {
        bind: false,
        ..e1000_opts()
    };
    let e = open_at(&roots, "00:03.0", &opts).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, UioError::NotBound { .. }), "{msg}");
    assert!(
        msg.contains("microdriver-bind --driver uio_pci_generic 0000:00:03.0"),
        "{msg}"
    );
    // With bind but no force: refused, naming the driver.
    let e = open_at(&roots, "00:03.0", &e1000_opts()).unwrap_err();
    assert!(
        e.to_string().contains("in use by the `e1000` driver"),
        "{e}"
    );
}

#[test]
fn error_messages_say_what_to_do() {
    let cases: Vec<(UioError, &str)> = vec![
        (UioError::NotRoot { uid: 1000 }, "sudo"),
        (UioError::PagemapZeroFrames, "CAP_SYS_ADMIN"),
        (
            UioError::NoHugepages {
                detail: "HugePages_Free 0".into(),
            },
            "nr_hugepages",
        ),
        (
            UioError::MapBar {
                addr: ADDR.into(),
                path: "/sys/x/resource0".into(),
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            },
            "unbind it",
        ),
    ];
    for (e, want) in cases {
        let msg = e.to_string();
        assert!(msg.contains(want), "{msg} lacks {want}");
    }
}

#[test]
fn a_claimed_device_is_refused_before_anything_changes() {
    let t = tempfile::tempdir().unwrap();
    let r = roots(
        t.path(),
        fake(t.path(), ("0x8086", "0x100e"), Some("e1000"), true),
    );
    let held = Claim::take(&r.locks, ADDR).unwrap();
    let forced = OpenOptions {
        force: true,
        ..e1000_opts()
    };
    let e = open_at(&r, "00:03.0", &forced).unwrap_err();
    assert!(
        matches!(e, UioError::Claimed { pid: Some(p), .. } if p == std::process::id()),
        "{e}"
    );
    assert!(e.to_string().contains("claimed by process"), "{e}");
    // The bind helper refuses it too, whatever the flags.
    let e = microdriver_hal::bind(&r, ADDR, UIO, true).unwrap_err();
    assert!(matches!(e, UioError::Claimed { .. }), "{e}");
    let e = microdriver_hal::release(&r, ADDR, None).unwrap_err();
    assert!(matches!(e, UioError::Claimed { .. }), "{e}");
    let p = t.path().join("bus/pci");
    assert_eq!(
        fs::read_to_string(p.join("drivers/e1000/unbind")).unwrap(),
        ""
    );
    assert_eq!(
        fs::read_to_string(p.join("devices").join(ADDR).join("driver_override")).unwrap(),
        ""
    );
    drop(held);
}

#[test]
fn giving_back_binds_the_previous_driver_and_clears_the_override() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(
        t.path(),
        ("0x8086", "0x100e"),
        Some("uio_pci_generic"),
        true,
    );
    let e1000 = t.path().join("bus/pci/drivers/e1000");
    fs::create_dir_all(&e1000).unwrap();
    fs::write(e1000.join("bind"), "").unwrap();
    s.release(ADDR, Some("e1000")).unwrap();
    let p = t.path().join("bus/pci");
    assert_eq!(
        fs::read_to_string(p.join("drivers/uio_pci_generic/unbind")).unwrap(),
        ADDR
    );
    assert_eq!(
        fs::read_to_string(p.join("devices").join(ADDR).join("driver_override")).unwrap(),
        "\n"
    );
    assert_eq!(fs::read_to_string(e1000.join("bind")).unwrap(), ADDR);
    // The previous driver's bind file was used, not a generic probe.
    assert_eq!(fs::read_to_string(p.join("drivers_probe")).unwrap(), "");
}

#[test]
fn vfio_needs_an_iommu_group() {
    let t = tempfile::tempdir().unwrap();
    let r = roots(
        t.path(),
        fake(t.path(), ("0x8086", "0x100e"), Some("vfio-pci"), true),
    );
    let opts = OpenOptions {
        ids: E1000_IDS.to_vec(),
        ..OpenOptions::new(UserDriver::Vfio)
    };
    let e = open_at(&r, ADDR, &opts).unwrap_err();
    assert!(matches!(e, UioError::NoIommuGroup { .. }), "{e}");
    assert!(e.to_string().contains("intel_iommu=on"), "{e}");
    // The claim was given back with the failed open.
    Claim::take(&r.locks, ADDR).expect("free after a failed open");
}
