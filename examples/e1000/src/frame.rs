//! Packets as the network stack hands them to the driver and gets them back.

use microdriver_rt::Marshal;

/// Checksum offload request for one packet (the stack's "partial checksum").
///
/// The stack seeds the TCP/UDP checksum field with the pseudo-header sum (without the
/// length for TSO, with it otherwise), as the 8254x expects (SDM 3.3.5, 3.3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub struct CsumOffload {
    /// Offset of the IP header (14, or 18 for a frame that already carries a VLAN tag).
    pub ip_start: u8,
    /// Offset of the TCP/UDP header.
    pub l4_start: u8,
    /// IPv4 (the IP header checksum is inserted too); else IPv6.
    pub ipv4: bool,
    /// TCP; else UDP.
    pub tcp: bool,
}

/// TCP segmentation offload request (needs [`CsumOffload`] with `tcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub struct TsoOffload {
    /// Maximum segment size (payload bytes per segment).
    pub mss: u16,
    /// Length of the headers (Ethernet + IP + TCP) copied into every segment.
    pub hdr_len: u8,
}

/// Offloads requested for one transmitted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub struct TxOffload {
    /// Checksum insertion.
    pub csum: Option<CsumOffload>,
    /// Segmentation.
    pub tso: Option<TsoOffload>,
    /// 802.1Q tag (PCP/CFI/VID) for the hardware to insert.
    pub vlan: Option<u16>,
}

/// A packet to transmit: one or more fragments (scatter-gather), sent back to back.
#[derive(Debug, Clone, PartialEq, Eq, Default, Marshal)]
pub struct TxPacket {
    /// The fragments, in order; their concatenation is the frame without FCS.
    pub frags: Vec<Vec<u8>>,
    /// Offloads.
    pub offload: TxOffload,
}

/// Transmit offloads, as bits of [`HotParams::tx_offloads`](crate::kernel::HotParams):
/// what the user half has turned on (ethtool's feature flags) and what a packet asks for.
pub mod tx_offload {
    /// Checksum insertion (`tx-checksumming`).
    pub const CSUM: u32 = 1 << 0;
    /// More than one fragment (`scatter-gather`).
    pub const SG: u32 = 1 << 1;
    /// TCP segmentation (`tcp-segmentation-offload`).
    pub const TSO: u32 = 1 << 2;
    /// VLAN tag insertion (`tx-vlan-offload`: CTRL.VME).
    pub const VLAN: u32 = 1 << 3;
    /// Every transmit offload.
    pub const ALL: u32 = CSUM | SG | TSO | VLAN;
    /// Each bit and its ethtool feature name.
    const NAMES: [(u32, &str); 4] = [
        (CSUM, "tx-checksumming"),
        (SG, "scatter-gather"),
        (TSO, "tcp-segmentation-offload"),
        (VLAN, "tx-vlan-offload"),
    ];

    /// The bits for the offloads given as on.
    pub fn bits(csum: bool, sg: bool, tso: bool, vlan: bool) -> u32 {
        let bit = |on: bool, b: u32| if on { b } else { 0 };
        bit(csum, CSUM) | bit(sg, SG) | bit(tso, TSO) | bit(vlan, VLAN)
    }

    /// The feature names of the bits in `bits`, comma-separated.
    pub fn names(bits: u32) -> String {
        let on: Vec<&str> = NAMES
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| *n)
            .collect();
        on.join(", ")
    }
}

impl TxPacket {
    /// The [`tx_offload`] bits this packet needs.
    pub fn offloads_used(&self) -> u32 {
        let o = &self.offload;
        tx_offload::bits(
            o.csum.is_some(),
            self.frags.len() > 1,
            o.tso.is_some(),
            o.vlan.is_some(),
        )
    }

    /// A single-fragment packet without offloads.
    pub fn new(frame: Vec<u8>) -> Self {
        Self {
            frags: vec![frame],
            offload: TxOffload::default(),
        }
    }

    /// Total length of the fragments.
    pub fn len(&self) -> usize {
        self.frags.iter().map(Vec::len).sum()
    }

    /// Whether the packet has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the hardware's receive checksum check found (SDM 3.2.3.1, 3.2.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub enum RxCsum {
    /// Not checked (IXSM, offload disabled, or not an IP/TCP/UDP packet).
    #[default]
    None,
    /// IP header checksum checked and good; no L4 check.
    IpGood,
    /// IP and TCP/UDP checksums checked and good.
    Good,
    /// A checked checksum was bad (the frame is still delivered; the stack decides).
    Bad,
}

/// A received frame.
#[derive(Debug, Clone, PartialEq, Eq, Default, Marshal)]
pub struct RxFrame {
    /// The frame without FCS (and without the VLAN tag when the hardware stripped it).
    pub data: Vec<u8>,
    /// The stripped 802.1Q tag.
    pub vlan: Option<u16>,
    /// Checksum status.
    pub csum: RxCsum,
}
