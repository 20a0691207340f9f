//! The shared backend (`state.redis`): Redis 6 or later, or Valkey, for
//! several instances behind a load balancer. The `redis` crate's synchronous
//! connections from a small pool ([`pool`]), each call bounded by timeouts;
//! the store is called under `block_in_place` like the embedded one.
//!
//! Records are kept as the embedded store keeps them (expiry + value) under
//! `mcp-oauth-proxy:<namespace>:<key>`, with a Redis expiry too, so nothing
//! needs sweeping. An update is optimistic: `WATCH`, read, decide, then
//! `MULTI … EXEC`, which Redis refuses if another instance changed the record
//! meanwhile; then it runs again on the new record. A revoked access token
//! (`Namespace::Denied`) is also indexed by expiry and announced on a channel
//! in the same transaction ([`revocations`]).
//!
//! Beyond records, what instances share lives here too: single-use ids
//! ([`once`]), counters over a time window ([`counters`]) and the owners of
//! Streamable HTTP sessions ([`sessions`]).

mod counters;
mod once;
mod pool;
pub mod revocations;
mod sessions;

use std::sync::Arc;

use redis::{Client, Connection, IntoConnectionInfo, RedisResult};

pub use counters::Failures;

use super::{Namespace, Store, StoreError, Update, decode, encode};
use pool::Pool;

/// What every key of the proxy starts with.
const PREFIX: &str = "mcp-oauth-proxy:";
/// Revoked access tokens' ids, scored by their expiry: what a resync reads.
const DENIED_INDEX: &str = "mcp-oauth-proxy:denied-index";
/// Optimistic updates tried at most before the store reports itself busy.
const ATTEMPTS: usize = 100;
/// Keys read per `MGET` and asked for per `SCAN` step.
const BATCH: usize = 500;

fn key(ns: Namespace, key: &str) -> String {
    format!("{PREFIX}{}:{key}", ns.name())
}

/// A handle on the Redis server; clones share one connection pool.
#[derive(Clone)]
pub struct Redis {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection details hold the password: never printed.
        f.debug_struct("Redis")
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Connects to `url` (`redis://`, `rediss://` with TLS), with `password`
    /// instead of the URL's if given, and checks that the server answers.
    pub fn open(url: &str, password: Option<&str>) -> Result<Self, StoreError> {
        let info = url
            .into_connection_info()
            .map_err(|_| StoreError::Backend("state.redis is not a usable redis URL".into()))?;
        let info = match password {
            Some(p) => {
                let settings = info.redis_settings().clone().set_password(p);
                info.set_redis_settings(settings)
            }
            None => info,
        };
        let client = Client::open(info)
            .map_err(|_| StoreError::Backend("state.redis is not a usable redis URL".into()))?;
        let redis = Self {
            pool: Arc::new(Pool::new(client)),
        };
        redis.ping()?;
        Ok(redis)
    }

    /// Asks the server whether it answers (also how a stale pool is noticed).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.pool
            .with(|c| redis::cmd("PING").query::<String>(c))
            .map(drop)
    }

    /// Whether the last call reached the server.
    pub fn is_up(&self) -> bool {
        self.pool.is_up()
    }

    fn with<T>(&self, f: impl FnMut(&mut Connection) -> RedisResult<T>) -> Result<T, StoreError> {
        self.pool.with(f)
    }

    /// Stores a record unless the key exists (`SET NX`); whether it was stored.
    /// For copying records in (`migrate-store`): what is there already is newer.
    pub fn put_new(
        &self,
        ns: Namespace,
        k: &str,
        value: &[u8],
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let full = key(ns, k);
        let mut set = redis::cmd("SET");
        set.arg(&full).arg(encode(value, expires_at)).arg("NX");
        if expires_at > 0 {
            set.arg("EX").arg(expires_at.saturating_sub(now).max(1));
        }
        let stored: Option<String> = self.with(|c| set.query(c))?;
        if ns == Namespace::Denied {
            // Indexed whether new or not: a copy interrupted before this is completed.
            let mut pipe = redis::pipe();
            pipe.atomic();
            revocations::announce(&mut pipe, k, expires_at);
            self.with(|c| pipe.query::<()>(c))?;
        }
        Ok(stored.is_some())
    }

    /// `MGET` of `keys` in batches, decoded at `now`; expired or missing ones left out.
    fn values(&self, keys: &[String], now: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for batch in keys.chunks(BATCH) {
            let found: Vec<Option<Vec<u8>>> =
                self.with(|c| redis::cmd("MGET").arg(batch).query(c))?;
            out.extend(
                found
                    .iter()
                    .flatten()
                    .filter_map(|v| decode(v, now).map(<[u8]>::to_vec)),
            );
        }
        Ok(out)
    }
}

