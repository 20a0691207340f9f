//! The embedded backend: one redb file under `state.dir`. Every write is a
//! durable transaction committed before the proxy answers.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Namespace, Store, StoreError, Update, decode, encode};

fn table(ns: Namespace) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(ns.name())
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The file holds the signing and HMAC keys: readable by the proxy's user only.
fn protect(dir: &Path, file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(file = %file.display(), error = %e, "cannot make the state file private");
        }
        if let Ok(meta) = std::fs::metadata(dir)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(dir = %dir.display(), "the state directory is readable by others; making it 0700");
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
}

pub struct Embedded {
    db: Database,
}

impl Embedded {
    /// Opens (or creates) `dir/state.redb`, creating `dir` with mode 0700.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        if !dir.exists() {
            std::fs::create_dir_all(dir)
                .map_err(|e| backend(format!("cannot create {}: {e}", dir.display())))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let path = dir.join("state.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(path.clone()),
            e => backend(format!("cannot open {}: {e}", path.display())),
        })?;
        protect(dir, &path);
        let txn = db.begin_write().map_err(backend)?;
        for ns in Namespace::ALL {
            txn.open_table(table(ns)).map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(Self { db })
    }
}

impl Embedded {
    /// Every live record of a namespace: key, value and expiry (for `migrate-store`).
    pub fn entries(
        &self,
        ns: Namespace,
        now: u64,
    ) -> Result<Vec<(String, Vec<u8>, u64)>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let t = txn.open_table(table(ns)).map_err(backend)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let stored = v.value();
            if let (Some(value), Some(exp)) = (decode(stored, now), stored.first_chunk::<8>()) {
                out.push((
                    k.value().to_string(),
                    value.to_vec(),
                    u64::from_be_bytes(*exp),
                ));
            }
        }
        Ok(out)
    }
}

impl Store for Embedded {
    fn get(&self, ns: Namespace, key: &str, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let t = txn.open_table(table(ns)).map_err(backend)?;
        let found = t.get(key).map_err(backend)?;
        Ok(found.and_then(|v| decode(v.value(), now).map(<[u8]>::to_vec)))
    }

    fn put(
        &self,
        ns: Namespace,
        key: &str,
        value: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        {
            let mut t = txn.open_table(table(ns)).map_err(backend)?;
            t.insert(key, encode(value, expires_at).as_slice())
                .map_err(backend)?;
        }
        txn.commit().map_err(backend)
    }

    fn update(
        &self,
        ns: Namespace,
        key: &str,
        now: u64,
        f: &mut dyn FnMut(Option<&[u8]>) -> Update,
    ) -> Result<(), StoreError> {
        // redb allows one write transaction at a time: updates of a key are serialised.
        let txn = self.db.begin_write().map_err(backend)?;
        let change = {
            let t = txn.open_table(table(ns)).map_err(backend)?;
            let current = t.get(key).map_err(backend)?;
            let current = current.as_ref().and_then(|v| decode(v.value(), now));
            f(current)
        };
        match change {
            Update::Keep => {
                txn.abort().map_err(backend)?;
                return Ok(());
            }
            Update::Put { value, expires_at } => {
                let mut t = txn.open_table(table(ns)).map_err(backend)?;
                t.insert(key, encode(&value, expires_at).as_slice())
                    .map_err(backend)?;
            }
            Update::Delete => {
                let mut t = txn.open_table(table(ns)).map_err(backend)?;
                t.remove(key).map_err(backend)?;
            }
        }
        txn.commit().map_err(backend)
    }

    fn scan(&self, ns: Namespace, now: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let t = txn.open_table(table(ns)).map_err(backend)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(backend)? {
            let (_, v) = entry.map_err(backend)?;
            if let Some(value) = decode(v.value(), now) {
                out.push(value.to_vec());
            }
        }
        Ok(out)
    }

    fn sweep(&self, now: u64) -> Result<usize, StoreError> {
        let txn = self.db.begin_write().map_err(backend)?;
        let mut removed = 0;
        for ns in Namespace::ALL {
            let mut t = txn.open_table(table(ns)).map_err(backend)?;
            t.retain(|_, v| {
                let keep = decode(v, now).is_some();
                removed += usize::from(!keep);
                keep
            })
            .map_err(backend)?;
        }
        txn.commit().map_err(backend)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::Records;

    #[test]
    fn records_survive_reopening_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Embedded::open(dir.path()).unwrap();
            s.put(Namespace::Clients, "c1", b"{\"a\":1}", 0).unwrap();
            s.put(Namespace::Codes, "k", b"\"v\"", 100).unwrap();
        }
        let s = Embedded::open(dir.path()).unwrap();
        assert_eq!(
            s.get(Namespace::Clients, "c1", 5).unwrap().as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(
            s.get(Namespace::Codes, "k", 99).unwrap().as_deref(),
            Some(&b"\"v\""[..])
        );
        assert_eq!(
            s.get(Namespace::Codes, "k", 100).unwrap(),
            None,
            "expired at 100"
        );
        assert_eq!(s.sweep(100).unwrap(), 1);
        assert!(s.get(Namespace::Clients, "c1", 5).unwrap().is_some());
    }

    #[test]
    fn a_store_open_elsewhere_is_reported_in_use_and_deletes_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records(Arc::new(Embedded::open(dir.path()).unwrap()));
        match Embedded::open(dir.path()) {
            Err(StoreError::InUse(path)) => assert_eq!(path, dir.path().join("state.redb")),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened twice"),
        }
        records.put(Namespace::Clients, "c", &1u8, 0).unwrap();
        assert!(records.delete(Namespace::Clients, "c", 1).unwrap());
        assert!(!records.delete(Namespace::Clients, "c", 1).unwrap());
        assert_eq!(records.get::<u8>(Namespace::Clients, "c", 1).unwrap(), None);
    }
}
