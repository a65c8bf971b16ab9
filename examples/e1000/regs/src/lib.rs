//! The 8254x register map: offsets, bitfields and descriptor layouts.
//!
//! Every name follows the *PCI/PCI-X Family of Gigabit Ethernet Controllers Software
//! Developer's Manual* (8254x SDM), chapter 13 ("Register Descriptions") for registers and
//! chapter 3 ("Receive and Transmit Description") for descriptors. Section numbers are
//! given where they were checked against the manual; otherwise the register's name (which
//! is what the manual's index uses) identifies it. Offsets are byte offsets
//! into BAR0; every register is 32 bits wide and must be accessed with aligned 32-bit
//! accesses.
//!
//! One map for the driver (`e1000`) and the device model (`e1000-sim`): see
//! docs/ARCHITECTURE.md ("Where the register map lives") for why it is shared rather than
//! kept twice. The crate holds facts from the manual only (offsets, bits, layouts); what a
//! driver does with them (which causes to enable, the statistics it keeps) is the driver's.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of the BAR0 memory window of the 8254x (128 KiB).
pub const BAR0_LEN: u32 = 0x2_0000;

// ---------------------------------------------------------------------------------------
// General registers (SDM 13.4)
// ---------------------------------------------------------------------------------------

/// Device Control (SDM 13.4).
pub const CTRL: u32 = 0x0000;
/// Device Status, read-only (SDM 13.4).
pub const STATUS: u32 = 0x0008;
/// EEPROM/Flash Control & Data (SDM 13.4).
pub const EECD: u32 = 0x0010;
/// EEPROM Read; absent on 82544GC/EI (SDM 13.4).
pub const EERD: u32 = 0x0014;
/// Extended Device Control (SDM 13.4).
pub const CTRL_EXT: u32 = 0x0018;
/// Flash Access (SDM 13.4).
pub const FLA: u32 = 0x001C;
/// MDI Control: PHY register access (SDM 13.4).
pub const MDIC: u32 = 0x0020;
/// Flow Control Address Low (SDM 13.4).
pub const FCAL: u32 = 0x0028;
/// Flow Control Address High (SDM 13.4).
pub const FCAH: u32 = 0x002C;
/// Flow Control Type (SDM 13.4).
pub const FCT: u32 = 0x0030;
/// VLAN Ether Type (SDM 13.4).
pub const VET: u32 = 0x0038;
/// Flow Control Transmit Timer Value (SDM 13.4).
pub const FCTTV: u32 = 0x0170;
/// Transmit Configuration Word (SDM 13.4), TBI mode only.
pub const TXCW: u32 = 0x0178;
/// Receive Configuration Word (SDM 13.4), TBI mode only.
pub const RXCW: u32 = 0x0180;
/// LED Control (SDM 13.4).
pub const LEDCTL: u32 = 0x0E00;
/// Packet Buffer Allocation (SDM 13.4).
pub const PBA: u32 = 0x1000;

/// PBA fields (SDM 13.4.16): RXA (bits 6:0, KB, a multiple of 8) is the receive share of
/// the 64 KB packet buffer; TXA (bits 31:16, read only) is what is left, 64 - RXA.
pub mod pba {
    /// The writable receive allocation, in KB.
    pub const RXA_MASK: u32 = 0x7F;
    /// Shift of the read-only transmit allocation, in KB.
    pub const TXA_SHIFT: u32 = 16;
    /// The whole packet buffer on the 82540/82544/82545, in KB.
    pub const TOTAL_KB: u32 = 64;
    /// RXA after power-on: 48 KB receive, 16 KB transmit.
    pub const RXA_DEFAULT: u32 = 0x30;
}

// Interrupt registers (SDM 13.4)
/// Interrupt Cause Read; cleared by reading (SDM 13.4).
pub const ICR: u32 = 0x00C0;
/// Interrupt Throttling, in 256 ns units (SDM 13.4).
pub const ITR: u32 = 0x00C4;
/// Interrupt Cause Set (SDM 13.4).
pub const ICS: u32 = 0x00C8;
/// Interrupt Mask Set/Read (SDM 13.4).
pub const IMS: u32 = 0x00D0;
/// Interrupt Mask Clear (SDM 13.4).
pub const IMC: u32 = 0x00D8;

// Receive registers (SDM 13.4)
/// Receive Control (SDM 13.4.22).
pub const RCTL: u32 = 0x0100;
/// Flow Control Receive Threshold Low (SDM 13.4.23).
pub const FCRTL: u32 = 0x2160;
/// Flow Control Receive Threshold High (SDM 13.4).
pub const FCRTH: u32 = 0x2168;
/// Receive Data FIFO Head (diagnostic).
pub const RDFH: u32 = 0x2410;
/// Receive Data FIFO Tail (diagnostic).
pub const RDFT: u32 = 0x2418;
/// Receive Data FIFO Packet Count (diagnostic): the packets the receive FIFO holds.
pub const RDFPC: u32 = 0x2430;
/// Receive Descriptor Base Address Low (SDM 13.4).
pub const RDBAL: u32 = 0x2800;
/// Receive Descriptor Base Address High (SDM 13.4).
pub const RDBAH: u32 = 0x2804;
/// Receive Descriptor Length in bytes, multiple of 128 (SDM 13.4).
pub const RDLEN: u32 = 0x2808;
/// Receive Descriptor Head (SDM 13.4).
pub const RDH: u32 = 0x2810;
/// Receive Descriptor Tail (SDM 13.4).
pub const RDT: u32 = 0x2818;
/// Receive Delay Timer, in 1.024 us units (SDM 13.4).
pub const RDTR: u32 = 0x2820;
/// Receive Descriptor Control (SDM 13.4).
pub const RXDCTL: u32 = 0x2828;
/// Receive Interrupt Absolute Delay Timer, in 1.024 us units (SDM 13.4).
pub const RADV: u32 = 0x282C;
/// Receive Small Packet Detect Interrupt (SDM 13.4).
pub const RSRPD: u32 = 0x2C00;
/// Receive Checksum Control (SDM 13.4).
pub const RXCSUM: u32 = 0x5000;
/// Multicast Table Array, 128 entries (SDM 13.4).
pub const MTA: u32 = 0x5200;
/// Number of MTA entries.
pub const MTA_LEN: u32 = 128;
/// Receive Address Low, entry `n` is at `RAL + 8 * n` (SDM 13.4).
pub const RAL: u32 = 0x5400;
/// Receive Address High, entry `n` is at `RAH + 8 * n` (SDM 13.4).
pub const RAH: u32 = 0x5404;
/// Number of receive address entries.
pub const RA_LEN: u32 = 16;
/// VLAN Filter Table Array, 128 entries (SDM 13.4).
pub const VFTA: u32 = 0x5600;
/// Number of VFTA entries.
pub const VFTA_LEN: u32 = 128;

