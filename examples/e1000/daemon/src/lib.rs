//! e1000d, the e1000 microdriver daemon, and the control protocol `e1000ctl` speaks.
//!
//! * [`daemon`]: start-up (device, supervisor, driver, network side), the control socket
//!   and shutdown; [`handlers`] answers each request with the driver's ethtool operations;
//! * [`stack`]: what receives frames when no TAP interface is attached (ARP, ping, the
//!   traffic generator); [`tap`]: the TAP interface to the host's stack, and the data
//!   path between it and the NIC (`bridge`: batched, carrier following the link);
//!   [`hoststate`]: the host's MTU, MAC, filters and VLAN devices on the TAP reach the
//!   driver (rtnetlink);
//! * [`protocol`] and [`client`]: one JSON request and one JSON reply per connection;
//! * [`format`]: ethtool's output layout; [`json`]: `e1000ctl --json`'s documents;
//! * [`faults`]: the user-half faults `e1000ctl inject` causes; [`metrics`]: the
//!   Prometheus endpoint (`--metrics ADDR`);
//! * [`uio`]: the seam to the UIO backend (`--uio PCI_ADDR`).
//!
//! The binaries: `e1000d`, `e1000ctl` and `e1000-demo` (README's main command).

#![warn(missing_docs)]

mod bridge;
pub mod client;
pub mod daemon;
pub mod device;
pub mod faults;
pub mod format;
mod handlers;
pub mod hoststate;
pub mod json;
pub mod metrics;
mod model;
pub mod protocol;
mod sim_peer;
pub mod stack;
pub mod tap;

pub use client::{request, ClientError, DEFAULT_SOCKET};
pub use daemon::{Backend, Daemon, DaemonConfig, DaemonError};
