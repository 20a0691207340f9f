//! The access-token signing keys: a set kept in the store, rotated on a schedule
//! (`tokens.signing_key_rotation`).
//!
//! A new key is published (in `/oauth/jwks`, and trusted for verification)
//! [`PUBLISH_AHEAD`] before it starts signing, so that every instance sharing
//! the store has loaded it by then (each reloads the set at its sweep). The
//! newest key whose time has come signs; a key replaced by a newer one stays
//! published and trusted until every token it signed has expired
//! (`access_ttl`, plus [`PUBLISH_AHEAD`] for instances that switch late), then
//! it is dropped. The set changes only at start-up and at the sweep, in one
//! atomic update of the store: two instances rotating at once end with one new key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::StateError;
use crate::config::Tokens;
use crate::oauth::jwt::{self, Claims, SigningKey, TokenError};
use crate::store::{Namespace, Records, Update};

/// How long before it signs a new key is published; also how long after the
/// last instance may have switched away from a key its tokens can be in use.
pub const PUBLISH_AHEAD: u64 = 600;
/// The record of the key set in [`Namespace::Keys`].
const SET: &str = "jwt-ed25519-set";
/// Where versions before rotation kept their one key (PKCS#8, raw bytes).
const SINGLE: &str = "jwt-ed25519";

/// A key as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredKey {
    /// The PKCS#8 document, base64url.
    pkcs8: String,
    /// When it starts signing (Unix seconds). It signs until the next key's
    /// `signs_from`, and is trusted from when it is stored until it is dropped.
    signs_from: u64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("signs_from", &self.signs_from)
            .finish_non_exhaustive()
    }
}

/// The key set as stored, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StoredSet {
    keys: Vec<StoredKey>,
}

/// What the schedule needs: how long a key signs and how long its tokens live.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    rotation: u64,
    access_ttl: u64,
}

impl From<&Tokens> for Schedule {
    fn from(t: &Tokens) -> Self {
        Self {
            rotation: t.signing_key_rotation.as_secs(),
            access_ttl: t.longest_access_ttl.as_secs(),
        }
    }
}

/// The set as it should be at `now` (pure): `candidate` becomes the first key,
/// or the next one when the newest key's time is nearly up; keys replaced long
/// enough ago are dropped.
fn plan(mut set: StoredSet, now: u64, schedule: Schedule, candidate: &str) -> StoredSet {
    let keep = schedule.access_ttl + PUBLISH_AHEAD;
    // Key i is dropped once key i+1 has been signing for `keep`.
    let first_kept = set
        .keys
        .windows(2)
        .take_while(|pair| pair[1].signs_from.saturating_add(keep) <= now)
        .count();
    set.keys.drain(..first_kept);
    let next_from = match set.keys.last() {
        None => Some(now),
        Some(newest) => {
            let due = newest.signs_from.saturating_add(schedule.rotation);
            (due <= now + PUBLISH_AHEAD).then_some(due.max(now + PUBLISH_AHEAD))
        }
    };
    if let Some(signs_from) = next_from {
        set.keys.push(StoredKey {
            pkcs8: candidate.to_string(),
            signs_from,
        });
    }
    set
}

/// A key loaded for use.
#[derive(Debug)]
struct Key {
    key: SigningKey,
    signs_from: u64,
}

/// The signing keys in memory: one snapshot of the stored set.
#[derive(Debug)]
pub struct Keys(Vec<Key>);

impl Keys {
    /// Brings the stored set up to date with the schedule at `now` (creating
    /// it on first start, from the single key of an older version if there is
    /// one) and loads it.
    pub fn refresh(records: &Records, tokens: &Tokens, now: u64) -> Result<Self, StateError> {
        let single = records.0.get(Namespace::Keys, SINGLE, 0)?;
        let candidate = match &single {
            Some(der) => der.clone(),
            None => SigningKey::generate().map_err(|_| StateError::NoRandomness)?,
        };
        let candidate = URL_SAFE_NO_PAD.encode(candidate);
        let schedule = Schedule::from(tokens);
        let (set, added) = records.update::<StoredSet, _>(Namespace::Keys, SET, 0, |stored| {
            let before = stored.unwrap_or_default();
            let after = plan(before.clone(), now, schedule, &candidate);
            let added = after.keys.last() != before.keys.last();
            if after == before {
                (None, (after, added))
            } else {
                (Some((after.clone(), 0)), (after, added))
            }
        })?;
        if single.is_some() {
            // Adopted (or superseded) by the set: the private key is not kept twice.
            records
                .0
                .update(Namespace::Keys, SINGLE, 0, &mut |_| Update::Delete)?;
        }
        let keys = set
            .keys
            .iter()
            .map(|k| {
                let der = URL_SAFE_NO_PAD
                    .decode(&k.pkcs8)
                    .map_err(|_| StateError::KeyEncoding)?;
                Ok(Key {
                    key: SigningKey::from_pkcs8(&der).map_err(StateError::UnusableKey)?,
                    signs_from: k.signs_from,
                })
            })
            .collect::<Result<Vec<_>, StateError>>()?;
        let keys = Self(keys);
        if added && let Some(newest) = keys.0.last() {
            tracing::info!(
                kid = newest.key.kid(),
                signs_from = newest.signs_from,
                "new signing key published"
            );
        }
        Ok(keys)
    }

