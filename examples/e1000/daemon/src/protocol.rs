//! The control protocol between `e1000ctl` and `e1000d`.
//!
//! One request per connection: the client writes one JSON object and a newline, the daemon
//! answers with one JSON object and a newline and closes. Lines are bounded
//! ([`MAX_LINE`]); anything that does not parse gets an error reply, never a crash.

use std::io::{BufRead, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest request or reply line accepted (an EEPROM or register dump fits easily).
pub const MAX_LINE: usize = 1 << 20;

/// A fault `e1000ctl inject` can cause in the user half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// The user half aborts inside an upcall (a driver bug that crashes it).
    Crash,
    /// The user half stops answering (it is stopped with SIGSTOP); the supervisor's
    /// heartbeat notices and restarts it.
    Hang,
    /// The user half scribbles random bytes over its channel; the kernel half rejects the
    /// frames and restarts it.
    Garbage,
    /// The kernel half sends the user half SIGKILL (an out-of-memory kill, an operator).
    Kill,
    /// The user half panics inside an upcall: the call fails with the panic's message, the
    /// user half keeps serving.
    Panic,
    /// The user half answers with forged values: combolock ids that name no lock or a lock
    /// of another type, tracked pointers near null or never registered, and calls to an
    /// entry id that does not exist. The kernel half must refuse every one.
    Forged,
    /// The user half tries to hold each of the hot path's combolocks for 100 ms (they are
    /// snapshot-only: each hold must be refused, the critical path never waits).
    #[serde(rename = "hold-lock")]
    HoldLock,
    /// The user half takes snapshots of the hot path's combolocks back to back for 100 ms
    /// (each takes the critical path's lock for one encode).
    #[serde(rename = "hold-repeatedly")]
    HoldRepeatedly,
    /// The user half takes this many milliseconds to answer one upcall.
    Slow(u32),
    /// The user half is killed, and its successor crashes while it is being re-attached
    /// (inside the supervisor's re-attach hook); a third one must come up.
    #[serde(rename = "crash-during-reattach")]
    CrashDuringReattach,
    /// The warm standby is stopped (SIGSTOP: a standby that hangs), then the user half is
    /// killed: the supervisor must find the standby hung within a heartbeat timeout and
    /// start a fresh user half, not hold every upcall while it waits for a hello.
    #[serde(rename = "hang-standby")]
    HangStandby,
}

impl Fault {
    /// Parses `e1000ctl inject`'s words (`slow` takes milliseconds as `arg`).
    pub fn parse(word: &str, arg: Option<u32>) -> Result<Fault, String> {
        Ok(match (word, arg) {
            ("crash", None) => Fault::Crash,
            ("hang", None) => Fault::Hang,
            ("garbage", None) => Fault::Garbage,
            ("kill", None) => Fault::Kill,
            ("panic", None) => Fault::Panic,
            ("forged", None) => Fault::Forged,
            ("hold-lock", None) => Fault::HoldLock,
            ("hold-repeatedly", None) => Fault::HoldRepeatedly,
            ("slow", Some(ms)) if (1..=MAX_SLOW_MS).contains(&ms) => Fault::Slow(ms),
            ("slow", _) => {
                return Err(format!(
                    "inject slow takes milliseconds, 1 to {MAX_SLOW_MS} (e.g. `inject slow 300`)"
                ))
            }
            ("crash-during-reattach", None) => Fault::CrashDuringReattach,
            ("hang-standby", None) => Fault::HangStandby,
            (w, Some(_)) if FAULT_WORDS.contains(&w) => {
                return Err(format!("inject {w} takes no argument"))
            }
            (other, _) => {
                return Err(format!(
                    "inject takes {}, not {other:?}",
                    FAULT_WORDS.join(", ")
                ))
            }
        })
    }
}

/// The longest `inject slow`.
pub const MAX_SLOW_MS: u32 = 10_000;

