//! Unit tests: the parser, every range edge, the per-part checks and the mapping.

use super::*;

fn parse(args: &[&str]) -> Result<Params, DriverError> {
    Params::parse(args.iter().copied(), 0)
}

fn err(args: &[&str]) -> String {
    parse(args).expect_err("refused").to_string()
}

fn info(mac_type: MacType) -> DeviceInfo {
    DeviceInfo {
        mac_type,
        phy_id: crate::phy::M88E1011_ID,
        ..DeviceInfo::default()
    }
}

#[test]
fn every_name_parses_and_unknown_names_are_refused() {
    for p in Param::ALL {
        assert_eq!(Param::from_name(p.name()).expect("known"), p);
    }
    let e = err(&["txdescriptors=256"]);
    assert!(e.contains("did you mean TxDescriptors?"), "{e}");
    let e = err(&["Bogus=1"]);
    assert!(
        e.contains("Bogus") && e.contains("InterruptThrottleRate"),
        "{e}"
    );
    let e = err(&["TxDescriptors"]);
    assert!(e.contains("expected Name=value"), "{e}");
}

#[test]
fn descriptor_edges() {
    for good in [80, 88, 256, 4088, 4096] {
        let p = parse(&[&format!("TxDescriptors={good}")]).expect("good");
        assert_eq!(p.tx_descriptors, Some(good));
        let p = parse(&[&format!("RxDescriptors={good}")]).expect("good");
        assert_eq!(p.rx_descriptors, Some(good));
    }
    for bad in [0, 72, 79, 81, 100, 4095, 4097, 4104] {
        let e = err(&[&format!("TxDescriptors={bad}")]);
        assert!(
            e.contains(&format!("TxDescriptors={bad}")) && e.contains("80..=4096"),
            "{e}"
        );
    }
    let e = err(&["RxDescriptors=100"]);
    assert!(e.contains("nearest: 96 or 104"), "{e}");
    let e = err(&["RxDescriptors=4090"]);
    assert!(e.contains("nearest: 4088 or 4096"), "{e}");
}

#[test]
fn speed_duplex_autoneg_edges() {
    for s in [0, 10, 100, 1000] {
        assert_eq!(
            parse(&[&format!("Speed={s}")]).expect("speed").speed,
            Some(s)
        );
    }
    for s in [1, 11, 99, 101, 999, 1001, 10000] {
        let e = err(&[&format!("Speed={s}")]);
        assert!(
            e.contains(&format!("Speed={s}")) && e.contains("10, 100 or 1000"),
            "{e}"
        );
    }
    for d in 0..=2 {
        assert_eq!(
            parse(&[&format!("Duplex={d}")]).expect("duplex").duplex,
            Some(d)
        );
    }
    let e = err(&["Duplex=3"]);
    assert!(e.contains("Duplex=3") && e.contains("2 (full)"), "{e}");
    for an in [0x01, 0x02, 0x0F, 0x20, 0x21, 0x2F] {
        assert_eq!(
            parse(&[&format!("AutoNeg={an:#x}")]).expect("an").autoneg,
            Some(an)
        );
    }
    assert_eq!(parse(&["AutoNeg=47"]).expect("decimal").autoneg, Some(0x2F));
    for an in [0x00, 0x10, 0x11, 0x30, 0x40, 0xFF] {
        let e = err(&[&format!("AutoNeg={an:#x}")]);
        assert!(
            e.contains(&format!("AutoNeg={an:#04x}")) && e.contains("0x20"),
            "{e}"
        );
    }
    // The combinations.
    let e = err(&["Speed=100", "AutoNeg=0x08"]);
    assert!(e.contains("AutoNeg=0x08") && e.contains("Speed=100"), "{e}");
    let e = err(&["Duplex=2", "AutoNeg=0x08"]);
    assert!(e.contains("Duplex=2"), "{e}");
    parse(&["Speed=0", "Duplex=0", "AutoNeg=0x08"]).expect("auto with a mask");
    let e = err(&["Speed=1000", "Duplex=1"]);
    assert!(
        e.contains("Duplex=1") && e.contains("1000 Mb/s half duplex"),
        "{e}"
    );
    parse(&["Speed=1000", "Duplex=2"]).expect("1000/full");
    // A hand-built set gets the same checks.
    let p = Params {
        speed: Some(1000),
        duplex: Some(1),
        ..Params::default()
    };
    assert!(check(&p, &info(MacType::I82540EM)).is_err());
}

