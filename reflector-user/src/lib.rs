//! reflector's control plane: loads the kernel program, keeps its maps in step with the
//! command line and the host's addresses, and detaches everything on shutdown.

pub mod admission;
pub mod cli;
mod clsact;
mod commands;
mod config_watch;
pub mod control;
pub mod daemon;
mod dataplane;
pub mod ebpf_object;
pub mod error_text;
pub mod flow_table;
mod interfaces;
mod kernel;
mod local_addrs;
pub mod mode;
mod notify;
mod pin;
pub mod portmap;
mod privileges;
mod reload;
pub mod reply_path;
pub mod settings;
mod shutdown;
mod splice;
mod telemetry;
