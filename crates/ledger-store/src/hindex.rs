//! A hash index: 32-byte key → u64 (ticket hash → index of the entry that used it).
//!
//! Provisional: this in-memory version (a `HashMap` behind a `Mutex`) only fixes the API that the
//! verifier's replay uses; the on-disk index of issue 14 replaces it with the same API.

use crate::StoreError;
use std::collections::HashMap;
use std::sync::Mutex;

/// Key → index map (provisional, in memory; see the module docs).
#[derive(Debug, Default)]
pub struct HashIndex {
    map: Mutex<HashMap<[u8; 32], u64>>,
}

impl HashIndex {
    /// A fresh, empty index that lives as long as the value (the on-disk version keeps it in a
    /// temporary directory).
    ///
    /// # Errors
    /// When the temporary storage cannot be created.
    pub fn temporary() -> Result<Self, StoreError> {
        Ok(Self::default())
    }

    /// The value stored under `key`.
    ///
    /// # Errors
    /// When the index cannot be read.
    pub fn get(&self, key: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        let m = self
            .map
            .lock()
            .map_err(|_| StoreError::Corrupt("hash index lock poisoned".into()))?;
        Ok(m.get(key).copied())
    }

    /// Stores `value` under `key` (replacing an earlier value).
    ///
    /// # Errors
    /// When the index cannot be written.
    pub fn insert(&self, key: &[u8; 32], value: u64) -> Result<(), StoreError> {
        let mut m = self
            .map
            .lock()
            .map_err(|_| StoreError::Corrupt("hash index lock poisoned".into()))?;
        m.insert(*key, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn insert_then_get() {
        let h = HashIndex::temporary().unwrap();
        assert_eq!(h.get(&[1; 32]).unwrap(), None);
        h.insert(&[1; 32], 7).unwrap();
        assert_eq!(h.get(&[1; 32]).unwrap(), Some(7));
        assert_eq!(h.get(&[2; 32]).unwrap(), None);
    }
}