#[test]
fn flow_checksum_power_down_edges() {
    for v in 0..=3 {
        assert_eq!(
            parse(&[&format!("FlowControl={v}")])
                .expect("fc")
                .flow_control,
            Some(v)
        );
    }
    for v in [4, 255] {
        let e = err(&[&format!("FlowControl={v}")]);
        assert!(
            e.contains(&format!("FlowControl={v}")) && e.contains("3 (both)"),
            "{e}"
        );
    }
    for name in ["XsumRX", "SmartPowerDownEnable"] {
        parse(&[&format!("{name}=0")]).expect("0");
        parse(&[&format!("{name}=1")]).expect("1");
        let e = err(&[&format!("{name}=2")]);
        assert!(
            e.contains(&format!("{name}=2")) && e.contains("0 (off) or 1 (on)"),
            "{e}"
        );
    }
}

#[test]
fn delay_edges_and_units() {
    for name in ["TxIntDelay", "TxAbsIntDelay", "RxIntDelay", "RxAbsIntDelay"] {
        for good in [0, 1, 65535] {
            let p = parse(&[&format!("{name}={good}")]).expect("good");
            assert_eq!(Param::from_name(name).expect("name").get(&p), Some(good));
        }
        let e = err(&[&format!("{name}=65536")]);
        assert!(
            e.contains(&format!("{name}=65536")) && e.contains("0..=65535"),
            "{e}"
        );
    }
    // The register gets exactly the units given (the configuration keeps microseconds,
    // converted back by rounding down).
    for units in [0u32, 1, 7, 8, 32, 128, 1000, 65535] {
        let us = delay_units_to_usecs(units);
        assert_eq!((u64::from(us) * 1000 / 1024) as u32, units, "{units}");
    }
}

#[test]
fn itr_edges() {
    for good in [0, 1, 3, 100, 101, 20_000, 100_000] {
        let p = parse(&[&format!("InterruptThrottleRate={good}")]).expect("good");
        assert_eq!(p.interrupt_throttle_rate, Some(good));
    }
    for bad in [2, 5, 99, 100_001, 1_000_000] {
        let e = err(&[&format!("InterruptThrottleRate={bad}")]);
        assert!(
            e.contains(&format!("InterruptThrottleRate={bad}")) && e.contains("100..=100000"),
            "{e}"
        );
    }
    let e = err(&["InterruptThrottleRate=4"]);
    assert!(
        e.contains("simplified") && e.contains("3 is the closest"),
        "{e}"
    );
}

#[test]
fn values_lists_and_boards() {
    let args = ["TxDescriptors=512,1024", "Speed=100"];
    let b0 = Params::parse(args, 0).expect("board 0");
    let b1 = Params::parse(args, 1).expect("board 1");
    let b2 = Params::parse(args, 2).expect("board 2");
    assert_eq!((b0.tx_descriptors, b0.speed), (Some(512), Some(100)));
    assert_eq!((b1.tx_descriptors, b1.speed), (Some(1024), None));
    assert_eq!((b2.tx_descriptors, b2.speed), (None, None));
    // Every board's value is checked, not only the one used.
    let e = Params::parse(["TxDescriptors=512,100"], 0).expect_err("board 1 bad");
    assert!(e.to_string().contains("TxDescriptors=100"), "{e}");
    let e = err(&["Speed=100,,10"]);
    assert!(e.contains("a value is missing"), "{e}");
    let e = err(&["Speed=fast"]);
    assert!(
        e.contains("Speed=\"fast\"") && e.contains("not a number"),
        "{e}"
    );
    let e = err(&["Speed=-1"]);
    assert!(e.contains("not a number"), "{e}");
    let e = err(&["Speed=100", "Speed=10"]);
    assert!(e.contains("more than once"), "{e}");
    // copybreak is one value for every board.
    assert_eq!(
        Params::parse(["copybreak=128"], 3).expect("cb").copybreak,
        Some(128)
    );
    let e = err(&["copybreak=128,256"]);
    assert!(e.contains("not a list"), "{e}");
    // Round trip.
    let p = parse(&["AutoNeg=0x2F", "copybreak=0", "XsumRX=0"]).expect("parse");
    let again = Params::parse(p.to_args().iter().map(String::as_str), 0).expect("again");
    assert_eq!(again, p);
    assert!(Params::default().is_empty() && !p.is_empty());
}

