//! Counters that all instances add to: calls per address over a fixed window
//! (registrations) and login failures (the throttle's counts, per user name
//! and per address). Each lives in one key with a Redis expiry.

use std::time::Duration;

use super::{PREFIX, Redis};
use crate::store::StoreError;

/// A fixed window's count so far (this call included) and how long it has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub count: u64,
    pub left: Duration,
}

/// Login failures as the throttle counts them: how many, the first and the last (Unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    pub first: u64,
    pub last: u64,
}

/// Counts a failure under each key: a window over (or none yet) starts again at `now`.
const FAILED: &str = r"
for _, k in ipairs(KEYS) do
  local first = tonumber(redis.call('HGET', k, 'first'))
  if not first or tonumber(ARGV[1]) >= first + tonumber(ARGV[2]) then
    redis.call('DEL', k)
    redis.call('HSET', k, 'first', ARGV[1], 'count', 0)
    redis.call('EXPIRE', k, ARGV[2])
  end
  redis.call('HINCRBY', k, 'count', 1)
  redis.call('HSET', k, 'last', ARGV[1])
end
return 1
";

/// A success: forgets the first key's failures and takes one off the second's.
const SUCCEEDED: &str = r"
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 and tonumber(redis.call('HINCRBY', KEYS[2], 'count', -1)) < 0 then
  redis.call('HSET', KEYS[2], 'count', 0)
end
return 1
";

fn throttle_key(id: &str) -> String {
    format!("{PREFIX}throttle:{id}")
}

impl Redis {
    /// Counts one call of `id` in a window of `window` that starts with its first call.
    pub fn count_in_window(&self, id: &str, window: Duration) -> Result<Window, StoreError> {
        let key = format!("{PREFIX}window:{id}");
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let (count, left): (u64, i64) = self.with(|c| {
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(&key)
                .arg(0)
                .arg("NX")
                .arg("PX")
                .arg(ms)
                .ignore()
                .cmd("INCR")
                .arg(&key)
                .cmd("PTTL")
                .arg(&key)
                .query(c)
        })?;
        Ok(Window {
            count,
            left: Duration::from_millis(u64::try_from(left).unwrap_or(0)),
        })
    }

    /// The failures counted under each id (zero for none).
    pub fn failures(&self, ids: &[&str]) -> Result<Vec<Failures>, StoreError> {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(throttle_key(id))
                .arg("count")
                .arg("first")
                .arg("last");
        }
        let found: Vec<(Option<u32>, Option<u64>, Option<u64>)> = self.with(|c| pipe.query(c))?;
        Ok(found
            .into_iter()
            .map(|(count, first, last)| Failures {
                count: count.unwrap_or(0),
                first: first.unwrap_or(0),
                last: last.unwrap_or(0),
            })
            .collect())
    }

    /// Counts a failure under each id, in windows of `window` seconds.
    pub fn count_failure(&self, ids: &[&str], now: u64, window: u64) -> Result<(), StoreError> {
        let script = redis::Script::new(FAILED);
        let mut call = script.prepare_invoke();
        for id in ids {
            call.key(throttle_key(id));
        }
        call.arg(now).arg(window);
        self.with(|c| call.invoke::<i64>(c)).map(drop)
    }

    /// A success: `forget`'s failures are forgotten, one of `lessen`'s taken back.
    pub fn count_success(&self, forget: &str, lessen: &str) -> Result<(), StoreError> {
        let script = redis::Script::new(SUCCEEDED);
        let mut call = script.prepare_invoke();
        call.key(throttle_key(forget)).key(throttle_key(lessen));
        self.with(|c| call.invoke::<i64>(c)).map(drop)
    }
}
