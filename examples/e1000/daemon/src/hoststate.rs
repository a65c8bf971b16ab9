//! The host's settings of the TAP interface reach the driver, as a kernel NIC driver gets
//! them through its `ndo_*` operations: the MTU (`change_mtu`), the MAC address
//! (`set_mac`), the promiscuous and all-multicast flags and the multicast groups
//! (`set_rx_mode_to`: RCTL.UPE/MPE, MTA hashing and extra RA entries), and the VLAN
//! devices stacked on it (`vlan_add`/`vlan_kill`: the VLAN filter).
//!
//! One thread listens on rtnetlink (`RTNLGRP_LINK`: a link was added, changed or removed)
//! and, on each notification and at least once a second, reads the links (an
//! `RTM_GETLINK` dump: the TAP's MTU, address and flags, and every VLAN link whose lower
//! device is the TAP) and the TAP's link-layer multicast list. rtnetlink has no dump of a
//! device's link-layer multicast list (IPv4/IPv6 group joins change it without a link
//! notification), so that list comes from `/proc/net/dev_mcast`, which is also why the
//! one-second read exists. What differs from what the driver has is applied, and logged.

use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use e1000::adapter::RxMode;
use e1000::netdev::Netdev;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::link::{
    InfoData, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// `RTNLGRP_LINK`.
const RTNLGRP_LINK: u32 = 1;
/// The longest wait between two reads of the host's state.
const REREAD: Duration = Duration::from_secs(1);

/// What the host has set on the TAP interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostState {
    /// The interface's MTU.
    pub mtu: u32,
    /// Its MAC address.
    pub mac: Option<[u8; 6]>,
    /// Receive filtering: promiscuous, all-multicast and the multicast groups.
    pub rx_mode: RxMode,
    /// The VLAN ids of the VLAN devices on it.
    pub vlans: BTreeSet<u16>,
}

/// Reads the state of `name` from a link dump and `dev_mcast` (the text of
/// `/proc/net/dev_mcast`); `None` if the dump has no such link.
pub fn state_of(name: &str, links: &[LinkMessage], dev_mcast: &str) -> Option<HostState> {
    let ours = links.iter().find(|l| {
        l.attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::IfName(n) if n == name))
    })?;
    let index = ours.header.index;
    let mut s = HostState {
        rx_mode: RxMode {
            promisc: ours.header.flags.contains(LinkFlags::Promisc),
            allmulti: ours.header.flags.contains(LinkFlags::Allmulti),
            ..RxMode::default()
        },
        ..HostState::default()
    };
    for a in &ours.attributes {
        match a {
            LinkAttribute::Mtu(m) => s.mtu = *m,
            LinkAttribute::Address(b) => s.mac = <[u8; 6]>::try_from(b.as_slice()).ok(),
            _ => {}
        }
    }
    for l in links {
        let on_ours = l
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Link(i) if *i == index));
        if !on_ours {
            continue;
        }
        for a in &l.attributes {
            let LinkAttribute::LinkInfo(infos) = a else {
                continue;
            };
            for i in infos {
                if let LinkInfo::Data(InfoData::Vlan(v)) = i {
                    for x in v {
                        if let InfoVlan::Id(id) = x {
                            s.vlans.insert(*id);
                        }
                    }
                }
            }
        }
    }
    s.rx_mode.multicast = multicast_of(index, dev_mcast);
    Some(s)
}

