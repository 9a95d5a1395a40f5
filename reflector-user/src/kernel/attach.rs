//! Attaching to interfaces, adopting pinned links, and detaching.

use std::path::Path;

use aya::programs::{
    TcAttachType, XdpMode,
    links::{FdLink, LinkError, PinnedLink},
    tc,
};
use log::{debug, info, warn};
use reflector_common::maps::programs;

use super::{KernelError, KernelPath, Link, program_error};
use crate::{clsact, error_text, interfaces::Interface, mode::Attach, pin};

impl KernelPath {
    /// Attaches the program to `interface` in the way `attach` says.
    ///
    /// # Errors
    /// [`KernelError::Attach`] with the kernel's reason.
    pub(crate) fn attach(
        &mut self,
        interface: &Interface,
        attach: Attach,
    ) -> Result<(), KernelError> {
        let attach_error = |source| KernelError::Attach {
            interface: interface.name.clone(),
            attach,
            source,
        };
        let link = match attach {
            Attach::XdpNative | Attach::XdpGeneric => {
                let mode = if attach == Attach::XdpNative {
                    XdpMode::Driver
                } else {
                    XdpMode::Skb
                };
                let xdp = self.programs.xdp()?;
                let id = xdp.attach(&interface.name, mode).map_err(attach_error)?;
                match &self.pin {
                    Some((dir, _)) => {
                        let link = xdp.take_link(id).map_err(attach_error)?;
                        let link = FdLink::try_from(link).map_err(unpinnable(interface, attach))?;
                        Link::Pinned(pin_link(link, dir, interface, attach)?)
                    }
                    None => Link::Xdp(id),
                }
            }
            Attach::Tc => {
                // TCX (kernel >= 6.6) needs no qdisc and gives fd-based links; older kernels
                // attach through a clsact qdisc (removed on detach when added here), whose
                // netlink filters cannot be pinned.
                let tcx = clsact::tcx_supported();
                if !tcx && self.pin.is_some() {
                    return Err(KernelError::TcNeedsTcx {
                        interface: interface.name.clone(),
                    });
                }
                let added = !tcx
                    && clsact::add(interface.index).map_err(|source| KernelError::Clsact {
                        interface: interface.name.clone(),
                        source,
                    })?;
                if !tcx && !added {
                    remove_stale_filter(interface);
                }
                let attached = self.programs.tc().and_then(|tc| {
                    tc.attach(&interface.name, TcAttachType::Ingress)
                        .map_err(attach_error)
                });
                let id = match attached {
                    Ok(id) => id,
                    Err(error) => {
                        if added {
                            remove_clsact(interface);
                        }
                        return Err(error);
                    }
                };
                if added {
                    self.added_clsact.push(interface.clone());
                }
                match &self.pin {
                    Some((dir, _)) => {
                        let link = self.programs.tc()?.take_link(id).map_err(attach_error)?;
                        let link = FdLink::try_from(link).map_err(unpinnable(interface, attach))?;
                        Link::Pinned(pin_link(link, dir, interface, attach)?)
                    }
                    None => Link::Tc(id),
                }
            }
        };
        self.links.push((interface.clone(), attach, link));
        Ok(())
    }

    /// Adopts the pinned link on `interface`, if the pin directory has one of a mode among
    /// `candidates`; it stays attached throughout. A pinned link of another mode there is
    /// detached (the caller attaches anew). Returns the adopted link's mode.
    pub(crate) fn adopt_link(
        &mut self,
        interface: &Interface,
        candidates: &[Attach],
    ) -> Option<Attach> {
        let (_, unadopted) = self.pin.as_mut()?;
        let mut adopted = None;
        let mut index = 0;
        while index < unadopted.len() {
            if unadopted[index].interface != interface.name {
                index += 1;
                continue;
            }
            let file = unadopted.swap_remove(index);
            if adopted.is_none() && candidates.contains(&file.attach) {
                match PinnedLink::from_pin(&file.path) {
                    Ok(link) => {
                        info!(
                            "{}: adopted the pinned {} link {}",
                            interface.name,
                            file.attach,
                            file.path.display()
                        );
                        adopted = Some((file.attach, link));
                        continue;
                    }
                    Err(error) => warn!(
                        "{}: {}; attaching anew",
                        file.path.display(),
                        error_text::render(&error)
                    ),
                }
            }
            pin::remove_link(&file);
        }
        let (attach, link) = adopted?;
        self.links
            .push((interface.clone(), attach, Link::Pinned(link)));
        Some(attach)
    }