/// Adds the commands that store `value` until `expires_at` to a transaction.
fn set(pipe: &mut redis::Pipeline, k: &str, value: &[u8], expires_at: u64) {
    pipe.cmd("SET")
        .arg(k)
        .arg(encode(value, expires_at))
        .ignore();
    if expires_at > 0 {
        pipe.cmd("EXPIREAT").arg(k).arg(expires_at).ignore();
    }
}

impl Store for Redis {
    fn get(&self, ns: Namespace, k: &str, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let k = key(ns, k);
        let stored: Option<Vec<u8>> = self.with(|c| redis::cmd("GET").arg(&k).query(c))?;
        Ok(stored.and_then(|v| decode(&v, now).map(<[u8]>::to_vec)))
    }

    fn put(&self, ns: Namespace, k: &str, value: &[u8], expires_at: u64) -> Result<(), StoreError> {
        let full = key(ns, k);
        let mut pipe = redis::pipe();
        pipe.atomic();
        set(&mut pipe, &full, value, expires_at);
        if ns == Namespace::Denied {
            revocations::announce(&mut pipe, k, expires_at);
        }
        self.with(|c| pipe.query::<()>(c))
    }

    fn update(
        &self,
        ns: Namespace,
        k: &str,
        now: u64,
        f: &mut dyn FnMut(Option<&[u8]>) -> Update,
    ) -> Result<(), StoreError> {
        let k = key(ns, k);
        for _ in 0..ATTEMPTS {
            let applied = self.with(|c| {
                redis::cmd("WATCH").arg(&k).exec(c)?;
                let stored: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(c)?;
                let mut pipe = redis::pipe();
                pipe.atomic();
                match f(stored.as_deref().and_then(|v| decode(v, now))) {
                    Update::Keep => {
                        redis::cmd("UNWATCH").exec(c)?;
                        return Ok(true);
                    }
                    Update::Put { value, expires_at } => set(&mut pipe, &k, &value, expires_at),
                    Update::Delete => {
                        pipe.cmd("DEL").arg(&k).ignore();
                    }
                }
                // Nil: another client changed the record since WATCH; nothing was written.
                let done: Option<()> = pipe.query(c)?;
                Ok(done.is_some())
            })?;
            if applied {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(
            "a record kept changing under the update".into(),
        ))
    }

    /// Nothing to do: every record carries a Redis expiry.
    fn sweep(&self, _now: u64) -> Result<usize, StoreError> {
        Ok(0)
    }

    fn scan(&self, ns: Namespace, now: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        if ns == Namespace::Denied {
            let ids = revocations::live_ids(self, now)?;
            let keys: Vec<String> = ids.iter().map(|id| key(ns, id)).collect();
            return self.values(&keys, now);
        }
        let pattern = format!("{PREFIX}{}:*", ns.name());
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, found): (u64, Vec<String>) = self.with(|c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(BATCH)
                    .query(c)
            })?;
            keys.extend(found);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort_unstable();
        keys.dedup();
        self.values(&keys, now)
    }

    fn redis(&self) -> Option<Redis> {
        Some(self.clone())
    }
}