/// The faults `e1000ctl inject` names.
pub const FAULT_WORDS: [&str; 11] = [
    "crash",
    "hang",
    "garbage",
    "kill",
    "panic",
    "forged",
    "hold-lock",
    "hold-repeatedly",
    "slow",
    "crash-during-reattach",
    "hang-standby",
];

/// What `e1000ctl` asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// `-i`: driver information.
    DrvInfo,
    /// No option: link settings (like `ethtool DEVNAME`).
    LinkSettings,
    /// `-s`: set link settings.
    SetLink {
        /// Forced speed in Mb/s.
        speed: Option<u32>,
        /// Forced duplex: true for full.
        full_duplex: Option<bool>,
        /// Auto-negotiation on or off.
        autoneg: Option<bool>,
        /// MDI crossover (`mdix auto|on|off`).
        #[serde(default)]
        mdix: Option<Mdix>,
        /// Wake-on-LAN modes (`wol pumbgd`), ethtool's `WAKE_*` bits.
        #[serde(default)]
        wol: Option<u32>,
    },
    /// `-S`: statistics.
    Stats,
    /// `-g`: ring sizes.
    Rings,
    /// `-G`: resize rings.
    SetRings {
        /// Receive descriptors.
        rx: Option<u32>,
        /// Transmit descriptors.
        tx: Option<u32>,
    },
    /// `-a`: pause parameters.
    Pause,
    /// `-A`: set pause parameters.
    SetPause {
        /// Negotiate pause.
        autoneg: Option<bool>,
        /// Honour received pause frames.
        rx: Option<bool>,
        /// Send pause frames.
        tx: Option<bool>,
    },
    /// `-c`: interrupt coalescing.
    Coalesce,
    /// `-C`: set interrupt coalescing.
    SetCoalesce {
        /// RDTR in microseconds.
        rx_usecs: Option<u32>,
        /// TIDV in microseconds.
        tx_usecs: Option<u32>,
        /// RADV in microseconds.
        rx_usecs_abs: Option<u32>,
        /// TADV in microseconds.
        tx_usecs_abs: Option<u32>,
        /// Adaptive interrupt throttling.
        adaptive_rx: Option<bool>,
    },
    /// `-e`: EEPROM bytes.
    Eeprom {
        /// First byte.
        offset: u32,
        /// Bytes (None: to the end).
        length: Option<u32>,
    },
    /// `-d`: register dump.
    Regs,
    /// `-t`: self-test.
    SelfTest {
        /// Run the offline tests too (the link goes down for a moment).
        offline: bool,
    },
    /// `-r`: restart auto-negotiation.
    NwayReset,
    /// `-p`: blink the LED for `seconds`.
    Identify {
        /// How long.
        seconds: u32,
    },
    /// `-k`: feature flags.
    Features,
    /// `-K`: change feature flags.
    SetFeatures {
        /// The changes, in the order given.
        changes: Vec<FeatureChange>,
    },
    /// `stats64`: the net-device statistics.
    Stats64,
    /// `status`: the microdriver's own view.
    Status,
    /// `suspend`: ready the device for power-off as a system suspend does (close the
    /// interface, arm Wake-on-LAN or power the PHY down).
    Suspend,
    /// `resume`: bring a suspended device back (reset, reprogram, reopen).
    Resume,
    /// `revive`: a degraded driver (the user half crash-looped) tries a user half now
    /// instead of at its next attempt.
    Revive,
    /// `inject`: cause a fault in the user half.
    Inject {
        /// Which.
        fault: Fault,
    },
    /// `ping`: echo requests to the simulated peer from the daemon's own small stack.
    Ping {
        /// How many.
        count: u32,
    },
    /// `traffic start`: stream frames both ways between the driver and the simulated peer.
    TrafficStart {
        /// Frames each way.
        frames: u64,
        /// Frame sizes, cycled (without FCS).
        sizes: Vec<u32>,
    },
    /// `traffic`: the current (or last) stream's counters.
    TrafficStatus,
    /// `wake`: the simulated peer sends a magic packet for the NIC's address (what
    /// `etherwake` does on a real wire), to wake a suspended device.
    Wake,
    /// `cable plug|unplug`: the simulated wire's cable (`--sim` only), so the link can be
    /// taken away and given back as a real cable would.
    Cable {
        /// Plugged in.
        plugged: bool,
    },
    /// `shutdown`: stop the daemon cleanly.
    Shutdown,
}

