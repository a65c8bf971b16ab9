//! ethtool's feature flags (`ethtool -k` / `-K`) as Linux's e1000 offers them on the
//! 82540EM, 82545EM and 82544GC.
//!
//! | feature                    | changeable | what it does here                                   |
//! |----------------------------|------------|-----------------------------------------------------|
//! | `rx-checksumming`          | yes        | RXCSUM.IPOFLD/TUOFLD and checksum status up the hot path |
//! | `tx-checksumming`          | yes        | checksum insertion offered to the stack             |
//! | `scatter-gather`           | yes        | multi-fragment packets offered to the stack         |
//! | `tcp-segmentation-offload` | yes        | TSO offered to the stack                            |
//! | `rx-vlan-offload`          | yes        | CTRL.VME (tag stripping, and insertion)             |
//! | `tx-vlan-offload`          | fixed      | follows `rx-vlan-offload`: CTRL.VME does both       |
//! | `rx-vlan-filter`           | fixed, on  | RCTL.VFE while VLAN ids are set (not promiscuous)  |
//! | `rx-fcs`                   | yes        | RCTL.SECRC clear: frames keep their 4-byte FCS      |
//! | `rx-all`                   | fixed, off | see [`RX_ALL_FIXED`]                                |
//!
//! A transmit offload that is off is enforced by the kernel half, not only left unoffered:
//! transmit refuses a packet that asks for it ([`tx_offloads`] into
//! [`HotParams::tx_offloads`](crate::kernel::HotParams)), rather than send it otherwise
//! than asked (with CTRL.VME clear, for one, the part would send a tagged request
//! untagged).
//!
//! Dependencies are Linux's (`netdev_fix_features`): TCP segmentation needs scatter-gather
//! and transmit checksumming. Turning either off while TSO is on leaves TSO *requested* but
//! off (`[requested on]`), and it comes back when its dependencies do; asking for TSO while
//! one of them is off is refused. `tx-vlan-offload` follows `rx-vlan-offload` (Linux's
//! `e1000_fix_features`: the part has one bit for both). A request is checked whole before
//! anything changes: an unknown name, a name given twice, a fixed feature asked to change
//! or TSO without its dependencies refuses it all.
//!
//! Receive changes (`rx-checksumming`, `rx-fcs`) re-initialise a running interface (close
//! and open), as Linux's e1000 does for its receive features: RXCSUM and RCTL are
//! programmed with the receiver stopped and the hot path gets its new parameters before
//! the receiver runs again.

use microdriver_rt::Marshal;

use crate::adapter::{Adapter, Config};
use crate::config;
use crate::error::DriverError;
use crate::frame::tx_offload;
use crate::kernel;

/// The transmit offloads offered to the stack and the receive FCS setting (the part of the
/// feature flags that lives in neither [`Config::rx_csum`] nor [`Config::vlan_offload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub struct Offloads {
    /// Checksum insertion (`tx-checksumming`).
    pub tx_csum: bool,
    /// Multi-fragment packets (`scatter-gather`).
    pub sg: bool,
    /// TCP segmentation is *requested* (`tcp-segmentation-offload`); it is on only with
    /// `sg` and `tx_csum` ([`tso_active`]).
    pub tso: bool,
    /// Keep the FCS on received frames (`rx-fcs`: RCTL.SECRC clear).
    pub rx_fcs: bool,
}

impl Default for Offloads {
    fn default() -> Self {
        Self {
            tx_csum: true,
            sg: true,
            tso: true,
            rx_fcs: false,
        }
    }
}

/// The feature flags, in the order `ethtool -k` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// `rx-checksumming`.
    RxChecksumming,
    /// `tx-checksumming`.
    TxChecksumming,
    /// `scatter-gather`.
    ScatterGather,
    /// `tcp-segmentation-offload`.
    TcpSegmentation,
    /// `rx-vlan-offload`.
    RxVlanOffload,
    /// `tx-vlan-offload`.
    TxVlanOffload,
    /// `rx-vlan-filter`.
    RxVlanFilter,
    /// `rx-fcs`.
    RxFcs,
    /// `rx-all`.
    RxAll,
}