#[test]
fn per_part_limits() {
    let gc = info(MacType::I82544GC);
    let em = info(MacType::I82540EM);
    for (arg, reg) in [
        ("TxAbsIntDelay=32", "TADV"),
        ("RxAbsIntDelay=8", "RADV"),
        ("InterruptThrottleRate=3", "ITR"),
        ("InterruptThrottleRate=8000", "ITR"),
    ] {
        let p = parse(&[arg]).expect("in range");
        let e = check(&p, &gc).expect_err("82544GC").to_string();
        assert!(
            e.contains(arg) && e.contains("82544GC") && e.contains(reg),
            "{e}"
        );
        assert!(check(&p, &em).expect("82540EM").is_empty());
    }
    let p = parse(&["InterruptThrottleRate=0", "RxAbsIntDelay=0"]).expect("off");
    let notes = check(&p, &gc).expect("off on 82544GC is accepted");
    assert_eq!(notes.len(), 2, "{notes:?}");
    for part in [MacType::I82540EM, MacType::I82545EM, MacType::I82544GC] {
        let e = check(&parse(&["SmartPowerDownEnable=1"]).expect("p"), &info(part))
            .expect_err("M88")
            .to_string();
        assert!(
            e.contains("SmartPowerDownEnable=1") && e.contains("IGP"),
            "{e}"
        );
        let notes = check(&parse(&["SmartPowerDownEnable=0"]).expect("p"), &info(part))
            .expect("0 is accepted");
        assert!(notes[0].contains("not applicable"), "{notes:?}");
    }
    // A hand-built Params is checked as strictly as a parsed one.
    let p = Params {
        rx_descriptors: Some(8192),
        ..Params::default()
    };
    assert!(check(&p, &em).is_err());
}

#[test]
fn apply_maps_linux_semantics() {
    let applied = |args: &[&str]| {
        let mut c = Config::default();
        apply(&parse(args).expect("parse"), &mut c).expect("apply");
        c
    };
    let c = applied(&[
        "TxDescriptors=512",
        "RxDescriptors=1024",
        "XsumRX=0",
        "copybreak=0",
    ]);
    assert_eq!(
        (c.tx_ring, c.rx_ring, c.rx_csum, c.copybreak),
        (512, 1024, false, 0)
    );
    let link = |args: &[&str]| {
        let l = applied(args).link;
        (l.autoneg, l.advertise, l.speed, l.full_duplex)
    };
    assert_eq!(link(&["AutoNeg=0x08"]), (true, ADV_100_FULL, 1000, true));
    assert_eq!(link(&["Duplex=1"]).1, ADV_10_HALF | ADV_100_HALF);
    assert_eq!(
        link(&["Duplex=2"]).1,
        ADV_10_FULL | ADV_100_FULL | ADV_1000_FULL
    );
    assert_eq!(link(&["Speed=10"]).1, ADV_10_HALF | ADV_10_FULL);
    assert_eq!(link(&["Speed=100"]).1, ADV_100_HALF | ADV_100_FULL);
    assert_eq!(link(&["Speed=1000"]), (true, ADV_1000_FULL, 1000, true));
    assert_eq!(link(&["Speed=1000", "Duplex=2"]).1, ADV_1000_FULL);
    assert_eq!(link(&["Speed=10", "Duplex=1"]), (false, ADV_ALL, 10, false));
    assert_eq!(
        link(&["Speed=100", "Duplex=2"]),
        (false, ADV_ALL, 100, true)
    );
    let pause = |fc: &str| {
        let p = applied(&[&format!("FlowControl={fc}")]).pause;
        (p.rx_pause, p.tx_pause)
    };
    assert_eq!(pause("0"), (false, false));
    assert_eq!(pause("1"), (true, false));
    assert_eq!(pause("2"), (false, true));
    assert_eq!(pause("3"), (true, true));
    let co = applied(&[
        "TxIntDelay=8",
        "TxAbsIntDelay=32",
        "RxIntDelay=0",
        "RxAbsIntDelay=128",
    ])
    .coalesce;
    assert_eq!(
        (co.tx_usecs, co.tx_abs_usecs, co.rx_usecs, co.rx_abs_usecs),
        (9, 33, 0, 132)
    );
    let itr = |v: &str| {
        let co = applied(&[&format!("InterruptThrottleRate={v}")]).coalesce;
        (co.adaptive, co.max_irq_rate)
    };
    assert_eq!(itr("0"), (false, 0));
    assert_eq!(itr("1"), (true, LOWEST_LATENCY_RATE));
    assert_eq!(itr("3"), (true, LOW_LATENCY_RATE));
    assert_eq!(itr("8000"), (false, 8000));
    // A refused set leaves the configuration as it was.
    let mut c = Config::default();
    let bad = Params {
        speed: Some(100),
        autoneg: Some(0x08),
        tx_descriptors: Some(512),
        ..Params::default()
    };
    assert!(apply(&bad, &mut c).is_err());
    assert_eq!(c, Config::default());
}
