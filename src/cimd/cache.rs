//! A cache bounded by the bytes it holds: what was fetched from attacker-chosen
//! URLs must not grow the proxy's memory. Entries expire at their own time and
//! the least recently used go first when a new one needs room. An entry may be
//! kept past its expiry, as a stale copy to fall back on ([`Cache::stale`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// What an entry costs besides its key and value: the map slot, the LRU index
/// node, the allocations' headers (an upper estimate).
const ENTRY_OVERHEAD: usize = 160;

/// What a value costs in memory, as an upper estimate of its heap and inline bytes.
pub trait Weigh {
    fn weight(&self) -> usize;
}

struct Entry<V> {
    value: V,
    /// Fresh until then.
    until: Instant,
    /// Kept (as a stale copy) until then; at least `until`.
    keep: Instant,
    /// Its place in `Inner::order`.
    used: u64,
    bytes: usize,
}

struct Inner<V> {
    entries: HashMap<Box<str>, Entry<V>>,
    /// Last use → key: the first is the least recently used.
    order: BTreeMap<u64, Box<str>>,
    next_use: u64,
    bytes: usize,
}

impl<V> Inner<V> {
    fn remove(&mut self, key: &str) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.used);
            self.bytes -= e.bytes;
        }
    }

    fn tick(&mut self) -> u64 {
        self.next_use += 1;
        self.next_use
    }
}

pub struct Cache<V> {
    max_bytes: usize,
    inner: Mutex<Inner<V>>,
}

impl<V: Clone + Weigh> Cache<V> {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: BTreeMap::new(),
                next_use: 0,
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value under `key` if it has not expired at `now`.
    pub fn get(&self, key: &str, now: Instant) -> Option<V> {
        let mut inner = self.lock();
        let used = inner.tick();
        let entry = inner.entries.get_mut(key)?;
        if entry.keep <= now {
            inner.remove(key);
            return None;
        }
        if entry.until <= now {
            return None;
        }
        let (value, old) = (
            entry.value.clone(),
            std::mem::replace(&mut entry.used, used),
        );
        let name = inner.order.remove(&old);
        if let Some(name) = name {
            inner.order.insert(used, name);
        }
        Some(value)
    }

    /// The value under `key`, expired or not, if it is kept at `now`; and until when it is kept.
    pub fn stale(&self, key: &str, now: Instant) -> Option<(V, Instant)> {
        let inner = self.lock();
        let entry = inner.entries.get(key)?;
        (entry.keep > now).then(|| (entry.value.clone(), entry.keep))
    }

    /// Keeps `value` under `key` until `until`, making room by dropping the least
    /// recently used entries. A value larger than the whole cache is not kept.
    pub fn insert(&self, key: &str, value: V, until: Instant) {
        self.insert_keeping(key, value, until, until);
    }

    /// [`insert`](Self::insert), and the value stays (stale) until `keep`.
    pub fn insert_keeping(&self, key: &str, value: V, until: Instant, keep: Instant) {
        // The key is held twice (map and LRU index).
        let bytes = 2 * key.len() + value.weight() + ENTRY_OVERHEAD;
        let mut inner = self.lock();
        inner.remove(key);
        if bytes > self.max_bytes {
            return;
        }
        while inner.bytes + bytes > self.max_bytes {
            let Some((_, oldest)) = inner.order.pop_first() else {
                break;
            };
            if let Some(e) = inner.entries.remove(&oldest) {
                inner.bytes -= e.bytes;
            }
        }
        let used = inner.tick();
        inner.order.insert(used, key.into());
        inner.entries.insert(
            key.into(),
            Entry {
                value,
                until,
                keep: keep.max(until),
                used,
                bytes,
            },
        );
        inner.bytes += bytes;
    }