/// An MDI/MDI-X crossover setting, as `ethtool -s DEV mdix` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mdix {
    /// Automatic crossover (`mdix auto`).
    Auto,
    /// Forced MDI-X (`mdix on`).
    On,
    /// Forced MDI (`mdix off`).
    Off,
}

/// Driver information (`-i`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrvInfo {
    /// Driver name.
    pub driver: String,
    /// Version.
    pub version: String,
    /// The part.
    pub part: String,
    /// Bus information.
    pub bus_info: String,
    /// Statistics count.
    pub n_stats: u32,
    /// Self-test count.
    pub testinfo_len: u32,
    /// Register dump words.
    pub regdump_len: u32,
    /// EEPROM bytes.
    pub eedump_len: u32,
    /// The board's PBA number from the EEPROM (`c91016-006`), as Linux's e1000 logs it
    /// ("PBA No:").
    #[serde(default)]
    pub pba: String,
}

/// Link settings (no option).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// Supported modes, ethtool names.
    pub supported: Vec<String>,
    /// Advertised modes, ethtool names.
    pub advertised: Vec<String>,
    /// Auto-negotiation requested.
    pub autoneg: bool,
    /// Link detected.
    pub link_up: bool,
    /// Speed in Mb/s (0: unknown).
    pub speed: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// MAC address.
    pub mac: [u8; 6],
    /// The link partner's advertised modes, ethtool names (empty until
    /// auto-negotiation completes).
    #[serde(default)]
    pub lp_advertised: Vec<String>,
    /// The link partner advertised symmetric PAUSE.
    #[serde(default)]
    pub lp_pause: bool,
    /// The link partner advertised asymmetric PAUSE direction.
    #[serde(default)]
    pub lp_asym_pause: bool,
    /// The link partner auto-negotiated (acknowledged our base page).
    #[serde(default)]
    pub lp_autoneg: bool,
    /// The requested crossover (ethtool's `eth_tp_mdix_ctrl`: `e1000::phy::ETH_TP_MDI`,
    /// `ETH_TP_MDI_X` or `ETH_TP_MDI_AUTO`).
    #[serde(default)]
    pub mdix_ctrl: u8,
    /// The crossover the PHY resolved (ethtool's `eth_tp_mdix`: `ETH_TP_MDI`,
    /// `ETH_TP_MDI_X`, or `ETH_TP_MDI_INVALID` with no link).
    #[serde(default)]
    pub mdix: u8,
    /// The Wake-on-LAN modes the part supports (ethtool `WAKE_*` bits).
    #[serde(default)]
    pub wol_supported: u32,
    /// The Wake-on-LAN modes armed at suspend and shutdown.
    #[serde(default)]
    pub wol: u32,
}

/// Ring sizes (`-g`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rings {
    /// Receive descriptors.
    pub rx: u32,
    /// Transmit descriptors.
    pub tx: u32,
    /// Receive maximum.
    pub rx_max: u32,
    /// Transmit maximum.
    pub tx_max: u32,
}

/// Pause parameters (`-a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// Negotiated.
    pub autoneg: bool,
    /// Honour received pause frames.
    pub rx: bool,
    /// Send pause frames.
    pub tx: bool,
}

