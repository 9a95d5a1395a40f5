//! The interfaces reflector attaches to: named by the user, or those carrying a default
//! route.

use std::{collections::BTreeSet, path::Path};

use futures::TryStreamExt as _;
use rtnetlink::{
    Handle, RouteMessageBuilder,
    packet_route::{link::LinkAttribute, route::RouteAttribute},
};
use thiserror::Error;

/// An interface that cannot be used.
#[derive(Debug, Error)]
pub enum InterfaceError {
    /// No interface of that name in this network namespace.
    #[error(
        "unknown interface '{name}': no such interface in this network namespace (see `ip link`); name one that exists, e.g. --iface eth0"
    )]
    Unknown {
        /// The name given.
        name: String,
    },
    /// No interface was named and no default route says which to use.
    #[error(
        "no interface given and no default route to pick one from; name the interfaces to reflect on, e.g. --iface eth0"
    )]
    NoDefaultRoute,
    /// Asking the kernel failed.
    #[error("listing {what} over netlink failed")]
    Netlink {
        /// What was being listed.
        what: &'static str,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
}

/// An interface to attach to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its index.
    pub index: u32,
}

impl Interface {
    /// True for virtual devices (veth, bridges, dummies, ...): those with no bus device
    /// behind them. Their senders may hand over partial checksums, which XDP cannot see.
    #[must_use]
    pub fn is_virtual(&self) -> bool {
        !Path::new("/sys/class/net")
            .join(&self.name)
            .join("device")
            .exists()
    }
}

/// Resolves `names`, or, when it is empty, the interfaces carrying a default route.
///
/// # Errors
/// [`InterfaceError`] naming the interface that does not exist, or saying that none could
/// be picked.
pub(crate) async fn resolve(
    handle: &Handle,
    names: &[String],
) -> Result<Vec<Interface>, InterfaceError> {
    let links = list_links(handle).await?;
    if names.is_empty() {
        let indices = default_route_interfaces(handle).await?;
        let chosen: Vec<Interface> = links
            .into_iter()
            .filter(|link| indices.contains(&link.index))
            .collect();
        if chosen.is_empty() {
            return Err(InterfaceError::NoDefaultRoute);
        }
        return Ok(chosen);
    }
    let mut chosen = Vec::new();
    for name in names {
        let link = links
            .iter()
            .find(|link| &link.name == name)
            .ok_or_else(|| InterfaceError::Unknown { name: name.clone() })?;
        if !chosen.contains(link) {
            chosen.push(link.clone());
        }
    }
    Ok(chosen)
}

async fn list_links(handle: &Handle) -> Result<Vec<Interface>, InterfaceError> {
    let netlink = |source| InterfaceError::Netlink {
        what: "interfaces",
        source,
    };
    let mut links = handle.link().get().execute();
    let mut found = Vec::new();
    while let Some(link) = links.try_next().await.map_err(netlink)? {
        let name = link
            .attributes
            .iter()
            .find_map(|attribute| match attribute {
                LinkAttribute::IfName(name) => Some(name.clone()),
                _ => None,
            });
        if let Some(name) = name {
            found.push(Interface {
                name,
                index: link.header.index,
            });
        }
    }
    Ok(found)
}

/// Indices of the interfaces that carry an IPv4 or IPv6 default route.
async fn default_route_interfaces(handle: &Handle) -> Result<BTreeSet<u32>, InterfaceError> {
    let netlink = |source| InterfaceError::Netlink {
        what: "routes",
        source,
    };
    let mut indices = BTreeSet::new();
    for request in [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ] {
        let mut routes = handle.route().get(request).execute();
        while let Some(route) = routes.try_next().await.map_err(netlink)? {
            if route.header.destination_prefix_length != 0 {
                continue;
            }
            indices.extend(
                route
                    .attributes
                    .iter()
                    .filter_map(|attribute| match attribute {
                        RouteAttribute::Oif(index) => Some(*index),
                        _ => None,
                    }),
            );
        }
    }
    Ok(indices)
}