// Transmit registers (SDM 13.4)
/// Transmit Control (SDM 13.4).
pub const TCTL: u32 = 0x0400;
/// Transmit IPG (SDM 13.4).
pub const TIPG: u32 = 0x0410;
/// Adaptive IFS Throttle (SDM 13.4, AIT): bits 15:0 extend the inter-frame gap; the
/// driver tunes it in half duplex against collisions.
pub const AIFS: u32 = 0x0458;
/// Transmit DMA control (82544 only; harmless elsewhere).
pub const TXDMAC: u32 = 0x3000;
/// Transmit Data FIFO Head (diagnostic).
pub const TDFH: u32 = 0x3410;
/// Transmit Data FIFO Tail (diagnostic).
pub const TDFT: u32 = 0x3418;
/// Transmit Descriptor Base Address Low (SDM 13.4).
pub const TDBAL: u32 = 0x3800;
/// Transmit Descriptor Base Address High (SDM 13.4).
pub const TDBAH: u32 = 0x3804;
/// Transmit Descriptor Length in bytes, multiple of 128 (SDM 13.4).
pub const TDLEN: u32 = 0x3808;
/// Transmit Descriptor Head (SDM 13.4).
pub const TDH: u32 = 0x3810;
/// Transmit Descriptor Tail (SDM 13.4).
pub const TDT: u32 = 0x3818;
/// Transmit Interrupt Delay Value, in 1.024 us units (SDM 13.4).
pub const TIDV: u32 = 0x3820;
/// Transmit Descriptor Control (SDM 13.4).
pub const TXDCTL: u32 = 0x3828;
/// Transmit Absolute Interrupt Delay Value, in 1.024 us units (SDM 13.4).
pub const TADV: u32 = 0x382C;
/// TCP Segmentation Pad and Threshold (SDM 13.4).
pub const TSPMT: u32 = 0x3830;

// Wakeup and manageability (SDM 13, wake-up registers)
/// Wake Up Control (SDM 13, wake-up registers).
pub const WUC: u32 = 0x5800;
/// Wake Up Filter Control (SDM 13, wake-up registers).
pub const WUFC: u32 = 0x5808;
/// Wake Up Status (SDM 13, wake-up registers).
pub const WUS: u32 = 0x5810;
/// Management Control (SDM 13, on parts with manageability).
pub const MANC: u32 = 0x5820;
/// IP Address Valid (SDM 13, wake-up registers).
pub const IPAV: u32 = 0x5838;
/// IPv4 Address Table, 4 entries (SDM 13, wake-up registers).
pub const IP4AT: u32 = 0x5840;
/// IPv6 Address Table (SDM 13, wake-up registers).
pub const IP6AT: u32 = 0x5880;
/// Wakeup Packet Length (SDM 13, wake-up registers).
pub const WUPL: u32 = 0x5900;
/// Wakeup Packet Memory, 128 bytes (SDM 13, wake-up registers).
pub const WUPM: u32 = 0x5A00;
/// Flexible Filter Length Table (SDM 13, wake-up registers).
pub const FFLT: u32 = 0x5F00;
/// Flexible Filter Mask Table (SDM 13, wake-up registers).
pub const FFMT: u32 = 0x9000;
/// Flexible Filter Value Table (SDM 13, wake-up registers).
pub const FFVT: u32 = 0x9800;

// ---------------------------------------------------------------------------------------
// Statistics (SDM 13.7). All are read-to-clear; 64-bit counters clear when the high half
// is read. All saturate instead of wrapping.
// ---------------------------------------------------------------------------------------

/// First statistics register.
pub const STATS_BASE: u32 = 0x4000;
/// One past the last statistics register.
pub const STATS_END: u32 = 0x4100;
/// CRC Error Count (SDM 13.7.1).
pub const CRCERRS: u32 = 0x4000;
/// Alignment Error Count (SDM 13.7.2).
pub const ALGNERRC: u32 = 0x4004;
/// Symbol Error Count (SDM 13.7.3).
pub const SYMERRS: u32 = 0x4008;
/// RX Error Count (SDM 13.7.4).
pub const RXERRC: u32 = 0x400C;
/// Missed Packets Count (SDM 13.7.5).
pub const MPC: u32 = 0x4010;
/// Single Collision Count (SDM 13.7.6).
pub const SCC: u32 = 0x4014;
/// Excessive Collisions Count (SDM 13.7.7).
pub const ECOL: u32 = 0x4018;
/// Multiple Collision Count (SDM 13.7.8).
pub const MCC: u32 = 0x401C;
/// Late Collisions Count (SDM 13.7.9).
pub const LATECOL: u32 = 0x4020;
/// Collision Count (SDM 13.7.10).
pub const COLC: u32 = 0x4028;
/// Defer Count (SDM 13.7.11).
pub const DC: u32 = 0x4030;
/// Transmit with No CRS (SDM 13.7.12).
pub const TNCRS: u32 = 0x4034;
/// Sequence Error Count (SDM 13.7.13).
pub const SEC: u32 = 0x4038;
/// Carrier Extension Error Count (SDM 13.7.14).
pub const CEXTERR: u32 = 0x403C;
/// Receive Length Error Count (SDM 13.7.15).
pub const RLEC: u32 = 0x4040;
/// XON Received Count (SDM 13.7.16).
pub const XONRXC: u32 = 0x4048;
/// XON Transmitted Count (SDM 13.7.17).
pub const XONTXC: u32 = 0x404C;
/// XOFF Received Count (SDM 13.7.18).
pub const XOFFRXC: u32 = 0x4050;
/// XOFF Transmitted Count (SDM 13.7.19).
pub const XOFFTXC: u32 = 0x4054;
/// FC Received Unsupported Count (SDM 13.7.20).
pub const FCRUC: u32 = 0x4058;
/// Packets Received (64 bytes) Count (SDM 13.7.21).
pub const PRC64: u32 = 0x405C;
/// Packets Received (65-127 bytes) Count (SDM 13.7.22).
pub const PRC127: u32 = 0x4060;
/// Packets Received (128-255 bytes) Count (SDM 13.7.23).
pub const PRC255: u32 = 0x4064;
/// Packets Received (256-511 bytes) Count (SDM 13.7.24).
pub const PRC511: u32 = 0x4068;
/// Packets Received (512-1023 bytes) Count (SDM 13.7.25).
pub const PRC1023: u32 = 0x406C;
/// Packets Received (1024-Max bytes) Count (SDM 13.7.26).
pub const PRC1522: u32 = 0x4070;
/// Good Packets Received Count (SDM 13.7.27).
pub const GPRC: u32 = 0x4074;
/// Broadcast Packets Received Count (SDM 13.7.28).
pub const BPRC: u32 = 0x4078;
/// Multicast Packets Received Count (SDM 13.7.29).
pub const MPRC: u32 = 0x407C;
/// Good Packets Transmitted Count (SDM 13.7.30).
pub const GPTC: u32 = 0x4080;
/// Good Octets Received Count, low (SDM 13.7.31).
pub const GORCL: u32 = 0x4088;
/// Good Octets Received Count, high; reading it clears the pair (SDM 13.7.31).
pub const GORCH: u32 = 0x408C;
/// Good Octets Transmitted Count, low (SDM 13.7.32).
pub const GOTCL: u32 = 0x4090;
/// Good Octets Transmitted Count, high; reading it clears the pair (SDM 13.7.32).
pub const GOTCH: u32 = 0x4094;
/// Receive No Buffers Count (SDM 13.7.33).
pub const RNBC: u32 = 0x40A0;
/// Receive Undersize Count (SDM 13.7.34).
pub const RUC: u32 = 0x40A4;
/// Receive Fragment Count (SDM 13.7.35).
pub const RFC: u32 = 0x40A8;
/// Receive Oversize Count (SDM 13.7.36).
pub const ROC: u32 = 0x40AC;
/// Receive Jabber Count (SDM 13.7.37).
pub const RJC: u32 = 0x40B0;
/// Management Packets Received Count (SDM 13.7.38).
pub const MGTPRC: u32 = 0x40B4;
/// Management Packets Dropped Count (SDM 13.7.39).
pub const MGTPDC: u32 = 0x40B8;
/// Management Packets Transmitted Count (SDM 13.7.40).
pub const MGTPTC: u32 = 0x40BC;
/// Total Octets Received, low (SDM 13.7.41).
pub const TORL: u32 = 0x40C0;
/// Total Octets Received, high; reading it clears the pair (SDM 13.7.41).
pub const TORH: u32 = 0x40C4;
/// Total Octets Transmitted, low (SDM 13.7.42).
pub const TOTL: u32 = 0x40C8;
/// Total Octets Transmitted, high; reading it clears the pair (SDM 13.7.42).
pub const TOTH: u32 = 0x40CC;
/// Total Packets Received (SDM 13.7.43).
pub const TPR: u32 = 0x40D0;
/// Total Packets Transmitted (SDM 13.7.44).
pub const TPT: u32 = 0x40D4;
/// Packets Transmitted (64 bytes) Count (SDM 13.7.45).
pub const PTC64: u32 = 0x40D8;
/// Packets Transmitted (65-127 bytes) Count (SDM 13.7.46).
pub const PTC127: u32 = 0x40DC;
/// Packets Transmitted (128-255 bytes) Count (SDM 13.7.47).
pub const PTC255: u32 = 0x40E0;
/// Packets Transmitted (256-511 bytes) Count (SDM 13.7.48).
pub const PTC511: u32 = 0x40E4;
/// Packets Transmitted (512-1023 bytes) Count (SDM 13.7.49).
pub const PTC1023: u32 = 0x40E8;
/// Packets Transmitted (1024-Max bytes) Count (SDM 13.7.50).
pub const PTC1522: u32 = 0x40EC;
/// Multicast Packets Transmitted Count (SDM 13.7.51).
pub const MPTC: u32 = 0x40F0;
/// Broadcast Packets Transmitted Count (SDM 13.7.52).
pub const BPTC: u32 = 0x40F4;
/// TCP Segmentation Context Transmitted Count (SDM 13.7.53).
pub const TSCTC: u32 = 0x40F8;
/// TCP Segmentation Context Transmit Fail Count (SDM 13.7.54).
pub const TSCTFC: u32 = 0x40FC;

