//! Keeps the kernel program's set of local addresses equal to this host's addresses, also
//! as they change: an address added after start is reflected without a restart.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
};

use aya::maps::{HashMap, MapData, MapError};
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use log::{debug, info};
use reflector_common::{addr_kind, v4_mapped};
use rtnetlink::{Handle, packet_route::address::AddressAttribute};
use thiserror::Error;

/// The local-address map could not be kept current.
#[derive(Debug, Error)]
pub enum LocalAddrsError {
    /// Listing addresses over netlink failed.
    #[error("listing this host's addresses over netlink failed")]
    Netlink(#[source] rtnetlink::Error),
    /// Writing the map failed.
    #[error("updating the local-address map failed")]
    Map(#[source] MapError),
}

/// The local-address map as this host's addresses say it should be: IPv4-mapped key to
/// [`addr_kind`] value.
pub(crate) type AddressTable = BTreeMap<[u8; 16], u32>;

/// The kernel program's local-address map, as this module writes it.
pub(crate) type LocalAddrMap = HashMap<MapData, [u8; 16], u32>;

/// Key of `addr` in the local-address map.
#[must_use]
pub(crate) fn key(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4_mapped(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Lists this host's addresses (all interfaces of this network namespace) and IPv4 subnet
/// broadcast addresses.
///
/// # Errors
/// [`LocalAddrsError::Netlink`] when the kernel cannot be asked.
pub(crate) async fn current(handle: &Handle) -> Result<AddressTable, LocalAddrsError> {
    let mut table = AddressTable::new();
    let mut messages = handle.address().get().execute();
    while let Some(message) = messages
        .try_next()
        .await
        .map_err(LocalAddrsError::Netlink)?
    {
        // For IPv4 the local address is IFA_LOCAL; IFA_ADDRESS is the peer on
        // point-to-point links. IPv6 only sends IFA_ADDRESS.
        let local = message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(addr) => Some(*addr),
            _ => None,
        });
        let address = message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(addr) => Some(*addr),
            _ => None,
        });
        if let Some(addr) = local.or(address) {
            table.insert(key(addr), addr_kind::LOCAL);
        }
        for attribute in &message.attributes {
            if let AddressAttribute::Broadcast(broadcast) = attribute
                && *broadcast != Ipv4Addr::BROADCAST
            {
                table
                    .entry(key(IpAddr::V4(*broadcast)))
                    .or_insert(addr_kind::BROADCAST);
            }
        }
    }
    Ok(table)
}

/// Makes `map` hold exactly `wanted`. Returns how many entries were added and removed.
///
/// # Errors
/// [`LocalAddrsError::Map`] when the kernel refuses an update; entries written before it
/// stay written.
pub(crate) fn apply(
    map: &mut LocalAddrMap,
    wanted: &AddressTable,
) -> Result<(usize, usize), LocalAddrsError> {
    let present: AddressTable = map
        .iter()
        .collect::<Result<_, _>>()
        .map_err(LocalAddrsError::Map)?;
    let mut added = 0;
    for (addr, kind) in wanted {
        if present.get(addr) != Some(kind) {
            map.insert(addr, kind, 0).map_err(LocalAddrsError::Map)?;
            added += 1;
        }
    }
    let mut removed = 0;
    for addr in present.keys().filter(|addr| !wanted.contains_key(*addr)) {
        match map.remove(addr) {
            Ok(()) | Err(MapError::KeyNotFound) => removed += 1,
            Err(error) => return Err(LocalAddrsError::Map(error)),
        }
    }
    Ok((added, removed))
}

/// Brings `map` up to date once, logging what changed.
///
/// # Errors
/// As [`current`] and [`apply`].
pub(crate) async fn sync(handle: &Handle, map: &mut LocalAddrMap) -> Result<(), LocalAddrsError> {
    let wanted = current(handle).await?;
    let (added, removed) = apply(map, &wanted)?;
    if added + removed > 0 {
        info!(
            "local addresses: {} known ({added} added, {removed} removed)",
            wanted.len()
        );
    }
    Ok(())
}

/// Re-syncs `map` on every address change `events` reports, until the stream ends.
///
/// # Errors
/// The first failed sync.
pub(crate) async fn follow<E>(
    handle: Handle,
    mut map: LocalAddrMap,
    mut events: impl Stream<Item = E> + Unpin,
) -> Result<(), LocalAddrsError> {
    while events.next().await.is_some() {
        debug!("address change reported; re-reading addresses");
        sync(&handle, &mut map).await?;
    }
    Ok(())
}
