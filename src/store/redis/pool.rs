//! Connections to the Redis server: a few idle ones kept for reuse, every one
//! with connect, read and write timeouts, so that a server that is down or
//! stuck fails a call in bounded time. After a failure to reach it, calls fail
//! at once for [`FAIL_FAST`] instead of each waiting for its own timeout.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisError};

use crate::store::StoreError;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one command (or one transaction) may wait for the server.
pub const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// After the server could not be reached, calls fail without trying for this long.
pub const FAIL_FAST: Duration = Duration::from_secs(1);
/// Idle connections kept at most.
const MAX_IDLE: usize = 16;

pub(super) struct Pool {
    client: Client,
    idle: Mutex<Vec<Connection>>,
    /// Set when the server could not be reached: calls fail at once until then.
    down_until: Mutex<Option<Instant>>,
    /// Whether the last call reached the server.
    up: AtomicBool,
}

/// Whether an error means the server cannot be reached (or cannot serve now),
/// as opposed to a command it refused.
fn unreachable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || matches!(
            e.code(),
            Some(
                "LOADING"
                    | "BUSY"
                    | "MASTERDOWN"
                    | "TRYAGAIN"
                    | "READONLY"
                    | "NOAUTH"
                    | "WRONGPASS"
            )
        )
}

/// A Redis error as the store reports it. Its text never holds the password:
/// the client's errors name the address and what failed, not the URL.
pub(super) fn store_error(e: &RedisError) -> StoreError {
    if unreachable(e) {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding these: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pool {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            idle: Mutex::new(Vec::new()),
            down_until: Mutex::new(None),
            up: AtomicBool::new(true),
        }
    }

    /// Whether the last call reached the server.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A new connection with the timeouts set, not taken from the pool (pub/sub).
    pub fn connect(&self) -> Result<Connection, StoreError> {
        if lock(&self.down_until).is_some_and(|until| Instant::now() < until) {
            return Err(StoreError::Unavailable(
                "the server did not answer a moment ago".into(),
            ));
        }
        let connected = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .and_then(|c| {
                c.set_read_timeout(Some(IO_TIMEOUT))?;
                c.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(c)
            });
        connected.map_err(|e| self.failed(&e, true))
    }

    /// Notes a failed call; the error to report. `trip`: the server could not
    /// be reached at all (or did not answer in time): fail fast for a moment.
    fn failed(&self, e: &RedisError, trip: bool) -> StoreError {
        let err = store_error(e);
        if matches!(err, StoreError::Unavailable(_)) {
            if self.up.swap(false, Ordering::Relaxed) {
                tracing::warn!(error = %e, "the redis store does not answer");
            }
            // The idle ones were opened before the server went away.
            lock(&self.idle).clear();
            if trip || e.is_timeout() {
                *lock(&self.down_until) = Some(Instant::now() + FAIL_FAST);
            }
        }
        err
    }

    /// Runs `f` on a pooled connection. A connection that failed is dropped,
    /// never reused (it may hold a half-read answer or an open transaction).
    pub fn with<T>(
        &self,
        mut f: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let pooled = lock(&self.idle).pop();
        let mut con = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        match f(&mut con) {
            Ok(v) => {
                let mut idle = lock(&self.idle);
                if idle.len() < MAX_IDLE {
                    idle.push(con);
                }
                drop(idle);
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("the redis store answers again");
                }
                Ok(v)
            }
            Err(e) => Err(self.failed(&e, false)),
        }
    }
}