/// The low halves of the 64-bit statistics counters (the high half is at `+4`).
pub const STATS_64BIT_LOW: [u32; 4] = [GORCL, GOTCL, TORL, TOTL];

// ---------------------------------------------------------------------------------------
// Bitfields
// ---------------------------------------------------------------------------------------

/// CTRL bits (SDM 13.4).
pub mod ctrl {
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link reset (TBI mode).
    pub const LRST: u32 = 1 << 3;
    /// Auto-speed detection enable.
    pub const ASDE: u32 = 1 << 5;
    /// Set link up.
    pub const SLU: u32 = 1 << 6;
    /// Invert loss-of-signal.
    pub const ILOS: u32 = 1 << 7;
    /// Speed selection mask (bits 9:8).
    pub const SPEED_MASK: u32 = 3 << 8;
    /// Force speed.
    pub const FRCSPD: u32 = 1 << 11;
    /// Force duplex.
    pub const FRCDPLX: u32 = 1 << 12;
    /// SDP0 data value.
    pub const SDP0_DATA: u32 = 1 << 18;
    /// SDP1 data value.
    pub const SDP1_DATA: u32 = 1 << 19;
    /// Software-definable pin values SWDPIN[3:0] (bits 21:18; on the 82540 and later
    /// bits 21:20 are ADVD3WUC and EN_PHY_PWR_MGMT instead of SWDPIN[3:2]).
    pub const SWDPIN_SHIFT: u32 = 18;
    /// SWDPIN0: software-definable pin 0's value (as an output, what the pin drives).
    pub const SWDPIN0: u32 = 1 << 18;
    /// Software-definable pin directions SWDPIO[3:0] (bits 25:22; 1 = output).
    pub const SWDPIO_SHIFT: u32 = 22;
    /// The SWDPIO[3:0] field.
    pub const SWDPIO_MASK: u32 = 0xF << 22;
    /// SWDPIO0: software-definable pin 0 is an output.
    pub const SWDPIO0: u32 = 1 << 22;
    /// Advertise D3cold wake-up capability (ADVD3WUC; 82540 and later).
    pub const ADVD3WUC: u32 = 1 << 20;
    /// PHY power-management enable (EN_PHY_PWR_MGMT; 82540 and later): lets the PHY drop
    /// to a low-power link speed in D3 while keeping the link for wake-up.
    pub const EN_PHY_PWR_MGMT: u32 = 1 << 21;
    /// Device reset; self-clearing.
    pub const RST: u32 = 1 << 26;
    /// Receive flow control enable.
    pub const RFCE: u32 = 1 << 27;
    /// Transmit flow control enable.
    pub const TFCE: u32 = 1 << 28;
    /// VLAN mode enable (tag insertion on TX, stripping on RX).
    pub const VME: u32 = 1 << 30;
    /// PHY reset; the PHY is held in reset while this bit is 1.
    pub const PHY_RST: u32 = 1 << 31;
}

/// LEDCTL fields (SDM 13.4.x "LED Control"): one byte per LED (LED0 in bits 7:0 up to
/// LED3 in bits 31:24), each with a 4-bit mode, an invert bit and a blink bit.
pub mod ledctl {
    /// The LEDCTL value after reset: LED0 link up (mode 2), LED1 filter activity with
    /// blink (mode 3, blink), LED2 link 100 (mode 6), LED3 link 1000 (mode 7).
    pub const RESET_VALUE: u32 = 0x0706_8302;
    /// Bits of one LED's byte that hold its mode.
    pub const MODE_MASK: u32 = 0x0F;
    /// Invert the LED's output (bit 6 of its byte).
    pub const IVRT: u32 = 1 << 6;
    /// Blink the LED while its mode is asserted (bit 7 of its byte).
    pub const BLINK: u32 = 1 << 7;
    /// Mode: the LED is always on.
    pub const MODE_LED_ON: u32 = 0x0E;
    /// Mode: the LED is always off.
    pub const MODE_LED_OFF: u32 = 0x0F;
    /// Bits between one LED's byte and the next.
    pub const LED_SHIFT: u32 = 8;
    /// Number of LEDs.
    pub const LEDS: u32 = 4;
}

/// STATUS bits (SDM 13.4).
pub mod status {
    /// Full duplex.
    pub const FD: u32 = 1 << 0;
    /// Link up.
    pub const LU: u32 = 1 << 1;
    /// Function ID (bits 3:2).
    pub const FUNC_MASK: u32 = 3 << 2;
    /// Transmission paused.
    pub const TXOFF: u32 = 1 << 4;
    /// TBI mode.
    pub const TBIMODE: u32 = 1 << 5;
    /// Speed shift (bits 7:6).
    pub const SPEED_SHIFT: u32 = 6;
    /// Speed mask.
    pub const SPEED_MASK: u32 = 3 << 6;
    /// 10 Mb/s.
    pub const SPEED_10: u32 = 0 << 6;
    /// 100 Mb/s.
    pub const SPEED_100: u32 = 1 << 6;
    /// 1000 Mb/s.
    pub const SPEED_1000: u32 = 2 << 6;
    /// Conventional PCI bus at 66 MHz (M66EN sampled high); meaningful in PCI mode only.
    pub const PCI66: u32 = 1 << 11;
    /// 64-bit bus (REQ64# sampled at reset).
    pub const BUS64: u32 = 1 << 12;
    /// The bus is in PCI-X mode (82544 and 82545/6 only; reserved on the 82540).
    pub const PCIX_MODE: u32 = 1 << 13;
    /// PCI-X bus speed shift (bits 15:14; meaningful in PCI-X mode only).
    pub const PCIX_SPEED_SHIFT: u32 = 14;
    /// PCI-X bus speed mask.
    pub const PCIX_SPEED_MASK: u32 = 3 << 14;
    /// PCI-X at 50-66 MHz.
    pub const PCIX_SPEED_66: u32 = 0 << 14;
    /// PCI-X at 66-100 MHz.
    pub const PCIX_SPEED_100: u32 = 1 << 14;
    /// PCI-X at 100-133 MHz.
    pub const PCIX_SPEED_133: u32 = 2 << 14;
}