/// Coalescing (`-c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coalesce {
    /// RDTR.
    pub rx_usecs: u32,
    /// RADV.
    pub rx_usecs_abs: u32,
    /// TIDV.
    pub tx_usecs: u32,
    /// TADV.
    pub tx_usecs_abs: u32,
    /// ITR limit, interrupts per second (0: none).
    pub max_irq_rate: u32,
    /// Adaptive throttling.
    pub adaptive: bool,
}

/// One feature flag (`-k`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureFlag {
    /// ethtool's name.
    pub name: String,
    /// In force.
    pub on: bool,
    /// Requested (differs from `on` while a dependency holds it off).
    pub requested: bool,
    /// Cannot be changed.
    pub fixed: bool,
}

/// One change `-K` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureChange {
    /// ethtool's name or short name.
    pub name: String,
    /// On or off.
    pub on: bool,
}

/// The net-device statistics (`stats64`: Linux's `rtnl_link_stats64` as the driver fills
/// it in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Received frames nobody took.
    pub rx_dropped: u64,
    /// Packets refused at transmit.
    pub tx_dropped: u64,
    /// Multicast frames received.
    pub multicast: u64,
    /// Collisions.
    pub collisions: u64,
    /// Length errors.
    pub rx_length_errors: u64,
    /// CRC errors.
    pub rx_crc_errors: u64,
    /// Alignment (frame) errors.
    pub rx_frame_errors: u64,
    /// Frames missed (FIFO full).
    pub rx_missed_errors: u64,
    /// Aborted transmissions (excessive collisions).
    pub tx_aborted_errors: u64,
    /// Transmissions without carrier sense.
    pub tx_carrier_errors: u64,
    /// Late collisions.
    pub tx_window_errors: u64,
}

/// One register in a dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// Offset in BAR0.
    pub offset: u32,
    /// Name.
    pub name: String,
    /// Value.
    pub value: u32,
}

/// One self-test result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    /// Test name (ethtool's strings).
    pub name: String,
    /// 0 = pass.
    pub result: u64,
}

/// Per-entry call counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryStatus {
    /// `upcall` (served by the user half) or `downcall` (served by the kernel half).
    pub direction: String,
    /// Entry name.
    pub name: String,
    /// Calls.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
    /// Median latency (bucket upper bound).
    pub p50: Duration,
    /// 99th percentile latency (bucket upper bound).
    pub p99: Duration,
}

/// The user half and the channel, in split mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitStatus {
    /// The user half's pid (None while it is down).
    pub pid: Option<u32>,
    /// Its uptime.
    pub uptime: Duration,
    /// Restarts so far.
    pub restarts: u64,
    /// Hangs detected.
    pub hangs: u64,
    /// Heartbeat pings sent again because the user half had waited for a CPU (a busy
    /// machine, not a hang).
    #[serde(default)]
    pub starved_pings: u64,
    /// Too many restarts: running degraded (no user half) until the next attempt.
    pub degraded: bool,
    /// While degraded: how long until the supervisor tries a user half again.
    #[serde(default)]
    pub next_attempt: Option<Duration>,
    /// Times the driver went degraded.
    #[serde(default)]
    pub degradations: u64,
    /// Times a degraded driver got a user half again (by its backoff or `revive`).
    #[serde(default)]
    pub revivals: u64,
    /// The last restart's time from death to answering.
    pub last_recovery: Option<Duration>,
    /// Tracker objects.
    pub tracker_objects: usize,
    /// Tracker bytes.
    pub tracker_bytes: usize,
    /// Tracker translations.
    pub tracker_translations: u64,
    /// Tracker rejections.
    pub tracker_rejections: u64,
    /// Frames from the user half the kernel half rejected.
    pub rejected_frames: u64,
    /// The most recent rejection reasons.
    pub recent_rejections: Vec<String>,
    /// Calls per entry.
    pub entries: Vec<EntryStatus>,
    /// Injected delay per crossing.
    pub crossing_delay: Duration,
    /// User-half worker threads.
    pub workers: usize,
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// `split` or `monolithic`.
    pub mode: String,
    /// `sim`, `uio ADDR` or `vfio ADDR`.
    pub backend: String,
    /// The TAP interface bridged to, if any.
    pub tap: Option<String>,
    /// The daemon's pid (the kernel half).
    pub daemon_pid: u32,
    /// Daemon uptime.
    pub uptime: Duration,
    /// Link up.
    pub link_up: bool,
    /// A device reset is pending: a configuration call failed midway, and the reset runs
    /// from the kernel half's adapter once a user half answers again.
    #[serde(default)]
    pub reset_pending: bool,
    /// The device is suspended (`e1000ctl suspend`) until `e1000ctl resume`.
    #[serde(default)]
    pub suspended: bool,
    /// Why the device no longer holds what the driver programmed (reset or taken by
    /// someone else), if the watchdog found that.
    #[serde(default)]
    pub device_fault: Option<String>,
    /// The Wake-on-LAN modes armed while suspended (ethtool `WAKE_*` bits).
    #[serde(default)]
    pub wake_on: u32,
    /// Frames handed to the network side.
    pub rx_frames: u64,
    /// Frames accepted for transmission.
    pub tx_frames: u64,
    /// Received frames the network side (TAP) did not take.
    #[serde(default)]
    pub rx_dropped: u64,
    /// Frames from the network side (TAP) not transmitted: no carrier, no room in the
    /// ring in time, or refused by the driver.
    #[serde(default)]
    pub tx_dropped: u64,
    /// Split details (None in monolithic mode).
    pub split: Option<SplitStatus>,
}