/// Why `rx-all` is fixed off: storing bad packets (RCTL.SBP) would make the hardware pass
/// frames with CRC and other receive errors, which the kernel half's receive clean drops
/// (and counts as errors) before they reach the stack: the feature would deliver nothing.
pub const RX_ALL_FIXED: &str = "the kernel half drops frames with receive errors, so storing \
     bad packets (RCTL.SBP) would deliver nothing";

impl Feature {
    /// Every feature, in `ethtool -k` order.
    pub const ALL: [Feature; 9] = [
        Feature::RxChecksumming,
        Feature::TxChecksumming,
        Feature::ScatterGather,
        Feature::TcpSegmentation,
        Feature::RxVlanOffload,
        Feature::TxVlanOffload,
        Feature::RxVlanFilter,
        Feature::RxFcs,
        Feature::RxAll,
    ];

    /// The name `ethtool -k` prints.
    pub fn name(self) -> &'static str {
        match self {
            Feature::RxChecksumming => "rx-checksumming",
            Feature::TxChecksumming => "tx-checksumming",
            Feature::ScatterGather => "scatter-gather",
            Feature::TcpSegmentation => "tcp-segmentation-offload",
            Feature::RxVlanOffload => "rx-vlan-offload",
            Feature::TxVlanOffload => "tx-vlan-offload",
            Feature::RxVlanFilter => "rx-vlan-filter",
            Feature::RxFcs => "rx-fcs",
            Feature::RxAll => "rx-all",
        }
    }

    /// The short name `ethtool -K` also takes (`rx`, `tx`, `sg`, `tso`, `rxvlan`,
    /// `txvlan`; the others have none).
    pub fn alias(self) -> Option<&'static str> {
        match self {
            Feature::RxChecksumming => Some("rx"),
            Feature::TxChecksumming => Some("tx"),
            Feature::ScatterGather => Some("sg"),
            Feature::TcpSegmentation => Some("tso"),
            Feature::RxVlanOffload => Some("rxvlan"),
            Feature::TxVlanOffload => Some("txvlan"),
            _ => None,
        }
    }

    /// The feature called `name` (its ethtool name or short name).
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL
            .into_iter()
            .find(|f| f.name() == name || f.alias() == Some(name))
    }

    /// Why the feature cannot be changed, or `None` if it can.
    pub fn fixed(self) -> Option<&'static str> {
        match self {
            Feature::TxVlanOffload => Some(
                "it follows rx-vlan-offload (CTRL.VME both strips and inserts tags): change that",
            ),
            Feature::RxVlanFilter => {
                Some("the VLAN filter (RCTL.VFE) is on whenever VLAN ids are configured and the interface is not promiscuous")
            }
            Feature::RxAll => Some(RX_ALL_FIXED),
            _ => None,
        }
    }
}

/// The settings the feature flags are made of: what is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wanted {
    rx_csum: bool,
    vlan_offload: bool,
    off: Offloads,
}

impl Wanted {
    fn of(c: &Config) -> Self {
        Self {
            rx_csum: c.rx_csum,
            vlan_offload: c.vlan_offload,
            off: c.offloads,
        }
    }

    /// The feature's value (in force, after the dependencies).
    fn value(&self, f: Feature) -> bool {
        match f {
            Feature::RxChecksumming => self.rx_csum,
            Feature::TxChecksumming => self.off.tx_csum,
            Feature::ScatterGather => self.off.sg,
            Feature::TcpSegmentation => tso_active(&self.off),
            Feature::RxVlanOffload | Feature::TxVlanOffload => self.vlan_offload,
            Feature::RxVlanFilter => true,
            Feature::RxFcs => self.off.rx_fcs,
            Feature::RxAll => false,
        }
    }

    /// The feature's requested value (differs from [`Wanted::value`] only for TSO).
    fn requested(&self, f: Feature) -> bool {
        match f {
            Feature::TcpSegmentation => self.off.tso,
            _ => self.value(f),
        }
    }