/// WUC bits (SDM 13.6.1, Wakeup Control).
pub mod wuc {
    /// APM (magic packet) wake-up enable; loaded from the EEPROM at power-up.
    pub const APME: u32 = 1 << 0;
    /// PME enable: the driver's copy of PMCSR.PME_En (ACPI wake-up).
    pub const PME_EN: u32 = 1 << 1;
    /// PME status: set when a wake-up event asserted PME#.
    pub const PME_STATUS: u32 = 1 << 2;
    /// Assert PME# on an APM wake-up (otherwise APM wake-up only sets the status).
    pub const APMPME: u32 = 1 << 3;
}

/// The filter bits shared by WUFC (SDM 13.6.2, which packets wake) and WUS (SDM 13.6.3,
/// which filter matched).
pub mod wufc {
    /// Link status change.
    pub const LNKC: u32 = 1 << 0;
    /// Magic packet.
    pub const MAG: u32 = 1 << 1;
    /// Directed exact: destination matches a valid receive address.
    pub const EX: u32 = 1 << 2;
    /// Directed multicast: destination passes the multicast table.
    pub const MC: u32 = 1 << 3;
    /// Broadcast.
    pub const BC: u32 = 1 << 4;
    /// ARP request to an address in IP4AT.
    pub const ARP: u32 = 1 << 5;
    /// Directed IPv4 to an address in IP4AT.
    pub const IPV4: u32 = 1 << 6;
    /// Directed IPv6 to the address in IP6AT (not on the 82544).
    pub const IPV6: u32 = 1 << 7;
    /// Flexible filters 0-3 (bits 19:16).
    pub const FLX_MASK: u32 = 0xF << 16;
    /// The packet bits (everything but LNKC): one set in WUS blocks further packet wakes
    /// until the driver clears it.
    pub const PACKET_MASK: u32 = MAG | EX | MC | BC | ARP | IPV4 | IPV6 | FLX_MASK;
}

/// MANC bits (SDM 13.6, Management Control).
pub mod manc {
    /// SMBus enabled for manageability: the PHY must stay powered for the BMC.
    pub const SMBUS_EN: u32 = 1 << 0;
}

/// WUPL: the length field of the stored wake-up packet (bits 11:0).
pub const WUPL_LEN_MASK: u32 = 0xFFF;
/// Bytes of the wake-up packet stored in WUPM.
pub const WUPM_LEN: u32 = 128;

/// EECD bits (SDM 13.4).
pub mod eecd {
    /// Clock input to the EEPROM.
    pub const SK: u32 = 1 << 0;
    /// Chip select.
    pub const CS: u32 = 1 << 1;
    /// Data input to the EEPROM.
    pub const DI: u32 = 1 << 2;
    /// Data output from the EEPROM (read-only).
    pub const DO: u32 = 1 << 3;
    /// Flash write enable control (bits 5:4).
    pub const FWE_MASK: u32 = 3 << 4;
    /// Request EEPROM access (82540 and later).
    pub const REQ: u32 = 1 << 6;
    /// EEPROM access granted (read-only, 82540 and later).
    pub const GNT: u32 = 1 << 7;
    /// EEPROM present (read-only).
    pub const PRES: u32 = 1 << 8;
    /// EEPROM size: 0 = 64 words (93C46), 1 = 256 words (read-only).
    pub const SIZE: u32 = 1 << 9;
}

/// EERD bits for 82540/82545 (SDM 13.4).
pub mod eerd {
    /// Start read.
    pub const START: u32 = 1 << 0;
    /// Read done (read-only).
    pub const DONE: u32 = 1 << 4;
    /// Address shift (bits 15:8).
    pub const ADDR_SHIFT: u32 = 8;
    /// Address mask.
    pub const ADDR_MASK: u32 = 0xFF << 8;
    /// Data shift (bits 31:16).
    pub const DATA_SHIFT: u32 = 16;
}

/// MDIC bits (SDM 13.4).
pub mod mdic {
    /// Data mask (bits 15:0).
    pub const DATA_MASK: u32 = 0xFFFF;
    /// PHY register address shift (bits 20:16).
    pub const REG_SHIFT: u32 = 16;
    /// PHY address shift (bits 25:21).
    pub const PHY_SHIFT: u32 = 21;
    /// Opcode: write.
    pub const OP_WRITE: u32 = 1 << 26;
    /// Opcode: read.
    pub const OP_READ: u32 = 2 << 26;
    /// Opcode mask (bits 27:26).
    pub const OP_MASK: u32 = 3 << 26;
    /// Ready: the access completed.
    pub const READY: u32 = 1 << 28;
    /// Interrupt enable (raise ICR.MDAC on completion).
    pub const INT_EN: u32 = 1 << 29;
    /// Error: the access failed (wrong PHY address).
    pub const ERROR: u32 = 1 << 30;
}

/// Interrupt cause bits, shared by ICR, ICS, IMS and IMC (SDM 13.4).
pub mod icr {
    /// Transmit descriptor written back.
    pub const TXDW: u32 = 1 << 0;
    /// Transmit queue empty.
    pub const TXQE: u32 = 1 << 1;
    /// Link status change.
    pub const LSC: u32 = 1 << 2;
    /// Receive sequence error.
    pub const RXSEQ: u32 = 1 << 3;
    /// Receive descriptor minimum threshold reached.
    pub const RXDMT0: u32 = 1 << 4;
    /// Receiver overrun.
    pub const RXO: u32 = 1 << 6;
    /// Receiver timer interrupt.
    pub const RXT0: u32 = 1 << 7;
    /// MDI/O access complete.
    pub const MDAC: u32 = 1 << 9;
    /// Receiving /C/ ordered sets.
    pub const RXCFG: u32 = 1 << 10;
    /// PHY interrupt.
    pub const PHYINT: u32 = 1 << 12;
    /// General purpose interrupt on SDP6.
    pub const GPI_SDP6: u32 = 1 << 13;
    /// General purpose interrupt on SDP7.
    pub const GPI_SDP7: u32 = 1 << 14;
    /// Transmit descriptor low threshold hit.
    pub const TXD_LOW: u32 = 1 << 15;
    /// Small receive packet detected.
    pub const SRPD: u32 = 1 << 16;
    /// Every cause bit the 82540EM implements.
    pub const ALL: u32 = 0x0001_F6DF;
}

