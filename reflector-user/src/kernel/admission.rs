//! Admission in the kernel: the configuration entry (allow-list switch, rate limits) and the
//! allow-list tries the program reads for every new flow.

use std::{collections::BTreeSet, net::IpAddr, sync::PoisonError};

use aya::maps::{
    Array, MapData, MapError,
    lpm_trie::{Key, LpmTrie},
};
use log::error;
use reflector_common::{
    AdmissionConfig,
    maps::{ADMISSION, ALLOW_V4, ALLOW_V6},
};

use super::{KernelError, KernelPath};
use crate::{admission::AdmissionSettings, error_text, flow_table::FlowTable};

/// One allow-list trie entry: prefix length and the address with its host bits cleared (so
/// `10.1.2.3/8` and `10.0.0.0/8` are one entry, as they are one prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TrieKey {
    V4(u32, [u8; 4]),
    V6(u32, [u8; 16]),
}

fn trie_keys(settings: &AdmissionSettings) -> BTreeSet<TrieKey> {
    settings
        .allow
        .iter()
        .map(|prefix| {
            let len = u32::from(prefix.prefix_len());
            let (network, _) = prefix.network();
            match prefix.addr() {
                IpAddr::V4(_) => {
                    TrieKey::V4(len, [network[12], network[13], network[14], network[15]])
                }
                IpAddr::V6(_) => TrieKey::V6(len, network),
            }
        })
        .collect()
}

impl KernelPath {
    /// Moves the kernel's admission from `old` to `new`: the prefixes `new` adds, then the
    /// configuration entry, then the removal of the prefixes `new` drops. So at no moment
    /// is a source allowed that neither `old` nor `new` allows. On failure everything is put
    /// back as `old` had it.
    ///
    /// # Errors
    /// [`KernelError::Map`] when a map update fails.
    pub(crate) fn set_admission(
        &mut self,
        old: &AdmissionSettings,
        new: &AdmissionSettings,
    ) -> Result<(), KernelError> {
        let (old_keys, new_keys) = (trie_keys(old), trie_keys(new));
        let added: Vec<TrieKey> = new_keys.difference(&old_keys).copied().collect();
        let removed: Vec<TrieKey> = old_keys.difference(&new_keys).copied().collect();
        let result = self
            .update_tries(&added, true)
            .and_then(|()| self.write_admission_config(&new.config()))
            .and_then(|()| self.update_tries(&removed, false));
        if let Err(failure) = result {
            let undo = self
                .update_tries(&removed, true)
                .and_then(|()| self.write_admission_config(&old.config()))
                .and_then(|()| self.update_tries(&added, false));
            if let Err(undo) = undo {
                error!(
                    "putting the kernel's allow-list and limits back failed too: {}",
                    error_text::render(&undo)
                );
            }
            return Err(failure);
        }
        self.show_flow_table_forced(new);
        Ok(())
    }

    /// Tells telemetry's view of the maps whether `settings` force the flow table.
    fn show_flow_table_forced(&self, settings: &AdmissionSettings) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set_flow_table_forced(settings.flow_table == FlowTable::Always);
    }

    /// Writes the whole admission state for `settings` into tries that may hold anything
    /// (an adopted pin directory): the configuration, every prefix of `settings`, and no
    /// other.
    ///
    /// # Errors
    /// [`KernelError::Map`] when a map read or update fails.
    pub(crate) fn set_admission_adopted(
        &mut self,
        settings: &AdmissionSettings,
    ) -> Result<(), KernelError> {
        let pinned = self.trie_contents()?;
        let wanted = trie_keys(settings);
        let added: Vec<TrieKey> = wanted.difference(&pinned).copied().collect();
        let stale: Vec<TrieKey> = pinned.difference(&wanted).copied().collect();
        self.update_tries(&added, true)?;
        self.write_admission_config(&settings.config())?;
        self.update_tries(&stale, false)?;
        self.show_flow_table_forced(settings);
        Ok(())
    }

    fn write_admission_config(&mut self, config: &AdmissionConfig) -> Result<(), KernelError> {
        let mut entry: Array<&mut MapData, AdmissionConfig> =
            Array::try_from(&mut self.admission.config).map_err(map_error(ADMISSION))?;
        entry.set(0, config, 0).map_err(map_error(ADMISSION))
    }

    /// Inserts (`insert`) or removes `keys`, stopping at the first failure.
    fn update_tries(&mut self, keys: &[TrieKey], insert: bool) -> Result<(), KernelError> {
        for &key in keys {
            match key {
                TrieKey::V4(len, addr) => {
                    let mut trie: LpmTrie<&mut MapData, [u8; 4], u32> =
                        LpmTrie::try_from(&mut self.admission.allow_v4)
                            .map_err(map_error(ALLOW_V4))?;
                    let key = Key::new(len, addr);
                    let result = if insert {
                        trie.insert(&key, 1, 0)
                    } else {
                        trie.remove(&key)
                    };
                    result.map_err(map_error(ALLOW_V4))?;
                }
                TrieKey::V6(len, addr) => {
                    let mut trie: LpmTrie<&mut MapData, [u8; 16], u32> =
                        LpmTrie::try_from(&mut self.admission.allow_v6)
                            .map_err(map_error(ALLOW_V6))?;
                    let key = Key::new(len, addr);
                    let result = if insert {
                        trie.insert(&key, 1, 0)
                    } else {
                        trie.remove(&key)
                    };
                    result.map_err(map_error(ALLOW_V6))?;
                }
            }
        }
        Ok(())
    }

    /// Every prefix in the allow-list tries now.
    fn trie_contents(&mut self) -> Result<BTreeSet<TrieKey>, KernelError> {
        let mut keys = BTreeSet::new();
        let v4: LpmTrie<&MapData, [u8; 4], u32> =
            LpmTrie::try_from(&self.admission.allow_v4).map_err(map_error(ALLOW_V4))?;
        for key in v4.keys() {
            let key = key.map_err(map_error(ALLOW_V4))?;
            keys.insert(TrieKey::V4(key.prefix_len(), key.data()));
        }
        let v6: LpmTrie<&MapData, [u8; 16], u32> =
            LpmTrie::try_from(&self.admission.allow_v6).map_err(map_error(ALLOW_V6))?;
        for key in v6.keys() {
            let key = key.map_err(map_error(ALLOW_V6))?;
            keys.insert(TrieKey::V6(key.prefix_len(), key.data()));
        }
        Ok(keys)
    }
}

fn map_error(name: &'static str) -> impl Fn(MapError) -> KernelError {
    move |source| KernelError::Map { name, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bits_do_not_make_another_prefix() {
        let settings = |allow: &[&str]| AdmissionSettings {
            allow: allow.iter().map(|text| text.parse().unwrap()).collect(),
            ..AdmissionSettings::default()
        };
        assert_eq!(
            trie_keys(&settings(&["10.1.2.3/8"])),
            trie_keys(&settings(&["10.0.0.0/8"]))
        );
        assert_eq!(
            trie_keys(&settings(&["0.0.0.0/0", "::/0", "fd00::1/8", "192.0.2.7"])),
            BTreeSet::from([
                TrieKey::V4(0, [0; 4]),
                TrieKey::V4(32, [192, 0, 2, 7]),
                TrieKey::V6(0, [0; 16]),
                TrieKey::V6(8, {
                    let mut fd = [0; 16];
                    fd[0] = 0xfd;
                    fd
                }),
            ])
        );
    }
}
