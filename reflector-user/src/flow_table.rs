//! Which maps keep the kernel flow table (`--flow-table`).

use clap::ValueEnum;

/// Which maps the kernel program keeps flow state for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum FlowTable {
    /// Only maps that need it: a target port two listen ports share, or one that is also a
    /// listen port. Every other map reflects replies without flow state, so its forward and
    /// reverse packets may go through different reflectors (several behind one address).
    /// Opt-in: a reply to traffic this host forwards or masquerades (containers, pods)
    /// from a target port has no socket here, and would be reflected.
    Auto,
    /// Every map: replies are reflected only for flows this reflector recorded, each
    /// flow's first packet records one.
    #[default]
    Always,
}

impl FlowTable {
    /// Its name, as the flag, the variable and the config file write it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Always => "always",
        }
    }
}