/// RCTL bits (SDM 13.4.22).
pub mod rctl {
    /// Receiver enable.
    pub const EN: u32 = 1 << 1;
    /// Store bad packets.
    pub const SBP: u32 = 1 << 2;
    /// Unicast promiscuous.
    pub const UPE: u32 = 1 << 3;
    /// Multicast promiscuous.
    pub const MPE: u32 = 1 << 4;
    /// Long packet enable (up to 16384 bytes).
    pub const LPE: u32 = 1 << 5;
    /// Loopback mode mask (bits 7:6).
    pub const LBM_MASK: u32 = 3 << 6;
    /// MAC loopback: transmitted frames return to the receiver inside the MAC.
    pub const LBM_MAC: u32 = 1 << 6;
    /// Loopback through the PHY/transceiver.
    pub const LBM_TCVR: u32 = 3 << 6;
    /// Descriptor minimum threshold shift (bits 9:8).
    pub const RDMTS_SHIFT: u32 = 8;
    /// Descriptor minimum threshold mask.
    pub const RDMTS_MASK: u32 = 3 << 8;
    /// Multicast offset shift (bits 13:12).
    pub const MO_SHIFT: u32 = 12;
    /// Multicast offset mask.
    pub const MO_MASK: u32 = 3 << 12;
    /// Broadcast accept mode.
    pub const BAM: u32 = 1 << 15;
    /// Buffer size shift (bits 17:16).
    pub const BSIZE_SHIFT: u32 = 16;
    /// Buffer size mask.
    pub const BSIZE_MASK: u32 = 3 << 16;
    /// VLAN filter enable.
    pub const VFE: u32 = 1 << 18;
    /// Canonical form indicator enable.
    pub const CFIEN: u32 = 1 << 19;
    /// Canonical form indicator value.
    pub const CFI: u32 = 1 << 20;
    /// Discard pause frames.
    pub const DPF: u32 = 1 << 22;
    /// Pass MAC control frames.
    pub const PMCF: u32 = 1 << 23;
    /// Buffer size extension (multiplies BSIZE by 16).
    pub const BSEX: u32 = 1 << 25;
    /// Strip Ethernet CRC.
    pub const SECRC: u32 = 1 << 26;

    /// The receive buffer size in bytes selected by RCTL.BSIZE/BSEX, or `None` for the
    /// reserved encoding (BSEX=1, BSIZE=00).
    pub fn buffer_size(rctl: u32) -> Option<usize> {
        let bsize = (rctl & BSIZE_MASK) >> BSIZE_SHIFT;
        match (rctl & BSEX != 0, bsize) {
            (false, 0) => Some(2048),
            (false, 1) => Some(1024),
            (false, 2) => Some(512),
            (false, _) => Some(256),
            (true, 0) => None,
            (true, 1) => Some(16384),
            (true, 2) => Some(8192),
            (true, _) => Some(4096),
        }
    }
}

/// TCTL bits (SDM 13.4).
pub mod tctl {
    /// Transmit enable.
    pub const EN: u32 = 1 << 1;
    /// Pad short packets to 64 bytes.
    pub const PSP: u32 = 1 << 3;
    /// Collision threshold shift (bits 11:4).
    pub const CT_SHIFT: u32 = 4;
    /// Collision distance shift (bits 21:12).
    pub const COLD_SHIFT: u32 = 12;
    /// Software XOFF transmission.
    pub const SWXOFF: u32 = 1 << 22;
    /// Re-transmit on late collision.
    pub const RTLC: u32 = 1 << 24;
}

/// RXDCTL/TXDCTL fields (SDM 13.4).
pub mod dctl {
    /// Prefetch threshold mask (bits 5:0).
    pub const PTHRESH_MASK: u32 = 0x3F;
    /// Host threshold shift (bits 13:8).
    pub const HTHRESH_SHIFT: u32 = 8;
    /// Write-back threshold shift (bits 21:16).
    pub const WTHRESH_SHIFT: u32 = 16;
    /// Granularity: 1 = descriptors, 0 = cache lines.
    pub const GRAN: u32 = 1 << 24;
}

/// RXCSUM bits (SDM 13.4).
pub mod rxcsum {
    /// Packet checksum start mask (bits 7:0).
    pub const PCSS_MASK: u32 = 0xFF;
    /// IP checksum offload enable.
    pub const IPOFLD: u32 = 1 << 8;
    /// TCP/UDP checksum offload enable.
    pub const TUOFLD: u32 = 1 << 9;
}

/// RAH bits (SDM 13.4).
pub mod rah {
    /// Address select mask (bits 17:16); 00 = destination address.
    pub const AS_MASK: u32 = 3 << 16;
    /// Address valid.
    pub const AV: u32 = 1 << 31;
}

/// Delay timer registers (RDTR, TIDV) bit 31.
pub const FPD: u32 = 1 << 31;

/// The time unit of RDTR, RADV, TIDV and TADV, in nanoseconds (1.024 us).
pub const DELAY_UNIT_NS: u64 = 1024;
/// The time unit of ITR, in nanoseconds.
pub const ITR_UNIT_NS: u64 = 256;

// ---------------------------------------------------------------------------------------
// Descriptors (SDM 3.2 and 3.3)
// ---------------------------------------------------------------------------------------

/// Legacy receive descriptor (SDM 3.2.3, Table 3-1).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct RxDesc {
    /// Buffer bus address.
    pub addr: u64,
    /// Bytes stored in this buffer.
    pub length: u16,
    /// Packet checksum.
    pub csum: u16,
    /// Status bits, see [`rxd_stat`].
    pub status: u8,
    /// Error bits, see [`rxd_err`].
    pub errors: u8,
    /// VLAN tag when `status.VP` is set.
    pub special: u16,
}

/// Receive descriptor status bits (SDM 3.2.3.1).
pub mod rxd_stat {
    /// Descriptor done.
    pub const DD: u8 = 1 << 0;
    /// End of packet.
    pub const EOP: u8 = 1 << 1;
    /// Ignore checksum indication.
    pub const IXSM: u8 = 1 << 2;
    /// Packet was 802.1Q tagged (and the tag stripped).
    pub const VP: u8 = 1 << 3;
    /// TCP/UDP checksum calculated.
    pub const TCPCS: u8 = 1 << 5;
    /// IP checksum calculated.
    pub const IPCS: u8 = 1 << 6;
    /// Passed in-exact filter.
    pub const PIF: u8 = 1 << 7;
}

/// Receive descriptor error bits (SDM 3.2.3.2).
pub mod rxd_err {
    /// CRC or alignment error.
    pub const CE: u8 = 1 << 0;
    /// Symbol error.
    pub const SE: u8 = 1 << 1;
    /// Sequence error.
    pub const SEQ: u8 = 1 << 2;
    /// Carrier extension error.
    pub const CXE: u8 = 1 << 4;
    /// TCP/UDP checksum error.
    pub const TCPE: u8 = 1 << 5;
    /// IP checksum error.
    pub const IPE: u8 = 1 << 6;
    /// RX data error.
    pub const RXE: u8 = 1 << 7;
}

/// Legacy transmit descriptor (SDM 3.3.3, Table 3-8).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TxDesc {
    /// Buffer bus address.
    pub addr: u64,
    /// Bytes in this buffer.
    pub length: u16,
    /// Checksum offset: where to insert the checksum (when `cmd.IC`).
    pub cso: u8,
    /// Command bits, see [`txd_cmd`].
    pub cmd: u8,
    /// Status bits (written back), see [`txd_stat`].
    pub status: u8,
    /// Checksum start offset.
    pub css: u8,
    /// VLAN tag to insert when `cmd.VLE` and `CTRL.VME`.
    pub special: u16,
}

