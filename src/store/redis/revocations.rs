//! Revoked access tokens reach every instance's deny list: the transaction
//! that stores a revocation also indexes it by expiry and publishes
//! `<jti> <exp>` on [`CHANNEL`]. Each instance listens on its own thread
//! ([`Redis::listen`]); messages sent while it was not subscribed are lost,
//! so after every (re)subscription it resynchronises from the index, and the
//! server resynchronises periodically as well (`server/shared.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{DENIED_INDEX, Redis};
use crate::store::StoreError;

/// Where revocations are announced.
pub const CHANNEL: &str = "mcp-oauth-proxy:revocations";
/// How often the listener looks whether it should stop.
const POLL: Duration = Duration::from_millis(250);

/// Adds the index entry and the announcement of a revoked token to a transaction.
pub(super) fn announce(pipe: &mut redis::Pipeline, jti: &str, exp: u64) {
    pipe.cmd("ZADD")
        .arg(DENIED_INDEX)
        .arg(exp)
        .arg(jti)
        .ignore();
    pipe.cmd("PUBLISH")
        .arg(CHANNEL)
        .arg(format!("{jti} {exp}"))
        .ignore();
}

/// The ids of the revoked tokens that are still live; forgets the others from the index.
pub(super) fn live_ids(redis: &Redis, now: u64) -> Result<Vec<String>, StoreError> {
    redis.with(|c| {
        redis::cmd("ZREMRANGEBYSCORE")
            .arg(DENIED_INDEX)
            .arg("-inf")
            .arg(now)
            .exec(c)?;
        redis::cmd("ZRANGEBYSCORE")
            .arg(DENIED_INDEX)
            .arg(format!("({now}"))
            .arg("+inf")
            .query(c)
    })
}

/// An announcement: the token id and its expiry.
pub fn parse(payload: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (jti, exp) = text.split_once(' ')?;
    Some((jti.to_string(), exp.parse().ok()?))
}

/// Stops the listener's thread when dropped.
pub struct Listening(Arc<AtomicBool>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Redis {
    /// Hands every announced revocation to `apply` on a thread of its own,
    /// and calls `resync` each time it has (re)subscribed; reconnects by
    /// itself. Stops when the returned guard is dropped.
    pub fn listen(
        &self,
        apply: impl Fn(&str, u64) + Send + 'static,
        resync: impl Fn() + Send + 'static,
    ) -> std::io::Result<Listening> {
        let stop = Arc::new(AtomicBool::new(false));
        let redis = self.clone();
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("redis-revocations".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    match redis.subscribed(&stopped, &apply, &resync) {
                        Ok(()) => {}
                        Err(e) => tracing::debug!(error = %e, "revocation channel: reconnecting"),
                    }
                    std::thread::sleep(POLL);
                }
            })?;
        Ok(Listening(stop))
    }

    /// One subscription, until it fails or `stop` is set.
    fn subscribed(
        &self,
        stop: &AtomicBool,
        apply: &impl Fn(&str, u64),
        resync: &impl Fn(),
    ) -> Result<(), StoreError> {
        let mut con = self.pool.connect()?;
        let mut sub = con.as_pubsub();
        let fail = |e: redis::RedisError| super::pool::store_error(&e);
        sub.subscribe(CHANNEL).map_err(fail)?;
        sub.set_read_timeout(Some(POLL)).map_err(fail)?;
        resync();
        while !stop.load(Ordering::Relaxed) {
            match sub.get_message() {
                Ok(msg) => match parse(msg.get_payload_bytes()) {
                    Some((jti, exp)) => apply(&jti, exp),
                    None => tracing::warn!("an unreadable revocation announcement was ignored"),
                },
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(fail(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_read_back_and_junk_is_refused() {
        assert_eq!(parse(b"abc 123"), Some(("abc".into(), 123)));
        assert_eq!(parse(b"abc"), None);
        assert_eq!(parse(b"abc x"), None);
        assert_eq!(parse(&[0xff, b' ', b'1']), None);
        assert!(super::super::PREFIX.ends_with(':'));
    }
}
