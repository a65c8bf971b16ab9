//! The sysfs side of the backend against a fake tree: device lookup, id checks, the bind
//! refusal and the files the bind / unbind dance writes, and the errors' messages.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use e1000_uio::sysfs::{normalize_addr, parse_id, BindOutcome, Sysfs};
use e1000_uio::{open_at, Roots, UioError, UioOptions};

const ADDR: &str = "0000:00:03.0";

/// A fake /sys with one PCI function `ADDR` of the given ids, optionally bound to `driver`,
/// with or without the uio_pci_generic driver directory.
fn fake(root: &Path, ids: (&str, &str), driver: Option<&str>, uio_loaded: bool) -> Sysfs {
    let dev = root.join("bus/pci/devices").join(ADDR);
    fs::create_dir_all(&dev).unwrap();
    fs::write(dev.join("vendor"), format!("{}\n", ids.0)).unwrap();
    fs::write(dev.join("device"), format!("{}\n", ids.1)).unwrap();
    fs::write(dev.join("driver_override"), "").unwrap();
    fs::write(dev.join("config"), [0u8; 256]).unwrap();
    fs::write(root.join("bus/pci/drivers_probe"), "").unwrap();
    let drivers = root.join("bus/pci/drivers");
    if let Some(d) = driver {
        fs::create_dir_all(drivers.join(d)).unwrap();
        fs::write(drivers.join(d).join("unbind"), "").unwrap();
        symlink(drivers.join(d), dev.join("driver")).unwrap();
    }
    if uio_loaded {
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
    assert_eq!(s.check_device(ADDR).unwrap(), (0x8086, 0x100E));
    assert_eq!(s.driver(ADDR).as_deref(), Some("e1000"));
}

#[test]
fn missing_device_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(t.path(), ("0x8086", "0x100e"), None, true);
    let e = s.check_device("0000:00:04.0").unwrap_err();
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
    let s = fake(t.path(), ("0x8086", "0x10d3"), None, true);
    let e = s.check_device(ADDR).unwrap_err();
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
    // bind checks the ids before touching anything.
    assert!(matches!(s.bind(ADDR, true), Err(UioError::WrongIds { .. })));
}

#[test]
fn all_three_qemu_variants_are_accepted() {
    for dev in ["0x100e", "0x100f", "0x100c"] {
        let t = tempfile::tempdir().unwrap();
        let s = fake(t.path(), ("0x8086", dev), None, true);
        assert!(s.check_device(ADDR).is_ok(), "{dev}");
    }
}

#[test]
fn a_device_held_by_another_driver_is_refused_without_force() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(t.path(), ("0x8086", "0x100e"), Some("e1000"), true);
    let e = s.bind(ADDR, false).unwrap_err();
    let msg = e.to_string();
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
    let e = s.bind(ADDR, true).unwrap_err();
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
    assert!(s.bind(ADDR, false).is_err());
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
    assert_eq!(s.bind(ADDR, false).unwrap(), BindOutcome::AlreadyBound);
}

#[test]
fn missing_uio_module_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let s = fake(t.path(), ("0x8086", "0x100e"), None, false);
    let e = s.bind(ADDR, false).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, UioError::UioModuleMissing { .. }), "{msg}");
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
    assert_eq!(s.unbind(ADDR).unwrap().as_deref(), Some("uio_pci_generic"));
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
    let roots = Roots {
        sysfs: fake(t.path(), ("0x8086", "0x100e"), Some("e1000"), true),
        dev: t.path().join("dev"),
        proc: t.path().join("proc"),
        require_root: false,
    };
    let opts = UioOptions {
        bind: false,
        ..UioOptions::default()
    };
    let e = open_at(&roots, "00:03.0", &opts).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, UioError::NotBound { .. }), "{msg}");
    assert!(msg.contains("e1000-uio-bind 0000:00:03.0"), "{msg}");
    // With bind but no force: refused, naming the driver.
    let e = open_at(&roots, "00:03.0", &UioOptions::default()).unwrap_err();
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