/// Transmit command bits for the legacy descriptor and the data descriptor's DCMD
/// (SDM 3.3.3.1, 3.3.7.1).
pub mod txd_cmd {
    /// End of packet.
    pub const EOP: u8 = 1 << 0;
    /// Insert FCS.
    pub const IFCS: u8 = 1 << 1;
    /// Insert checksum (legacy) / TCP segmentation enable (data descriptor: TSE).
    pub const IC: u8 = 1 << 2;
    /// TCP segmentation enable (data descriptor).
    pub const TSE: u8 = 1 << 2;
    /// Report status.
    pub const RS: u8 = 1 << 3;
    /// Report packet sent (82544 only).
    pub const RPS: u8 = 1 << 4;
    /// Descriptor extension (1 = context/data descriptor).
    pub const DEXT: u8 = 1 << 5;
    /// VLAN packet enable.
    pub const VLE: u8 = 1 << 6;
    /// Interrupt delay enable.
    pub const IDE: u8 = 1 << 7;
}

/// Transmit descriptor status bits (SDM 3.3.3.2).
pub mod txd_stat {
    /// Descriptor done.
    pub const DD: u8 = 1 << 0;
    /// Excess collisions.
    pub const EC: u8 = 1 << 1;
    /// Late collision.
    pub const LC: u8 = 1 << 2;
    /// Transmit underrun.
    pub const TU: u8 = 1 << 3;
}

/// TCP/IP context transmit descriptor (SDM 3.3.6, Table 3-10).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TxContextDesc {
    /// IP checksum start.
    pub ipcss: u8,
    /// IP checksum offset.
    pub ipcso: u8,
    /// IP checksum end (inclusive; 0 = end of packet).
    pub ipcse: u16,
    /// TCP/UDP checksum start.
    pub tucss: u8,
    /// TCP/UDP checksum offset.
    pub tucso: u8,
    /// TCP/UDP checksum end (inclusive; 0 = end of packet).
    pub tucse: u16,
    /// PAYLEN (bits 19:0), DTYP (23:20) = 0000, TUCMD (31:24), see [`tucmd`].
    pub cmd_and_length: u32,
    /// Status: DD in bit 0.
    pub status: u8,
    /// Header length for TSO.
    pub hdr_len: u8,
    /// Maximum segment size for TSO.
    pub mss: u16,
}

/// Context descriptor TUCMD bits, as they sit in `cmd_and_length` (SDM 3.3.6.1).
pub mod tucmd {
    /// Packet is TCP (else UDP).
    pub const TCP: u32 = 1 << 24;
    /// Packet is IPv4 (else IPv6).
    pub const IP: u32 = 1 << 25;
    /// TCP segmentation enable.
    pub const TSE: u32 = 1 << 26;
    /// Report status.
    pub const RS: u32 = 1 << 27;
    /// Descriptor extension (must be 1).
    pub const DEXT: u32 = 1 << 29;
    /// Interrupt delay enable.
    pub const IDE: u32 = 1 << 31;
    /// PAYLEN mask (bits 19:0).
    pub const PAYLEN_MASK: u32 = 0x000F_FFFF;
}

/// TCP/IP data transmit descriptor (SDM 3.3.7, Table 3-12).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct TxDataDesc {
    /// Buffer bus address.
    pub addr: u64,
    /// DTALEN (bits 19:0), DTYP (23:20) = 0001, DCMD (31:24), see [`txd_cmd`].
    pub lower: u32,
    /// STA (3:0), POPTS (15:8), see [`popts`], special/VLAN (31:16).
    pub upper: u32,
}

/// Descriptor type field values (bits 23:20 of the second dword).
pub mod dtyp {
    /// Shift of the DTYP field.
    pub const SHIFT: u32 = 20;
    /// Mask of the DTYP field.
    pub const MASK: u32 = 0xF << 20;
    /// Context descriptor.
    pub const CONTEXT: u32 = 0;
    /// Data descriptor.
    pub const DATA: u32 = 1;
}

/// Data descriptor POPTS bits (SDM 3.3.7.2), as they sit in `upper`.
pub mod popts {
    /// Insert IP checksum.
    pub const IXSM: u32 = 1 << 8;
    /// Insert TCP/UDP checksum.
    pub const TXSM: u32 = 1 << 9;
}

/// Size of every descriptor kind, in bytes.
pub const DESC_LEN: usize = 16;

/// The receive address registers hold a MAC address as RAL = bytes 0..4 (little-endian) and
/// RAH bits 15:0 = bytes 4..6 (SDM 13.4). Returns `(ral, rah_without_av)`.
pub fn mac_to_ra(mac: [u8; 6]) -> (u32, u32) {
    let ral = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
    let rah = u32::from(mac[4]) | (u32::from(mac[5]) << 8);
    (ral, rah)
}

/// The inverse of [`mac_to_ra`].
pub fn ra_to_mac(ral: u32, rah: u32) -> [u8; 6] {
    let l = ral.to_le_bytes();
    [l[0], l[1], l[2], l[3], rah as u8, (rah >> 8) as u8]
}

/// The 12-bit multicast hash of a destination address for a given RCTL.MO value
/// (SDM 13.4): MO selects which 12 bits of the 48-bit address are used.
/// The MTA register index is `hash >> 5`, the bit within it `hash & 31`.
pub fn mta_hash(mac: [u8; 6], mo: u32) -> u16 {
    let (a4, a5) = (u16::from(mac[4]), u16::from(mac[5]));
    let h = match mo & 3 {
        0 => (a4 >> 4) | (a5 << 4),
        1 => (a4 >> 3) | (a5 << 5),
        2 => (a4 >> 2) | (a5 << 6),
        _ => a4 | (a5 << 8),
    };
    h & 0xFFF
}

/// PHY registers reached through MDIC (SDM ch. 13 "PHY Registers" for the 82540EM/82545 internal PHY;
/// IEEE 802.3 clause 22 for registers 0-10 and 15).
pub mod phy {
    /// PHY address of the internal PHY on the MDIO bus.
    pub const ADDR: u32 = 1;
    /// Basic Mode Control Register.
    pub const BMCR: u32 = 0;
    /// Basic Mode Status Register.
    pub const BMSR: u32 = 1;
    /// PHY identifier, high.
    pub const PHYID1: u32 = 2;
    /// PHY identifier, low (OUI bits, model, revision).
    pub const PHYID2: u32 = 3;
    /// Auto-negotiation advertisement.
    pub const ANAR: u32 = 4;
    /// Auto-negotiation link partner ability.
    pub const ANLPAR: u32 = 5;
    /// Auto-negotiation expansion.
    pub const ANER: u32 = 6;
    /// Next page transmit.
    pub const NPTX: u32 = 7;
    /// Link partner next page.
    pub const LPRNP: u32 = 8;
    /// 1000BASE-T control.
    pub const GCR: u32 = 9;
    /// 1000BASE-T status.
    pub const GSR: u32 = 10;
    /// Extended status.
    pub const EXT_STATUS: u32 = 15;
    /// PHY specific control (M88).
    pub const PSCR: u32 = 16;
    /// PHY specific status (M88).
    pub const PSSR: u32 = 17;
    /// Interrupt enable (M88).
    pub const PIER: u32 = 18;
    /// Interrupt status (M88).
    pub const PISR: u32 = 19;
    /// Extended PHY specific control (M88).
    pub const EPSCR: u32 = 20;
    /// Receive error counter (M88).
    pub const RX_ERR_CNT: u32 = 21;
    /// LED control (M88).
    pub const LED_CTRL: u32 = 24;