    /// Sets a changeable feature.
    fn set(&mut self, f: Feature, on: bool) {
        match f {
            Feature::RxChecksumming => self.rx_csum = on,
            Feature::TxChecksumming => self.off.tx_csum = on,
            Feature::ScatterGather => self.off.sg = on,
            Feature::TcpSegmentation => self.off.tso = on,
            Feature::RxVlanOffload => self.vlan_offload = on,
            Feature::RxFcs => self.off.rx_fcs = on,
            Feature::TxVlanOffload | Feature::RxVlanFilter | Feature::RxAll => {}
        }
    }
}

/// TCP segmentation is in force: requested, with scatter-gather and transmit checksumming
/// (Linux drops TSO without either).
pub fn tso_active(o: &Offloads) -> bool {
    o.tso && o.sg && o.tx_csum
}

/// The transmit offloads in force, as the kernel half enforces them
/// ([`HotParams::tx_offloads`](crate::kernel::HotParams)).
pub fn tx_offloads(c: &Config) -> u32 {
    let o = &c.offloads;
    tx_offload::bits(o.tx_csum, o.sg, tso_active(o), c.vlan_offload)
}

/// Bytes received frames carry beyond [`Adapter::max_frame`]: the FCS when `rx-fcs` keeps
/// it (RCTL.SECRC clear), else none.
pub fn rx_fcs_len(c: &Config) -> u32 {
    if c.offloads.rx_fcs {
        4
    } else {
        0
    }
}

/// One feature as `ethtool -k` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct FeatureState {
    /// Its ethtool name.
    pub name: String,
    /// In force.
    pub on: bool,
    /// Requested (differs from `on` when a dependency holds it off: `[requested on]`).
    pub requested: bool,
    /// Cannot be changed (`[fixed]`).
    pub fixed: bool,
}

/// One change `ethtool -K` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct FeatureRequest {
    /// The feature's ethtool name or short name.
    pub name: String,
    /// On or off.
    pub on: bool,
}

impl FeatureRequest {
    /// A request to turn `name` on or off.
    pub fn new(name: &str, on: bool) -> Self {
        Self {
            name: name.into(),
            on,
        }
    }
}

/// The feature flags of `a`, in `ethtool -k` order.
pub fn list(a: &Adapter) -> Vec<FeatureState> {
    let w = Wanted::of(&a.conf);
    Feature::ALL
        .into_iter()
        .map(|f| FeatureState {
            name: f.name().into(),
            on: w.value(f),
            requested: w.requested(f),
            fixed: f.fixed().is_some(),
        })
        .collect()
}

fn refuse(f: &str, why: impl Into<String>) -> DriverError {
    DriverError::invalid(&format!("feature {f}"), why)
}

/// Checks a whole request against the current settings and returns the settings it asks
/// for; nothing is changed.
fn plan(cur: Wanted, req: &[FeatureRequest]) -> Result<Wanted, DriverError> {
    let mut seen: Vec<Feature> = Vec::new();
    let mut new = cur;
    for r in req {
        let f = Feature::from_name(&r.name).ok_or_else(|| {
            let names: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
            refuse(
                &r.name,
                format!("unknown; the e1000 has {}", names.join(", ")),
            )
        })?;
        if seen.contains(&f) {
            return Err(refuse(f.name(), "given twice"));
        }
        seen.push(f);
        new.set(f, r.on);
    }
    for r in req {
        let Some(f) = Feature::from_name(&r.name) else {
            continue;
        };
        if let Some(why) = f.fixed() {
            if new.value(f) != r.on {
                let state = if new.value(f) { "on" } else { "off" };
                return Err(refuse(f.name(), format!("fixed ({state}): {why}")));
            }
        }
        if f == Feature::TcpSegmentation && r.on && !tso_active(&new.off) {
            return Err(refuse(
                f.name(),
                "needs scatter-gather and tx-checksumming on (turn them on in the same request)",
            ));
        }
    }
    Ok(new)
}

/// Applies `ethtool -K`: checks the whole request (see the module docs), then programs what
/// changed. Returns the feature flags afterwards.
pub fn set(a: &mut Adapter, req: &[FeatureRequest]) -> Result<Vec<FeatureState>, DriverError> {
    let old = Wanted::of(&a.conf);
    let new = plan(old, req)?;
    if let Err(e) = apply(a, old, new) {
        // Put the configuration back; a running interface is reprogrammed from it the
        // next time it opens or resets.
        (a.conf.rx_csum, a.conf.vlan_offload, a.conf.offloads) =
            (old.rx_csum, old.vlan_offload, old.off);
        return Err(e);
    }
    Ok(list(a))
}

