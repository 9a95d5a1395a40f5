//! What the daemon runs with, once the command line is checked.

use crate::{
    mode::Mode,
    portmap::{self, PortMap, PortMapError},
    splice::SpliceOptions,
};

/// Everything the daemon needs to know to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Port maps; never empty, no listen port twice per protocol.
    pub maps: Vec<PortMap>,
    /// Interfaces to attach to; empty means those carrying a default route.
    pub interfaces: Vec<String>,
    /// How to attach.
    pub mode: Mode,
    /// Room in the kernel flow table.
    pub flow_table_size: u32,
    /// Limits and timeouts of the userspace path.
    pub splice: SpliceOptions,
}

impl Settings {
    /// Checks the settings as a whole.
    ///
    /// # Errors
    /// [`PortMapError::Duplicate`] when a listen port is mapped twice for one protocol.
    pub fn validate(self) -> Result<Self, PortMapError> {
        portmap::check_unique(&self.maps)?;
        Ok(self)
    }
}
