//! reflector's control plane: loads the kernel program, keeps its maps in step with the
//! command line and the host's addresses, and detaches everything on shutdown.

pub mod ebpf_object;