    /// BMCR bits.
    pub mod bmcr {
        /// Speed select MSB (with [`SPEED_LSB`]: 10 = 1000, 01 = 100, 00 = 10).
        pub const SPEED_MSB: u16 = 1 << 6;
        /// Full duplex.
        pub const FD: u16 = 1 << 8;
        /// Restart auto-negotiation (self-clearing).
        pub const RESTART_AN: u16 = 1 << 9;
        /// Isolate.
        pub const ISOLATE: u16 = 1 << 10;
        /// Power down.
        pub const POWER_DOWN: u16 = 1 << 11;
        /// Auto-negotiation enable.
        pub const AN_ENABLE: u16 = 1 << 12;
        /// Speed select LSB.
        pub const SPEED_LSB: u16 = 1 << 13;
        /// Loopback.
        pub const LOOPBACK: u16 = 1 << 14;
        /// Reset (self-clearing).
        pub const RESET: u16 = 1 << 15;
    }

    /// BMSR bits.
    pub mod bmsr {
        /// Extended register capability.
        pub const EXT_CAP: u16 = 1 << 0;
        /// Link status (latching low).
        pub const LINK: u16 = 1 << 2;
        /// Auto-negotiation ability.
        pub const AN_ABILITY: u16 = 1 << 3;
        /// Auto-negotiation complete.
        pub const AN_COMPLETE: u16 = 1 << 5;
        /// Management frames with preamble suppressed accepted.
        pub const MF_PREAMBLE_SUPPR: u16 = 1 << 6;
        /// Extended status in register 15.
        pub const EXT_STATUS: u16 = 1 << 8;
        /// 10BASE-T half duplex capable.
        pub const CAP_10HD: u16 = 1 << 11;
        /// 10BASE-T full duplex capable.
        pub const CAP_10FD: u16 = 1 << 12;
        /// 100BASE-TX half duplex capable.
        pub const CAP_100HD: u16 = 1 << 13;
        /// 100BASE-TX full duplex capable.
        pub const CAP_100FD: u16 = 1 << 14;
    }

    /// ANAR / ANLPAR bits.
    pub mod anar {
        /// IEEE 802.3 selector.
        pub const SELECTOR_8023: u16 = 0x0001;
        /// 10BASE-T half duplex.
        pub const HD10: u16 = 1 << 5;
        /// 10BASE-T full duplex.
        pub const FD10: u16 = 1 << 6;
        /// 100BASE-TX half duplex.
        pub const HD100: u16 = 1 << 7;
        /// 100BASE-TX full duplex.
        pub const FD100: u16 = 1 << 8;
        /// Symmetric pause.
        pub const PAUSE: u16 = 1 << 10;
        /// Asymmetric pause.
        pub const ASM_DIR: u16 = 1 << 11;
        /// Remote fault.
        pub const REMOTE_FAULT: u16 = 1 << 13;
        /// Acknowledge (ANLPAR only).
        pub const ACK: u16 = 1 << 14;
    }

    /// 1000BASE-T control (GCR) bits (IEEE 802.3 40.5.1.1, register 9).
    pub mod gcr {
        /// Advertise 1000BASE-T half duplex.
        pub const HD1000: u16 = 1 << 8;
        /// Advertise 1000BASE-T full duplex.
        pub const FD1000: u16 = 1 << 9;
        /// Port type: 1 = multiport device (prefers MASTER), 0 = single-port device.
        pub const PORT_TYPE: u16 = 1 << 10;
        /// Manual MASTER-SLAVE configuration value: 1 = MASTER, 0 = SLAVE.
        pub const MS_VALUE: u16 = 1 << 11;
        /// Manual MASTER-SLAVE configuration enable.
        pub const MS_ENABLE: u16 = 1 << 12;
    }

    /// 1000BASE-T status (GSR) bits.
    pub mod gsr {
        /// Idle error count (bits 7:0; cleared on read, saturating at 0xFF).
        pub const IDLE_ERR_MASK: u16 = 0x00FF;
        /// MASTER-SLAVE configuration resolution: 1 = local PHY is MASTER.
        pub const MS_CONFIG_RES: u16 = 1 << 14;
        /// MASTER-SLAVE configuration fault (latching high, cleared on read).
        pub const MS_CONFIG_FAULT: u16 = 1 << 15;
        /// Link partner 1000BASE-T half duplex capable.
        pub const LP_HD1000: u16 = 1 << 10;
        /// Link partner 1000BASE-T full duplex capable.
        pub const LP_FD1000: u16 = 1 << 11;
        /// Remote receiver OK.
        pub const REMOTE_RX_OK: u16 = 1 << 12;
        /// Local receiver OK.
        pub const LOCAL_RX_OK: u16 = 1 << 13;
    }

    /// M88 PHY specific control (PSCR, register 16) bits.
    pub mod pscr {
        /// Polarity reversal correction disabled (0 = the PHY corrects reversed polarity).
        pub const POLARITY_REVERSAL_DISABLE: u16 = 1 << 1;
        /// MDI crossover mode field (bits 6:5).
        pub const MDIX_MASK: u16 = 3 << 5;
        /// Crossover mode: manual MDI.
        pub const MDI_MANUAL: u16 = 0;
        /// Crossover mode: manual MDI-X.
        pub const MDIX_MANUAL: u16 = 1 << 5;
        /// Crossover mode: automatic for 1000BASE-T only (10/100 MDI).
        pub const AUTO_X_1000T: u16 = 2 << 5;
        /// Crossover mode: automatic for all speeds.
        pub const AUTO_X_ALL: u16 = 3 << 5;
        /// Assert CRS on transmit (needed for half duplex).
        pub const ASSERT_CRS_ON_TX: u16 = 1 << 11;
        /// MDI crossover mode shift (bits 6:5: 00 = MDI, 01 = MDI-X, 1x = automatic).
        pub const MDI_MODE_SHIFT: u16 = 5;
        /// MDI crossover mode mask.
        pub const MDI_MODE_MASK: u16 = 3 << 5;
        /// Extended 10BASE-T distance (lower receive threshold for long cables).
        pub const EXT_10BT_DISTANCE: u16 = 1 << 7;
    }

    /// M88 extended PHY specific control (EPSCR, register 20) bits.
    pub mod epscr {
        /// TX_CLK frequency field (bits 6:4).
        pub const TX_CLK_MASK: u16 = 7 << 4;
        /// TX_CLK 25 MHz.
        pub const TX_CLK_25: u16 = 7 << 4;
        /// Downshift counter when SLAVE (bits 9:8): 00 = disabled, 01 = 1x, 10 = 2x, 11 = 3x.
        pub const SLAVE_DOWNSHIFT_MASK: u16 = 3 << 8;
        /// SLAVE downshift after 1 failed auto-negotiation attempt.
        pub const SLAVE_DOWNSHIFT_1X: u16 = 1 << 8;
        /// Downshift counter when MASTER (bits 11:10): 00 = 1x, 01 = 2x, 10 = 3x, 11 = 4x.
        pub const MASTER_DOWNSHIFT_MASK: u16 = 3 << 10;
        /// MASTER downshift after 1 failed auto-negotiation attempt.
        pub const MASTER_DOWNSHIFT_1X: u16 = 0;
    }