    /// Detaches the pinned links that no interface adopted (interfaces no longer
    /// configured).
    pub(crate) fn release_unadopted(&mut self) {
        if let Some((_, unadopted)) = self.pin.as_mut() {
            for file in unadopted.drain(..) {
                pin::remove_link(&file);
            }
        }
    }

    /// Whether detaching needs netlink (and so `CAP_NET_ADMIN`): TC on a kernel without
    /// TCX is a filter on a clsact qdisc, not a link that closing its fd detaches.
    #[must_use]
    pub(crate) fn detaches_through_netlink(&self) -> bool {
        !self.added_clsact.is_empty()
            || (self
                .links
                .iter()
                .any(|(_, _, link)| matches!(link, Link::Tc(_)))
                && !clsact::tcx_supported())
    }

    /// The interfaces attached so far and how.
    pub(crate) fn attached(&self) -> impl Iterator<Item = (&Interface, Attach)> {
        self.links
            .iter()
            .map(|(interface, attach, _)| (interface, *attach))
    }

    /// Detaches from every interface, logging any failure; the links' fds close anyway
    /// when the program is dropped.
    pub(crate) fn detach_all(&mut self) {
        for (interface, attach, link) in self.links.drain(..) {
            let result = match link {
                Link::Xdp(id) => self
                    .programs
                    .xdp()
                    .and_then(|xdp| xdp.detach(id).map_err(program_error(programs::XDP))),
                Link::Tc(id) => self
                    .programs
                    .tc()
                    .and_then(|tc| tc.detach(id).map_err(program_error(programs::TC))),
                Link::Pinned(link) => {
                    debug!("{}: {attach} stays attached (pinned)", interface.name);
                    drop(link);
                    continue;
                }
            };
            match result {
                Ok(()) => debug!("detached {attach} from {}", interface.name),
                Err(error) => warn!(
                    "detaching {attach} from {}: {}",
                    interface.name,
                    error_text::render(&error)
                ),
            }
        }
        for interface in self.added_clsact.drain(..) {
            remove_clsact(&interface);
        }
    }
}

/// Removes a filter of this program that a killed reflector left on `interface` (netlink
/// filters, unlike links, outlive their process): it would run first, on stale maps.
fn remove_stale_filter(interface: &Interface) {
    match tc::qdisc_detach_program(&interface.name, TcAttachType::Ingress, programs::TC) {
        Ok(()) => warn!(
            "{}: removed the {} filter a previous reflector left attached",
            interface.name,
            programs::TC
        ),
        Err(tc::TcError::IoError(error)) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => warn!(
            "{}: looking for a {} filter left attached: {error}",
            interface.name,
            programs::TC
        ),
    }
}

/// Removes the clsact qdisc this process added to `interface`, logging a failure.
fn remove_clsact(interface: &Interface) {
    match clsact::remove(interface.index) {
        Ok(()) => debug!("removed the clsact qdisc added to {}", interface.name),
        Err(error) => warn!(
            "removing the clsact qdisc added to {}: {error}",
            interface.name
        ),
    }
}

fn unpinnable(interface: &Interface, attach: Attach) -> impl FnOnce(LinkError) -> KernelError {
    let interface = interface.name.clone();
    move |source| KernelError::Unpinnable {
        interface,
        attach,
        source,
    }
}

/// Pins `link` in `dir` as the link of `interface`.
fn pin_link(
    link: FdLink,
    dir: &Path,
    interface: &Interface,
    attach: Attach,
) -> Result<PinnedLink, KernelError> {
    let path = dir.join(pin::link_file_name(&interface.name, attach));
    link.pin(&path).map_err(|source| KernelError::PinObject {
        what: format!("the {attach} link on {}", interface.name),
        path,
        source,
    })
}
