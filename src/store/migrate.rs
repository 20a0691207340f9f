//! `mcp-oauth-proxy migrate-store`: copies an embedded store into Redis, so
//! that the clients, refresh tokens, keys and revocations made by one instance
//! keep working when instances switch to `state.redis`. Idempotent: a record
//! already in Redis is left as it is (it is newer), never overwritten.

use super::{Embedded, Namespace, Redis, StoreError};

/// What the copy did with one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub ns: Namespace,
    pub copied: usize,
    /// Already in Redis: left as it was.
    pub present: usize,
}

/// Copies every live record of every namespace.
pub fn copy(from: &Embedded, to: &Redis, now: u64) -> Result<Vec<Copied>, StoreError> {
    Namespace::ALL
        .iter()
        .map(|&ns| {
            let mut done = Copied {
                ns,
                copied: 0,
                present: 0,
            };
            for (key, value, expires_at) in from.entries(ns, now)? {
                if to.put_new(ns, &key, &value, expires_at, now)? {
                    done.copied += 1;
                } else {
                    done.present += 1;
                }
            }
            Ok(done)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn records_are_copied_once_and_newer_ones_in_redis_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let from = Embedded::open(dir.path()).unwrap();
        let now = 1_000_000_000_000;
        from.put(Namespace::Clients, "c1", b"old", 0).unwrap();
        from.put(Namespace::Clients, "c2", b"two", 0).unwrap();
        from.put(
            Namespace::Denied,
            "j1",
            b"{\"jti\":\"j1\",\"exp\":2000000000000}",
            now + 60,
        )
        .unwrap();
        from.put(Namespace::Codes, "gone", b"x", now - 1).unwrap();
        let server = crate::store::test_redis::RedisServer::start();
        let to = Redis::open(&server.url(), None).unwrap();
        to.put(Namespace::Clients, "c1", b"newer", 0).unwrap();

        let count = |copies: &[Copied], ns| {
            let c = copies.iter().find(|c| c.ns == ns).unwrap();
            (c.copied, c.present)
        };
        let first = copy(&from, &to, now).unwrap();
        assert_eq!(count(&first, Namespace::Clients), (1, 1));
        assert_eq!(count(&first, Namespace::Denied), (1, 0));
        assert_eq!(
            count(&first, Namespace::Codes),
            (0, 0),
            "expired: not copied"
        );
        assert_eq!(
            to.get(Namespace::Clients, "c1", now).unwrap().as_deref(),
            Some(&b"newer"[..])
        );
        assert_eq!(
            to.get(Namespace::Clients, "c2", now).unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(
            to.scan(Namespace::Denied, now).unwrap().len(),
            1,
            "indexed for the resync"
        );
        let again = copy(&from, &to, now).unwrap();
        assert_eq!(count(&again, Namespace::Clients), (0, 2), "idempotent");
    }
}