/// What `suspend` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspendReport {
    /// The interface was open (resume reopens it).
    pub was_up: bool,
    /// The Wake-on-LAN modes armed (ethtool `WAKE_*` bits; 0: wake-up off, and the PHY
    /// powered down where the part allows it).
    pub wake_on: u32,
}

/// What `resume` found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeReport {
    /// The wake-up status (WUS) found: which wake-up filters matched while suspended.
    pub wake_status: u32,
    /// The ethtool `WAKE_*` modes whose filters matched.
    pub woken_by: u32,
    /// The interface was reopened.
    pub reopened: bool,
}

/// A ping run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingReport {
    /// Requests sent.
    pub sent: u32,
    /// Replies per sequence number: round-trip time, or None if none came.
    pub replies: Vec<Option<Duration>>,
}

/// A traffic stream's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficReport {
    /// Still running.
    pub running: bool,
    /// Frames asked for, each way.
    pub frames: u64,
    /// Frames the kernel half accepted for transmission.
    pub tx_accepted: u64,
    /// Frames the kernel half refused (queue full past the timeout): not lost, never taken.
    pub tx_refused: u64,
    /// Frames the peer received since the stream started.
    pub peer_received: u64,
    /// Frames the peer sent us.
    pub peer_sent: u64,
    /// Stream frames received in order (a frame after a gap counts; the gap is lost).
    pub rx_in_order: u64,
    /// Stream frames received out of order or duplicated.
    pub rx_bad: u64,
    /// Stream frames the peer received from us out of order, duplicated or corrupted.
    #[serde(default)]
    pub peer_bad: u64,
    /// Time since the stream started.
    pub elapsed: Duration,
    /// The longest time the hot path was blocked (not waiting for a CPU) between two
    /// accepted transmits or two received stream frames, outside reconfiguration.
    #[serde(default)]
    pub longest_stall: Duration,
    /// Gaps over [`STALL_THRESHOLD`] outside reconfiguration (hot-path stalls).
    #[serde(default)]
    pub stalls: u64,
    /// Gaps over [`STALL_THRESHOLD`] while the device was being reconfigured on purpose
    /// (a ring resize, a reset after a failed configuration call): reported, not stalls.
    #[serde(default)]
    pub reconfig_pauses: u64,
    /// Gaps over [`STALL_THRESHOLD`] across which PAUSE frames went over the wire (the
    /// link's flow control held the frames): reported, not stalls.
    #[serde(default)]
    pub flow_pauses: u64,
    /// Frames the device model discarded from the NIC's packet buffer during the stream
    /// (a reset, or the receiver turned off, while it held them): where lost frames went,
    /// as only the model can tell. It names a loss, never excuses one.
    #[serde(default)]
    pub nic_discarded: u64,
}