    /// The key that signs at `now`: the newest whose time has come.
    fn signing(&self, now: u64) -> Option<&SigningKey> {
        self.0
            .iter()
            .rev()
            .find(|k| k.signs_from <= now)
            .or(self.0.first())
            .map(|k| &k.key)
    }

    pub fn sign(&self, claims: &Claims) -> String {
        match self.signing(claims.iat) {
            Some(k) => k.sign(claims),
            // `refresh` never loads an empty set.
            None => String::new(),
        }
    }

    /// Signs other claims (the identity token for upstreams) with the key that signs at `now`.
    pub fn sign_typed(&self, typ: &str, now: u64, claims: &impl serde::Serialize) -> String {
        self.signing(now)
            .map(|k| k.sign_typed(typ, claims))
            .unwrap_or_default()
    }

    /// Checks the format and the signature with the key the token's `kid`
    /// names, among the keys of the set.
    pub fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        jwt::verify_signature(token, |kid| {
            self.0.iter().map(|k| &k.key).find(|k| k.kid() == kid)
        })
    }

    /// Every key of the set, for `/oauth/jwks`.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self.0.iter().map(|k| k.key.jwk()).collect();
        serde_json::json!({ "keys": keys })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::store::Embedded;

    const HOUR: u64 = 3600;
    const DAY: u64 = 86_400;
    const T0: u64 = 1_000_000;
    /// Rotation every 30 days, tokens of an hour.
    const SCHEDULE: Schedule = Schedule {
        rotation: 30 * DAY,
        access_ttl: HOUR,
    };

    fn tokens() -> Tokens {
        Tokens {
            access_ttl: Duration::from_secs(SCHEDULE.access_ttl),
            longest_access_ttl: Duration::from_secs(SCHEDULE.access_ttl),
            refresh_ttl: Duration::from_secs(30 * DAY),
            refresh_grace: Duration::from_secs(10),
            signing_key_rotation: Duration::from_secs(SCHEDULE.rotation),
        }
    }

    fn store(dir: &Path) -> Records {
        Records(Arc::new(Embedded::open(dir).unwrap()))
    }

    fn kids(keys: &Keys) -> Vec<String> {
        keys.0.iter().map(|k| k.key.kid().to_string()).collect()
    }

    fn published(keys: &Keys) -> Vec<String> {
        keys.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }

    fn claims(now: u64) -> Claims {
        Claims {
            iss: "https://proxy.example".into(),
            sub: "alice".into(),
            aud: "https://proxy.example/notes/mcp".into(),
            client_id: "c1".into(),
            scope: String::new(),
            exp: now + HOUR,
            iat: now,
            jti: format!("j{now}"),
            groups: Vec::new(),
        }
    }

    fn kid_of(token: &str) -> String {
        let header = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap());
        let header: serde_json::Value = serde_json::from_slice(&header.unwrap()).unwrap();
        header["kid"].as_str().unwrap().to_string()
    }

    fn signs_from(set: &StoredSet) -> Vec<u64> {
        set.keys.iter().map(|k| k.signs_from).collect()
    }

    #[test]
    fn the_schedule_publishes_ahead_signs_on_time_and_drops_after_the_tokens_expire() {
        let mut set = plan(StoredSet::default(), T0, SCHEDULE, "a");
        assert_eq!(signs_from(&set), [T0], "the first key signs at once");
        let due = T0 + 30 * DAY;
        set = plan(set, due - PUBLISH_AHEAD - 1, SCHEDULE, "b");
        assert_eq!(signs_from(&set), [T0], "not yet");
        set = plan(set, due - PUBLISH_AHEAD, SCHEDULE, "b");
        assert_eq!(signs_from(&set), [T0, due], "published ahead of its time");
        assert_eq!(
            plan(set.clone(), due, SCHEDULE, "c"),
            set,
            "one next key at a time"
        );
        let drop_at = due + HOUR + PUBLISH_AHEAD;
        assert_eq!(plan(set.clone(), drop_at - 1, SCHEDULE, "c"), set);
        set = plan(set, drop_at, SCHEDULE, "c");
        assert_eq!(signs_from(&set), [due], "dropped once its tokens expired");
        assert_eq!(set.keys[0].pkcs8, "b");
    }

    #[test]
    fn a_key_overdue_after_a_long_stop_is_replaced_after_publishing_ahead() {
        let set = plan(StoredSet::default(), T0, SCHEDULE, "a");
        let later = T0 + 90 * DAY;
        let set = plan(set, later, SCHEDULE, "b");
        assert_eq!(signs_from(&set), [T0, later + PUBLISH_AHEAD]);
    }

    #[test]
    fn tokens_signed_before_a_rotation_verify_until_the_old_key_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let records = store(dir.path());
        let before = Keys::refresh(&records, &tokens(), T0).unwrap();
        let due = T0 + SCHEDULE.rotation;
        let old_token = before.sign(&claims(due - 1));
        let old_kid = kid_of(&old_token);
        assert_eq!(published(&before), [old_kid.as_str()]);

        let during = Keys::refresh(&records, &tokens(), due - PUBLISH_AHEAD).unwrap();
        let new_kid = kids(&during)[1].clone();
        assert_eq!(published(&during), [old_kid.clone(), new_kid.clone()]);
        assert_eq!(
            kid_of(&during.sign(&claims(due - 1))),
            old_kid,
            "published, not yet signing"
        );
        let new_token = during.sign(&claims(due));
        assert_eq!(kid_of(&new_token), new_kid, "tokens after rotation");
        assert_eq!(during.verify_signature(&old_token), Ok(claims(due - 1)));
        assert_eq!(during.verify_signature(&new_token), Ok(claims(due)));

        let last = due + HOUR + PUBLISH_AHEAD;
        let still = Keys::refresh(&records, &tokens(), last - 1).unwrap();
        assert_eq!(published(&still), [old_kid.clone(), new_kid.clone()]);
        assert!(still.verify_signature(&old_token).is_ok());
        let after = Keys::refresh(&records, &tokens(), last).unwrap();
        assert_eq!(published(&after), [new_kid]);
        assert_eq!(
            after.verify_signature(&old_token),
            Err(TokenError::BadSignature),
            "its key is gone"
        );
        assert_eq!(after.verify_signature(&new_token), Ok(claims(due)));
    }

    #[test]
    fn the_set_survives_a_restart_and_two_instances_rotating_at_once_add_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let records = store(dir.path());
        let first = Keys::refresh(&records, &tokens(), T0).unwrap();
        assert_eq!(
            kids(&Keys::refresh(&records, &tokens(), T0 + DAY).unwrap()),
            kids(&first),
            "loaded, not made again"
        );
        let due = T0 + SCHEDULE.rotation;
        let a = Keys::refresh(&records, &tokens(), due).unwrap();
        let b = Keys::refresh(&records, &tokens(), due).unwrap();
        assert_eq!(kids(&a).len(), 2);
        assert_eq!(
            kids(&a),
            kids(&b),
            "the second instance finds the first's key"
        );
        drop(records);
        let reopened = store(dir.path());
        assert_eq!(
            kids(&Keys::refresh(&reopened, &tokens(), due).unwrap()),
            kids(&a)
        );
    }

    #[test]
    fn two_instances_on_one_redis_rotate_to_one_set_and_verify_each_others_tokens() {
        let server = crate::store::test_redis::RedisServer::start();
        let instance = || {
            Records(Arc::new(
                crate::store::Redis::open(&server.url(), None).unwrap(),
            ))
        };
        let (a, b) = (instance(), instance());
        let first = Keys::refresh(&a, &tokens(), T0).unwrap();
        assert_eq!(
            kids(&Keys::refresh(&b, &tokens(), T0).unwrap()),
            kids(&first)
        );
        let due = T0 + SCHEDULE.rotation - PUBLISH_AHEAD;
        let rotating: Vec<_> = [a.clone(), b.clone(), a, b]
            .into_iter()
            .map(|r| std::thread::spawn(move || Keys::refresh(&r, &tokens(), due).unwrap()))
            .collect();
        let sets: Vec<Keys> = rotating.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(kids(&sets[0]).len(), 2, "one new key, published ahead");
        assert!(
            sets.iter().all(|k| kids(k) == kids(&sets[0])),
            "the same set everywhere"
        );
        let from_a = sets[0].sign(&claims(due + PUBLISH_AHEAD));
        assert_eq!(
            kid_of(&from_a),
            kids(&sets[0])[1],
            "the new key signs on time"
        );
        assert!(
            sets[1].verify_signature(&from_a).is_ok(),
            "b verifies a's tokens"
        );
        let old = first.sign(&claims(due));
        assert!(
            sets[1].verify_signature(&old).is_ok(),
            "and the old key's, during the overlap"
        );
    }

    #[test]
    fn the_single_key_of_an_older_version_becomes_the_first_of_the_set() {
        let dir = tempfile::tempdir().unwrap();
        let records = store(dir.path());
        let der = SigningKey::generate().unwrap();
        let old = SigningKey::from_pkcs8(&der).unwrap();
        records.0.put(Namespace::Keys, SINGLE, &der, 0).unwrap();
        let keys = Keys::refresh(&records, &tokens(), T0).unwrap();
        assert_eq!(kids(&keys), [old.kid().to_string()]);
        assert!(keys.verify_signature(&old.sign(&claims(T0))).is_ok());
        assert_eq!(records.0.get(Namespace::Keys, SINGLE, 0).unwrap(), None);
    }

    #[test]
    fn debug_shows_no_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let records = store(dir.path());
        let keys = Keys::refresh(&records, &tokens(), T0).unwrap();
        let stored: StoredSet = records.get(Namespace::Keys, SET, 0).unwrap().unwrap();
        let pkcs8 = &stored.keys[0].pkcs8;
        assert!(!format!("{stored:?}").contains(pkcs8));
        assert!(!format!("{keys:?}").contains(pkcs8));
    }
}