    /// M88 PHY specific status (PSSR) bits.
    pub mod pssr {
        /// Receive polarity reversed (real time).
        pub const REV_POLARITY: u16 = 1 << 1;
        /// The PHY downshifted to a lower speed.
        pub const DOWNSHIFT: u16 = 1 << 5;
        /// MDI crossover status: 1 = MDI-X, 0 = MDI.
        pub const MDIX: u16 = 1 << 6;
        /// Cable length estimate (bits 9:7, 1000 Mb/s only): 0 = < 50 m, 1 = 50-80 m,
        /// 2 = 80-110 m, 3 = 110-140 m, 4 = > 140 m.
        pub const CABLE_LENGTH_MASK: u16 = 7 << 7;
        /// Shift of [`CABLE_LENGTH_MASK`].
        pub const CABLE_LENGTH_SHIFT: u16 = 7;
        /// Speed field (bits 15:14).
        pub const SPEED_MASK: u16 = 3 << 14;
        /// Real-time link up.
        pub const LINK: u16 = 1 << 10;
        /// Speed and duplex resolved.
        pub const RESOLVED: u16 = 1 << 11;
        /// Page received.
        pub const PAGE_RCVD: u16 = 1 << 12;
        /// Full duplex.
        pub const FD: u16 = 1 << 13;
        /// Speed shift (bits 15:14: 10 = 1000, 01 = 100, 00 = 10).
        pub const SPEED_SHIFT: u16 = 14;
        /// 1000 Mb/s.
        pub const SPEED_1000: u16 = 2 << 14;
        /// 100 Mb/s.
        pub const SPEED_100: u16 = 1 << 14;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_layouts_are_16_bytes() {
        // 8254x SDM 3.2.3 / 3.3.3 / 3.3.6 / 3.3.7: every descriptor is 16 bytes.
        assert_eq!(core::mem::size_of::<RxDesc>(), DESC_LEN);
        assert_eq!(core::mem::size_of::<TxDesc>(), DESC_LEN);
        assert_eq!(core::mem::size_of::<TxContextDesc>(), DESC_LEN);
        assert_eq!(core::mem::size_of::<TxDataDesc>(), DESC_LEN);
    }

    #[test]
    fn buffer_sizes() {
        // 8254x SDM 13.4.22 Receive Control Register: BSIZE/BSEX encodings.
        assert_eq!(rctl::buffer_size(0), Some(2048));
        assert_eq!(rctl::buffer_size(1 << 16), Some(1024));
        assert_eq!(rctl::buffer_size(2 << 16), Some(512));
        assert_eq!(rctl::buffer_size(3 << 16), Some(256));
        assert_eq!(rctl::buffer_size(rctl::BSEX), None);
        assert_eq!(rctl::buffer_size(rctl::BSEX | 1 << 16), Some(16384));
        assert_eq!(rctl::buffer_size(rctl::BSEX | 2 << 16), Some(8192));
        assert_eq!(rctl::buffer_size(rctl::BSEX | 3 << 16), Some(4096));
    }

    #[test]
    fn mta_hash_offsets() {
        // 8254x SDM 13.4 Multicast Table Array: MO selects bits 47:36, 46:35, 45:34, 43:32.
        let mac = [0x01, 0x00, 0x5E, 0x00, 0x00, 0x01];
        assert_eq!(mta_hash(mac, 0), 0x010);
        assert_eq!(mta_hash(mac, 1), 0x020);
        assert_eq!(mta_hash(mac, 2), 0x040);
        assert_eq!(mta_hash(mac, 3), 0x100);
        let (l, h) = mac_to_ra([1, 2, 3, 4, 5, 6]);
        assert_eq!((l, h), (0x0403_0201, 0x0605));
        assert_eq!(ra_to_mac(l, h), [1, 2, 3, 4, 5, 6]);
    }
}

/// PCI configuration space offsets and bits (PCI Local Bus Specification 3.0, 6.2).
pub mod pci {
    /// Vendor ID (16 bits).
    pub const VENDOR_ID: u16 = 0x00;
    /// Device ID (16 bits).
    pub const DEVICE_ID: u16 = 0x02;
    /// Command (16 bits).
    pub const COMMAND: u16 = 0x04;
    /// Status (16 bits).
    pub const STATUS: u16 = 0x06;
    /// Revision ID (8 bits).
    pub const REVISION_ID: u16 = 0x08;
    /// Class code (24 bits, at 0x09..0x0C).
    pub const CLASS_CODE: u16 = 0x09;
    /// Cache line size (8 bits).
    pub const CACHE_LINE_SIZE: u16 = 0x0C;
    /// Latency timer (8 bits).
    pub const LATENCY_TIMER: u16 = 0x0D;
    /// Base address register 0: the memory-mapped registers.
    pub const BAR0: u16 = 0x10;
    /// Base address register 1: I/O window.
    pub const BAR1: u16 = 0x14;
    /// Subsystem vendor ID (16 bits).
    pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2C;
    /// Subsystem ID (16 bits).
    pub const SUBSYSTEM_ID: u16 = 0x2E;
    /// Interrupt line (8 bits).
    pub const INTERRUPT_LINE: u16 = 0x3C;
    /// Interrupt pin (8 bits; 1 = INTA#).
    pub const INTERRUPT_PIN: u16 = 0x3D;

    /// COMMAND bits.
    pub mod command {
        /// I/O space enable.
        pub const IO: u16 = 1 << 0;
        /// Memory space enable.
        pub const MEMORY: u16 = 1 << 1;
        /// Bus master enable.
        pub const BUS_MASTER: u16 = 1 << 2;
        /// Parity error response.
        pub const PARITY: u16 = 1 << 6;
        /// SERR# enable.
        pub const SERR: u16 = 1 << 8;
        /// INTx emulation disable.
        pub const INTX_DISABLE: u16 = 1 << 10;
    }

    /// STATUS bits.
    pub mod status {
        /// Interrupt status: the function has an interrupt pending.
        pub const INTERRUPT: u16 = 1 << 3;
        /// Fast back-to-back capable.
        pub const FAST_B2B: u16 = 1 << 7;
        /// DEVSEL timing: medium.
        pub const DEVSEL_MEDIUM: u16 = 1 << 9;
    }
}

/// The serial EEPROM's map (SDM ch. 5).
pub mod eeprom {
    /// Word offsets of the EEPROM fields (SDM 5.6, "EEPROM Address Map").
    pub mod word {
        /// Ethernet address bytes 0-1.
        pub const MAC0: usize = 0x00;
        /// Ethernet address bytes 2-3.
        pub const MAC1: usize = 0x01;
        /// Ethernet address bytes 4-5.
        pub const MAC2: usize = 0x02;
        /// Compatibility word.
        pub const COMPAT: usize = 0x03;
        /// ID LED settings: four 4-bit codes, LED0 in bits 3:0 (0x0000 and 0xFFFF mean "use
        /// the defaults").
        pub const ID_LED: usize = 0x04;
        /// EEPROM image version.
        pub const IMAGE_VERSION: usize = 0x05;
        /// PBA (printed board assembly) number, high word.
        pub const PBA_HIGH: usize = 0x08;
        /// PBA number, low word.
        pub const PBA_LOW: usize = 0x09;
        /// Initialization Control Word 1.
        pub const ICW1: usize = 0x0A;
        /// Subsystem ID.
        pub const SUBSYS_ID: usize = 0x0B;
        /// Subsystem vendor ID.
        pub const SUBSYS_VENDOR: usize = 0x0C;
        /// Device ID.
        pub const DEVICE_ID: usize = 0x0D;
        /// Vendor ID.
        pub const VENDOR_ID: usize = 0x0E;
        /// Initialization Control Word 2 (on the 82544 also the APM enable bit).
        pub const ICW2: usize = 0x0F;
        /// Initialization Control Word 3, port A (82540 and later: the APM enable bit).
        pub const ICW3_PORT_A: usize = 0x24;
    }
}