/// A hot-path gap longer than this counts as a stall.
pub const STALL_THRESHOLD: Duration = Duration::from_millis(10);

impl TrafficReport {
    /// Frames the driver accepted that did not arrive, either way (meaningful once the
    /// stream finished).
    pub fn lost(&self) -> u64 {
        self.tx_accepted.saturating_sub(self.peer_received)
            + self.peer_sent.saturating_sub(self.rx_in_order)
    }
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Done, nothing to show.
    Done,
    /// Driver information.
    DrvInfo(DrvInfo),
    /// Link settings.
    Link(LinkInfo),
    /// Statistics, names and values in order.
    Stats {
        /// `(name, value)` pairs.
        stats: Vec<(String, u64)>,
    },
    /// Ring sizes.
    Rings(Rings),
    /// Pause parameters.
    Pause(Pause),
    /// Coalescing.
    Coalesce(Coalesce),
    /// EEPROM bytes from `offset`.
    Eeprom {
        /// First byte.
        offset: u32,
        /// Bytes.
        data: Vec<u8>,
    },
    /// Registers.
    Regs {
        /// The dump.
        regs: Vec<Register>,
    },
    /// Self-test results.
    SelfTest {
        /// Per test.
        results: Vec<TestResult>,
    },
    /// Feature flags (`-k`).
    Features {
        /// In ethtool's order.
        features: Vec<FeatureFlag>,
    },
    /// What `-K` changed.
    FeatureChanges {
        /// The changes asked for.
        requested: Vec<FeatureChange>,
        /// The flags before.
        before: Vec<FeatureFlag>,
        /// The flags after.
        after: Vec<FeatureFlag>,
    },
    /// The net-device statistics.
    Stats64(NetStats),
    /// Status.
    Status(Box<Status>),
    /// The device is suspended.
    Suspended(SuspendReport),
    /// The device is resumed.
    Resumed(ResumeReport),
    /// Ping results.
    Ping(PingReport),
    /// Traffic counters.
    Traffic(TrafficReport),
    /// The request failed.
    Error {
        /// Why, for a person.
        message: String,
    },
}

/// Protocol errors (framing and JSON).
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The socket failed.
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed without a full line.
    #[error("the other side closed the connection without answering")]
    Closed,
    /// A line longer than [`MAX_LINE`].
    #[error("message longer than {MAX_LINE} bytes")]
    TooLong,
    /// Not the JSON we expect.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

/// Writes `value` as one line.
pub fn write_message<T: Serialize>(w: &mut impl Write, value: &T) -> Result<(), ProtocolError> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()?;
    Ok(())
}