fn apply(a: &mut Adapter, old: Wanted, new: Wanted) -> Result<(), DriverError> {
    if new.vlan_offload != old.vlan_offload {
        config::set_vlan_offload(a, new.vlan_offload)?;
    }
    // What the kernel half holds now (set_vlan_offload has just pushed any change of its).
    let held = config::hot_params(a);
    a.conf.offloads.tx_csum = new.off.tx_csum;
    a.conf.offloads.sg = new.off.sg;
    a.conf.offloads.tso = new.off.tso;
    let rx_changed = new.rx_csum != old.rx_csum || new.off.rx_fcs != old.off.rx_fcs;
    if rx_changed {
        a.conf.rx_csum = new.rx_csum;
        a.conf.offloads.rx_fcs = new.off.rx_fcs;
        if a.up {
            // Close and open: RXCSUM, RCTL and the hot path's parameters are programmed
            // again from the configuration.
            return config::reinit(a);
        }
    }
    let hot = config::hot_params(a);
    if hot != held {
        kernel::set_hot_params(a.dev, &hot)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur() -> Wanted {
        Wanted::of(&Config::default())
    }

    #[test]
    fn names_and_aliases_resolve() {
        for f in Feature::ALL {
            assert_eq!(Feature::from_name(f.name()), Some(f));
            if let Some(a) = f.alias() {
                assert_eq!(Feature::from_name(a), Some(f));
            }
        }
        assert_eq!(Feature::from_name("gro"), None);
    }

    #[test]
    fn tso_follows_its_dependencies() {
        let w = plan(cur(), &[FeatureRequest::new("sg", false)]).expect("sg off");
        assert!(!w.value(Feature::TcpSegmentation) && w.requested(Feature::TcpSegmentation));
        let back = plan(w, &[FeatureRequest::new("sg", true)]).expect("sg on");
        assert!(
            back.value(Feature::TcpSegmentation),
            "TSO comes back with sg"
        );
        let e = plan(w, &[FeatureRequest::new("tso", true)]).expect_err("tso without sg");
        assert!(e.to_string().contains("scatter-gather"), "{e}");
        let both = plan(
            w,
            &[
                FeatureRequest::new("tso", true),
                FeatureRequest::new("scatter-gather", true),
            ],
        )
        .expect("tso and sg together");
        assert!(both.value(Feature::TcpSegmentation));
    }

    #[test]
    fn fixed_features_refuse_changes_but_accept_their_value() {
        let e = plan(cur(), &[FeatureRequest::new("rx-all", true)]).expect_err("rx-all");
        assert!(e.to_string().contains("rx-all") && e.to_string().contains("fixed"));
        assert!(plan(cur(), &[FeatureRequest::new("rx-vlan-filter", false)]).is_err());
        assert!(plan(cur(), &[FeatureRequest::new("rx-vlan-filter", true)]).is_ok());
        assert!(plan(cur(), &[FeatureRequest::new("txvlan", false)]).is_err());
        let w = plan(
            cur(),
            &[
                FeatureRequest::new("rxvlan", false),
                FeatureRequest::new("txvlan", false),
            ],
        )
        .expect("tx-vlan-offload following rx-vlan-offload");
        assert!(!w.value(Feature::TxVlanOffload));
    }

    #[test]
    fn bad_requests_name_the_feature() {
        let e = plan(cur(), &[FeatureRequest::new("warp-drive", true)]).expect_err("unknown");
        assert!(e.to_string().contains("warp-drive"), "{e}");
        let e = plan(
            cur(),
            &[
                FeatureRequest::new("rx", false),
                FeatureRequest::new("rx-checksumming", true),
            ],
        )
        .expect_err("twice");
        assert!(
            e.to_string().contains("rx-checksumming: given twice"),
            "{e}"
        );
    }
}
