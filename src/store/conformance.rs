//! One set of expectations for every backend of the [`Store`] trait: the
//! embedded store and Redis (a `redis-server` of the test's own) must answer
//! alike for reads, writes, expiry, atomic updates and scans.

use std::sync::Arc;

use super::{Embedded, Namespace, Records, Redis, Update};

use super::test_redis::RedisServer;

/// Now, as the tests' records see it (Redis expiries are wall-clock).
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs `check` on a fresh embedded store and on a fresh Redis store.
fn on_both(check: impl Fn(Records)) {
    let dir = tempfile::tempdir().unwrap();
    check(Records(Arc::new(Embedded::open(dir.path()).unwrap())));
    let server = RedisServer::start();
    check(Records(Arc::new(Redis::open(&server.url(), None).unwrap())));
}

#[test]
fn reads_writes_and_expiry() {
    on_both(|r| {
        let s = &r.0;
        let t = now();
        assert_eq!(s.get(Namespace::Clients, "c1", t).unwrap(), None);
        s.put(Namespace::Clients, "c1", b"{\"a\":1}", 0).unwrap();
        s.put(Namespace::Codes, "k", b"\"v\"", t + 100).unwrap();
        assert_eq!(
            s.get(Namespace::Clients, "c1", t + 1_000_000)
                .unwrap()
                .as_deref(),
            Some(&b"{\"a\":1}"[..]),
            "0: never expires"
        );
        assert_eq!(
            s.get(Namespace::Codes, "k", t + 99).unwrap().as_deref(),
            Some(&b"\"v\""[..])
        );
        assert_eq!(
            s.get(Namespace::Codes, "k", t + 100).unwrap(),
            None,
            "expired at its time"
        );
        assert_eq!(
            s.get(Namespace::Clients, "k", t).unwrap(),
            None,
            "namespaces are apart"
        );
        s.put(Namespace::Clients, "c1", b"2", 0).unwrap();
        assert_eq!(
            s.get(Namespace::Clients, "c1", t).unwrap().as_deref(),
            Some(&b"2"[..])
        );
    });
}

#[test]
fn updates_keep_put_and_delete_and_see_expired_records_as_absent() {
    on_both(|r| {
        let s = &r.0;
        let t = now();
        let mut seen = Vec::new();
        let mut update = |answer: fn() -> Update, at: u64| {
            s.update(Namespace::Families, "f", at, &mut |cur| {
                seen.push(cur.map(<[u8]>::to_vec));
                answer()
            })
            .unwrap();
        };
        update(|| Update::Keep, t);
        update(
            || Update::Put {
                value: b"one".to_vec(),
                expires_at: now() + 50,
            },
            t,
        );
        update(|| Update::Keep, t);
        update(|| Update::Keep, t + 50);
        update(|| Update::Delete, t);
        update(|| Update::Keep, t);
        assert_eq!(
            seen,
            [
                None,
                None,
                Some(b"one".to_vec()),
                None,
                Some(b"one".to_vec()),
                None
            ],
            "absent, absent, written, expired at +50, deleted"
        );
    });
}

#[test]
fn concurrent_updates_of_one_key_are_serialised() {
    on_both(|records| {
        records.put(Namespace::Families, "f", &0u64, 0).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let r = records.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        r.update::<u64, ()>(Namespace::Families, "f", 1, |n| {
                            (Some((n.unwrap_or(0) + 1, 0)), ())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            records.get::<u64>(Namespace::Families, "f", 1).unwrap(),
            Some(100)
        );
    });
}

#[test]
fn key_material_is_made_once() {
    on_both(|records| {
        let a = records.key_material("k", vec![1, 2, 3]).unwrap();
        let b = records.key_material("k", vec![9]).unwrap();
        assert_eq!(a, vec![1, 2, 3]);
        assert_eq!(a, b);
    });
}

#[test]
fn scans_list_the_live_records_of_one_namespace() {
    on_both(|r| {
        let s = &r.0;
        let t = now();
        s.put(Namespace::Denied, "a", b"1", t + 10).unwrap();
        s.put(Namespace::Denied, "b", b"2", t + 20).unwrap();
        s.put(Namespace::Clients, "c", b"3", 0).unwrap();
        s.put(Namespace::Clients, "d", b"4", t + 10).unwrap();
        let sorted = |mut v: Vec<Vec<u8>>| {
            v.sort();
            v
        };
        assert_eq!(
            sorted(s.scan(Namespace::Denied, t).unwrap()),
            [b"1".to_vec(), b"2".to_vec()]
        );
        assert_eq!(
            sorted(s.scan(Namespace::Denied, t + 10).unwrap()),
            [b"2".to_vec()]
        );
        assert_eq!(
            sorted(s.scan(Namespace::Clients, t + 10).unwrap()),
            [b"3".to_vec()]
        );
        assert_eq!(s.scan(Namespace::Codes, t).unwrap(), Vec::<Vec<u8>>::new());
    });
}
