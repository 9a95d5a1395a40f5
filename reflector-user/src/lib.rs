//! reflector's control plane: loads the kernel program, keeps its maps in step with the
//! command line and the host's addresses, and detaches everything on shutdown.

pub mod cli;
pub mod clsact;
pub mod commands;
pub mod config_watch;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod ebpf_object;
pub mod error_text;
pub mod interfaces;
pub mod kernel;
pub mod local_addrs;
pub mod mode;
pub mod notify;
pub mod pin;
pub mod portmap;
pub mod reload;
pub mod settings;
pub mod shutdown;
pub mod splice;
pub mod telemetry;
