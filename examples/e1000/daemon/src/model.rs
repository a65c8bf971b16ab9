//! The device model as the daemon sees it: `e1000_sim::E1000Sim` with the `sim` feature;
//! without it an uninhabited type, so every `Option<Arc<Model>>` is `None` and the code
//! that drives the simulated peer (traffic generator, wake) reports that it needs `--sim`.

#[cfg(feature = "sim")]
pub use e1000_sim::E1000Sim as Model;

/// No device model in this build (`--no-default-features` without `sim`).
#[cfg(not(feature = "sim"))]
#[derive(Debug)]
pub enum Model {}

/// PAUSE frames that crossed the simulated wire (the traffic report's flow-control count).
pub fn pause_frames(m: &Model) -> u64 {
    #[cfg(feature = "sim")]
    {
        let p = m.peer_stats();
        p.xoff_received + p.xon_received + p.pause_sent
    }
    #[cfg(not(feature = "sim"))]
    match *m {}
}

/// The simulated peer's MAC address (where the small stack's replies go).
pub fn peer_mac(m: &Model) -> [u8; 6] {
    #[cfg(feature = "sim")]
    {
        m.peer_addr().0
    }
    #[cfg(not(feature = "sim"))]
    match *m {}
}