/// The multicast addresses of interface `index` in `/proc/net/dev_mcast`'s text (lines
/// `INDEX NAME USERS GLOBAL-USERS ADDRESS-IN-HEX`), sorted, without repeats.
pub fn multicast_of(index: u32, dev_mcast: &str) -> Vec<[u8; 6]> {
    let mut out: Vec<[u8; 6]> = dev_mcast
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() != 5 || f[0].parse::<u32>().ok()? != index || f[4].len() != 12 {
                return None;
            }
            let mut mac = [0u8; 6];
            for (i, b) in mac.iter_mut().enumerate() {
                *b = u8::from_str_radix(f[4].get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            (mac[0] & 1 == 1).then_some(mac)
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Errors of the rtnetlink side.
#[derive(Debug, thiserror::Error)]
pub enum HostStateError {
    /// A socket call failed.
    #[error("rtnetlink: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel sent something that does not parse.
    #[error("rtnetlink: cannot parse a reply: {0}")]
    Parse(String),
}

/// Every link, from one `RTM_GETLINK` dump on `sock`.
fn dump_links(sock: &Socket, seq: u32) -> Result<Vec<LinkMessage>, HostStateError> {
    let mut req = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::from(RouteNetlinkMessage::GetLink(LinkMessage::default())),
    );
    req.header.flags = NLM_F_DUMP | NLM_F_REQUEST;
    req.header.sequence_number = seq;
    req.finalize();
    let mut buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut buf);
    sock.send(&buf, 0)?;
    let mut links = Vec::new();
    let mut rx = vec![0u8; 1 << 16];
    loop {
        let n = sock.recv(&mut &mut rx[..], 0)?;
        let mut off = 0;
        while off < n {
            let msg: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(&rx[off..n])
                .map_err(|e| HostStateError::Parse(e.to_string()))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(links),
                NetlinkPayload::Error(e) => {
                    return Err(HostStateError::Parse(format!("dump refused: {e:?}")))
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => links.push(l),
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}

/// Brings the driver to `want` where it differs from what the driver has; logs each
/// change. Failures are logged; the next read tries again only if the host changes that
/// setting again (`applied` remembers what was attempted).
fn apply(nd: &Netdev, want: &HostState, applied: &mut HostState) {
    if want.mtu != applied.mtu && want.mtu != 0 {
        match nd.configure(|a| e1000::config::change_mtu(a, want.mtu)) {
            Ok(()) => tracing::info!(mtu = want.mtu, "MTU set from the host"),
            Err(e) => tracing::warn!(mtu = want.mtu, error = %e, "the host's MTU refused"),
        }
    }
    if want.mac.is_some() && want.mac != applied.mac {
        if let Some(mac) = want.mac {
            match nd.configure(|a| e1000::config::set_mac(a, mac)) {
                Ok(()) => tracing::info!(mac = %crate::format::mac(mac), "MAC set from the host"),
                Err(e) => tracing::warn!(error = %e, "the host's MAC address refused"),
            }
        }
    }
    if want.rx_mode != applied.rx_mode {
        let m = &want.rx_mode;
        match nd.configure(|a| e1000::config::set_rx_mode_to(a, m)) {
            Ok(()) => tracing::info!(
                promisc = m.promisc,
                allmulti = m.allmulti,
                groups = m.multicast.len(),
                "receive filter set from the host"
            ),
            Err(e) => tracing::warn!(error = %e, "the host's receive filter refused"),
        }
    }
    for vid in want.vlans.difference(&applied.vlans) {
        match nd.configure(|a| e1000::config::vlan_add(a, *vid)) {
            Ok(()) => tracing::info!(vid, "VLAN added to the filter"),
            Err(e) => tracing::warn!(vid, error = %e, "VLAN refused"),
        }
    }
    for vid in applied.vlans.difference(&want.vlans) {
        match nd.configure(|a| e1000::config::vlan_kill(a, *vid)) {
            Ok(()) => tracing::info!(vid, "VLAN removed from the filter"),
            Err(e) => tracing::warn!(vid, error = %e, "VLAN removal failed"),
        }
    }
    *applied = want.clone();
}

/// What the driver has now, as a [`HostState`].
fn driver_state(nd: &Netdev) -> HostState {
    nd.with_adapter(|a| HostState {
        mtu: a.conf.mtu,
        mac: Some(a.mac),
        rx_mode: a.conf.rx_mode.clone(),
        vlans: a.conf.vlans.iter().copied().collect(),
    })
}

/// The thread: follows the host's settings of `tap` until `stop`.
pub(crate) fn watch(nd: &Netdev, tap: &str, stop: &AtomicBool) {
    let open = || -> Result<(Socket, Socket), HostStateError> {
        let mut events = Socket::new(NETLINK_ROUTE)?;
        events.bind(&SocketAddr::new(0, 0))?;
        events.add_membership(RTNLGRP_LINK)?;
        events.set_non_blocking(true)?;
        let mut req = Socket::new(NETLINK_ROUTE)?;
        req.bind_auto()?;
        req.connect(&SocketAddr::new(0, 0))?;
        Ok((events, req))
    };
    let (events, req) = match open() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the TAP's settings: the host's MTU, \
                filters and VLANs will not reach the driver");
            return;
        }
    };
    let mut applied = driver_state(nd);
    let mut seq = 0u32;
    let mut scratch = vec![0u8; 1 << 16];
    while !stop.load(Ordering::Relaxed) {
        seq = seq.wrapping_add(1);
        let links = match dump_links(&req, seq) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "reading the links failed");
                Vec::new()
            }
        };
        let mcast = std::fs::read_to_string("/proc/net/dev_mcast").unwrap_or_default();
        if let Some(want) = state_of(tap, &links, &mcast) {
            if want != applied {
                apply(nd, &want, &mut applied);
            }
        }
        // Until a link notification or the re-read interval; drain what queued.
        let fd = events.as_fd();
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let ts = rustix::time::Timespec {
            tv_sec: REREAD.as_secs() as i64,
            tv_nsec: 0,
        };
        let _ = rustix::event::poll(&mut fds, Some(&ts));
        while events.recv(&mut &mut scratch[..], 0).is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multicast_list_is_parsed_for_one_interface() {
        let text = "2    eth0            1     0     333300000001\n\
                    7    e1000tap        1     0     333300000001\n\
                    7    e1000tap        1     0     3333ff123456\n\
                    7    e1000tap        1     0     01005e000001\n\
                    7    e1000tap        1     0     zz5e00000001\n\
                    7    e1000tap        1     0     0200\n\
                    7    e1000tap        1     0     020000000001\n";
        assert_eq!(
            multicast_of(7, text),
            vec![
                [0x01, 0x00, 0x5e, 0, 0, 1],
                [0x33, 0x33, 0, 0, 0, 1],
                [0x33, 0x33, 0xff, 0x12, 0x34, 0x56],
            ]
        );
        assert!(multicast_of(9, text).is_empty());
    }

    #[test]
    fn state_of_reads_the_tap_and_its_vlans() {
        let mut tap = LinkMessage::default();
        tap.header.index = 7;
        tap.header.flags = LinkFlags::Up | LinkFlags::Promisc;
        tap.attributes = vec![
            LinkAttribute::IfName("e1000tap".into()),
            LinkAttribute::Mtu(9000),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 9]),
        ];
        let mut vlan = LinkMessage::default();
        vlan.header.index = 8;
        vlan.attributes = vec![
            LinkAttribute::IfName("e1000tap.5".into()),
            LinkAttribute::Link(7),
            LinkAttribute::LinkInfo(vec![LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(5)]))]),
        ];
        let mut other = LinkMessage::default();
        other.header.index = 9;
        other.attributes = vec![
            LinkAttribute::IfName("eth0.6".into()),
            LinkAttribute::Link(2),
            LinkAttribute::LinkInfo(vec![LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(6)]))]),
        ];
        let s = state_of(
            "e1000tap",
            &[tap, vlan, other],
            "7 e1000tap 1 0 333300000001\n",
        )
        .expect("found");
        assert_eq!(s.mtu, 9000);
        assert_eq!(s.mac, Some([2, 0, 0, 0, 0, 9]));
        assert!(s.rx_mode.promisc && !s.rx_mode.allmulti);
        assert_eq!(s.rx_mode.multicast, vec![[0x33, 0x33, 0, 0, 0, 1]]);
        assert_eq!(s.vlans, BTreeSet::from([5]));
        assert!(state_of("nope", &[], "").is_none());
    }
}