/// Reads one line (at most [`MAX_LINE`] bytes) and parses it.
pub fn read_message<T: for<'de> Deserialize<'de>>(
    r: &mut impl BufRead,
) -> Result<T, ProtocolError> {
    let mut line = Vec::new();
    let mut limited = std::io::Read::take(r, MAX_LINE as u64 + 1);
    let n = limited.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(ProtocolError::Closed);
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() > MAX_LINE {
            ProtocolError::TooLong
        } else {
            ProtocolError::Closed
        });
    }
    Ok(serde_json::from_slice(&line)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let requests = [
            Request::DrvInfo,
            Request::SetRings {
                rx: Some(512),
                tx: None,
            },
            Request::Inject {
                fault: Fault::Garbage,
            },
            Request::TrafficStart {
                frames: 10,
                sizes: vec![60, 1514],
            },
            Request::SetFeatures {
                changes: vec![FeatureChange {
                    name: "tso".into(),
                    on: false,
                }],
            },
            Request::Stats64,
            Request::Revive,
            Request::Suspend,
            Request::Resume,
            Request::Wake,
            Request::Cable { plugged: false },
            Request::SetLink {
                speed: None,
                full_duplex: None,
                autoneg: Some(true),
                mdix: Some(Mdix::On),
                wol: Some(1 << 5),
            },
        ];
        for r in requests {
            let mut buf = Vec::new();
            write_message(&mut buf, &r).expect("write");
            let back: Request = read_message(&mut buf.as_slice()).expect("read");
            assert_eq!(back, r);
        }
    }

    #[test]
    fn older_set_link_requests_still_parse() {
        let old = br#"{"op":"set_link","speed":100,"full_duplex":true,"autoneg":false}"#;
        let mut line = old.to_vec();
        line.push(b'\n');
        let r: Request = read_message(&mut line.as_slice()).expect("read");
        assert_eq!(
            r,
            Request::SetLink {
                speed: Some(100),
                full_duplex: Some(true),
                autoneg: Some(false),
                mdix: None,
                wol: None,
            }
        );
        let r: Result<Request, _> =
            read_message(&mut &b"{\"op\":\"set_link\",\"mdix\":\"sideways\"}\n"[..]);
        assert!(matches!(r, Err(ProtocolError::Json(_))), "{r:?}");
    }

    #[test]
    fn bad_lines_are_errors() {
        let r: Result<Request, _> = read_message(&mut &b"{\"op\":\"reboot\"}\n"[..]);
        assert!(matches!(r, Err(ProtocolError::Json(_))), "{r:?}");
        let r: Result<Request, _> = read_message(&mut &b"{\"op\":\"drv_info\"}"[..]);
        assert!(matches!(r, Err(ProtocolError::Closed)), "{r:?}");
        let r: Result<Request, _> = read_message(&mut &b""[..]);
        assert!(matches!(r, Err(ProtocolError::Closed)), "{r:?}");
        let long = vec![b'x'; MAX_LINE + 10];
        let r: Result<Request, _> = read_message(&mut long.as_slice());
        assert!(matches!(r, Err(ProtocolError::TooLong)), "{r:?}");
    }

    #[test]
    fn faults_parse_and_round_trip() {
        for (word, arg, fault) in [
            ("crash", None, Fault::Crash),
            ("kill", None, Fault::Kill),
            ("panic", None, Fault::Panic),
            ("forged", None, Fault::Forged),
            ("hold-lock", None, Fault::HoldLock),
            ("hold-repeatedly", None, Fault::HoldRepeatedly),
            ("slow", Some(300), Fault::Slow(300)),
            ("crash-during-reattach", None, Fault::CrashDuringReattach),
        ] {
            assert_eq!(Fault::parse(word, arg), Ok(fault), "{word}");
            let mut buf = Vec::new();
            write_message(&mut buf, &Request::Inject { fault }).expect("write");
            let back: Request = read_message(&mut buf.as_slice()).expect("read");
            assert_eq!(back, Request::Inject { fault });
        }
        assert!(Fault::parse("slow", None).is_err());
        assert!(Fault::parse("slow", Some(0)).is_err());
        assert!(Fault::parse("slow", Some(MAX_SLOW_MS + 1)).is_err());
        assert!(Fault::parse("crash", Some(5)).is_err());
        let e = Fault::parse("lightning", None).expect_err("unknown");
        assert!(e.contains("crash-during-reattach"), "{e}");
    }

    #[test]
    fn lost_counts_both_directions() {
        let t = TrafficReport {
            tx_accepted: 10,
            peer_received: 9,
            peer_sent: 10,
            rx_in_order: 8,
            ..TrafficReport::default()
        };
        assert_eq!(t.lost(), 3);
    }
}