    /// The bytes the entries are estimated to hold.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// The weight of a string held on the heap: its bytes and its `String`.
pub fn text(s: &str) -> usize {
    std::mem::size_of::<String>() + s.len()
}

/// The weight of a JSON value as `serde_json` holds it (an upper estimate).
pub fn json(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    const NODE: usize = std::mem::size_of::<Value>();
    match v {
        Value::String(s) => NODE + s.len(),
        Value::Array(a) => NODE + a.iter().map(json).sum::<usize>(),
        // A map entry: its key and value, and the map's own bookkeeping.
        Value::Object(m) => NODE + m.iter().map(|(k, v)| text(k) + json(v) + 16).sum::<usize>(),
        _ => NODE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Clone, Debug, PartialEq)]
    struct Blob(usize);

    impl Weigh for Blob {
        fn weight(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn entries_expire_at_their_own_time() {
        let cache = Cache::new(1 << 20);
        let t = Instant::now();
        cache.insert("a", Blob(1), t + Duration::from_secs(10));
        cache.insert("b", Blob(2), t + Duration::from_secs(20));
        assert_eq!(cache.get("a", t + Duration::from_secs(9)), Some(Blob(1)));
        assert_eq!(cache.get("a", t + Duration::from_secs(10)), None);
        assert_eq!(cache.get("b", t + Duration::from_secs(10)), Some(Blob(2)));
        assert_eq!(cache.len(), 1, "the expired entry is gone");
    }

    #[test]
    fn an_entry_kept_past_its_expiry_is_only_a_stale_copy_until_then() {
        let cache = Cache::new(1 << 20);
        let t = Instant::now();
        let secs = |n| t + Duration::from_secs(n);
        cache.insert_keeping("a", Blob(1), secs(10), secs(100));
        assert_eq!(cache.get("a", secs(9)), Some(Blob(1)));
        assert_eq!(cache.get("a", secs(10)), None, "expired");
        assert_eq!(cache.stale("a", secs(99)), Some((Blob(1), secs(100))));
        assert_eq!(cache.stale("a", secs(100)), None);
        assert_eq!(cache.get("a", secs(100)), None);
        assert_eq!(cache.len(), 0, "gone once past its keep time");
        cache.insert("b", Blob(2), secs(10));
        assert_eq!(
            cache.stale("b", secs(10)),
            None,
            "no stale copy without a keep time"
        );
    }

    #[test]
    fn a_flood_of_entries_stays_within_the_byte_bound() {
        const BOUND: usize = 1 << 20;
        let cache = Cache::new(BOUND);
        let t = Instant::now();
        let day = t + Duration::from_secs(86_400);
        for i in 0..20_000 {
            let key = format!("https://attacker{i}.example/client.json");
            cache.insert(&key, Blob(1 + (i * 7919) % 60_000), day);
            assert!(cache.bytes() <= BOUND, "after {i} entries");
        }
        assert!(cache.bytes() > BOUND / 2, "the cache is used");
        assert!(cache.len() < 20_000);
        cache.insert("huge", Blob(BOUND + 1), day);
        assert_eq!(
            cache.get("huge", t),
            None,
            "larger than the cache: not kept"
        );
    }

    #[test]
    fn the_least_recently_used_entry_makes_room_first() {
        let each = 100;
        let cache = Cache::new(3 * (each + 2 + ENTRY_OVERHEAD));
        let t = Instant::now();
        let later = t + Duration::from_secs(60);
        for key in ["a", "b", "c"] {
            cache.insert(key, Blob(each), later);
        }
        assert!(
            cache.get("a", t).is_some(),
            "a is used: now b is the oldest"
        );
        cache.insert("d", Blob(each), later);
        assert_eq!(cache.get("b", t), None);
        for key in ["a", "c", "d"] {
            assert!(cache.get(key, t).is_some(), "{key}");
        }
        cache.insert("c", Blob(2 * each), later);
        assert_eq!(cache.len(), 2, "a bigger c pushed out the oldest (a)");
        assert_eq!(cache.get("a", t), None);
    }
}
