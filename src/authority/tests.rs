//! The authorization server's operations with an injected clock and a real
//! (temporary) embedded store.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::oauth::ErrorCode;
use crate::oauth::client::RegistrationRequest;
use crate::store::Embedded;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$YVqjWtFjZTs/R3qCDziyaw$BFZoFrBahluVm4W5y3YW4fMqE6yoE3RgwtzbKI6XSFA";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct Fixture {
    _dir: tempfile::TempDir,
    time: ManualClock,
    authority: Authority,
    config: Config,
    client: ClientRecord,
}

fn config() -> Config {
    let yaml = format!(
        "listen: \"127.0.0.1:8080\"\npublic_url: \"https://proxy.example\"\nstate:\n  dir: /tmp\ntokens:\n  access_ttl: 100s\n  refresh_grace: 10s\nusers:\n  - name: alice\n    password_hash: \"{HASH}\"\nroutes:\n  - name: notes\n    path: /notes/mcp\n    upstream: \"http://127.0.0.1:1/mcp\"\n"
    );
    Config::from_yaml(&yaml, Path::new("/"), &|_| None).unwrap()
}

fn authority_at(dir: &Path, time: &ManualClock) -> Authority {
    let records = Records(Arc::new(Embedded::open(dir).unwrap()));
    Authority::new(records, time.clock(), &config().tokens).unwrap()
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let time = ManualClock::new(1_000_000);
    let authority = authority_at(dir.path(), &time);
    let reg = authority
        .register(RegistrationRequest {
            redirect_uris: Some(vec!["http://127.0.0.1/cb".into()]),
            token_endpoint_auth_method: Some("none".into()),
            ..Default::default()
        })
        .unwrap();
    let client = authority
        .client(reg["client_id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    Fixture {
        _dir: dir,
        time,
        authority,
        config: config(),
        client,
    }
}

impl Fixture {
    fn advance(&self, secs: u64) {
        self.time.advance(Duration::from_secs(secs));
    }

    fn code(&self) -> String {
        let request = AuthorizationRequest {
            client_id: self.client.client_id.clone(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            redirect_uri_sent: true,
            state: None,
            code_challenge: CHALLENGE.into(),
            route: "notes".into(),
            resource: "https://proxy.example/notes/mcp".into(),
            scopes: vec![],
        };
        let user = LoginUser {
            name: "alice".into(),
            groups: vec![],
        };
        self.authority
            .create_code(&self.config, &request, &user)
            .unwrap()
    }

    fn exchange(&self, code: &str) -> Result<TokenResponse, OAuthError> {
        let p = TokenParams {
            code: Some(code),
            redirect_uri: Some("http://127.0.0.1/cb"),
            code_verifier: Some(VERIFIER),
            ..Default::default()
        };
        self.authority.exchange_code(&self.config, &self.client, &p)
    }

    fn refresh(&self, token: &str) -> Result<TokenResponse, OAuthError> {
        let p = TokenParams {
            refresh_token: Some(token),
            ..Default::default()
        };
        self.authority.refresh(&self.config, &self.client, &p)
    }

    fn verify(&self, access: &str) -> Result<Arc<Claims>, TokenError> {
        self.authority
            .verify_access(&self.config, &self.config.routes[0], access)
    }
}

#[test]
fn codes_are_single_use_and_a_replay_revokes_the_grant() {
    let f = fixture();
    let code = f.code();
    let tokens = f.exchange(&code).unwrap();
    assert!(f.verify(&tokens.access_token).is_ok());
    assert_eq!(f.exchange(&code).unwrap_err().code, ErrorCode::InvalidGrant);
    assert_eq!(
        f.verify(&tokens.access_token).unwrap_err(),
        TokenError::Revoked
    );
    assert_eq!(
        f.refresh(tokens.refresh_token.as_deref().unwrap())
            .unwrap_err()
            .code,
        ErrorCode::InvalidGrant
    );
}

#[test]
fn codes_expire_after_a_minute() {
    let f = fixture();
    let code = f.code();
    f.advance(60);
    assert_eq!(f.exchange(&code).unwrap_err().code, ErrorCode::InvalidGrant);
}

#[test]
fn access_tokens_expire_exactly() {
    let f = fixture();
    let tokens = f.exchange(&f.code()).unwrap();
    f.advance(99);
    assert!(f.verify(&tokens.access_token).is_ok());
    f.advance(1);
    assert_eq!(
        f.verify(&tokens.access_token).unwrap_err(),
        TokenError::Expired
    );
}

#[test]
fn the_grace_window_replays_then_reuse_revokes() {
    let f = fixture();
    let first = f.exchange(&f.code()).unwrap();
    let second = f.refresh(first.refresh_token.as_deref().unwrap()).unwrap();
    f.advance(10);
    assert_eq!(
        f.refresh(first.refresh_token.as_deref().unwrap()).unwrap(),
        second,
        "within the window: the same answer"
    );
    f.advance(1);
    assert_eq!(
        f.refresh(first.refresh_token.as_deref().unwrap())
            .unwrap_err()
            .code,
        ErrorCode::InvalidGrant
    );
    assert_eq!(
        f.refresh(second.refresh_token.as_deref().unwrap())
            .unwrap_err()
            .code,
        ErrorCode::InvalidGrant,
        "the family is revoked"
    );
    assert_eq!(
        f.verify(&second.access_token).unwrap_err(),
        TokenError::Revoked
    );
}

#[test]
fn revocations_survive_a_restart() {
    let f = fixture();
    let tokens = f.exchange(&f.code()).unwrap();
    f.authority.revoke(&f.client, &tokens.access_token).unwrap();
    let Fixture {
        _dir: dir,
        time,
        authority,
        config,
        ..
    } = f;
    drop(authority);
    let again = authority_at(dir.path(), &time);
    assert_eq!(
        again
            .verify_access(&config, &config.routes[0], &tokens.access_token)
            .unwrap_err(),
        TokenError::Revoked
    );
}

#[test]
fn a_user_removed_from_the_config_cannot_refresh_but_the_grant_is_kept() {
    let f = fixture();
    let tokens = f.exchange(&f.code()).unwrap();
    let without_alice = Config {
        users: Vec::new(),
        ..config()
    };
    let p = TokenParams {
        refresh_token: Some(tokens.refresh_token.as_deref().unwrap()),
        ..Default::default()
    };
    assert_eq!(
        f.authority
            .refresh(&without_alice, &f.client, &p)
            .unwrap_err()
            .code,
        ErrorCode::InvalidGrant
    );
    assert!(
        f.refresh(tokens.refresh_token.as_deref().unwrap()).is_ok(),
        "the config mistake undone, the family works again"
    );
}

#[test]
fn token_responses_do_not_print_their_tokens() {
    let f = fixture();
    let tokens = f.exchange(&f.code()).unwrap();
    let printed = format!("{tokens:?}");
    assert!(
        !printed.contains(&tokens.access_token)
            && !printed.contains(tokens.refresh_token.as_deref().unwrap())
    );
}

#[test]
fn cached_tokens_are_compared_whole() {
    assert!(super::same_bytes(b"abc.def.sig", b"abc.def.sig"));
    assert!(!super::same_bytes(b"abc.def.sig", b"abd.def.sig"));
    assert!(!super::same_bytes(b"abc.def.sig", b"abc.def.si"));
    assert!(!super::same_bytes(b"", b"x"));
    assert!(super::same_bytes(b"", b""));
}

const DAY: u64 = 86_400;

#[test]
fn a_client_that_obtained_a_token_still_refreshes_after_two_days() {
    let f = fixture();
    let tokens = f.exchange(&f.code()).unwrap();
    f.advance(2 * DAY);
    let client = f.authority.client(&f.client.client_id).unwrap();
    assert!(client.is_some(), "the client is still registered");
    let again = f.refresh(tokens.refresh_token.as_deref().unwrap()).unwrap();
    f.advance(29 * DAY);
    assert!(
        f.refresh(again.refresh_token.as_deref().unwrap()).is_ok(),
        "each refresh keeps the client for another refresh TTL"
    );
}

#[test]
fn a_client_is_forgotten_when_its_last_refresh_token_expires() {
    let f = fixture();
    f.exchange(&f.code()).unwrap();
    f.advance(30 * DAY - 1);
    assert!(f.authority.client(&f.client.client_id).unwrap().is_some());
    f.advance(1);
    assert!(f.authority.client(&f.client.client_id).unwrap().is_none());
}

#[test]
fn a_client_that_never_obtained_a_token_is_forgotten_after_a_day() {
    let f = fixture();
    f.advance(DAY - 1);
    assert!(f.authority.client(&f.client.client_id).unwrap().is_some());
    f.advance(1);
    assert!(f.authority.client(&f.client.client_id).unwrap().is_none());
}

#[test]
fn a_consent_is_remembered_per_user_and_client_for_the_refresh_ttl() {
    let f = fixture();
    let id = f.client.client_id.as_str();
    assert!(
        !f.authority.has_consented("alice", id),
        "before any consent"
    );
    f.code();
    assert!(f.authority.has_consented("alice", id));
    assert!(!f.authority.has_consented("bob", id), "another user");
    assert!(!f.authority.has_consented("alice", "other-client"));
    assert!(
        !f.authority.has_consented("alic", &format!("e{id}")),
        "user and client do not run into each other"
    );
    f.advance(30 * DAY - 1);
    assert!(f.authority.has_consented("alice", id));
    f.advance(1);
    assert!(!f.authority.has_consented("alice", id), "expired");
}

#[test]
fn a_flood_of_revocations_is_bounded_and_pauses_issuing_rather_than_forgetting_one() {
    let mut f = fixture();
    f.authority.max_denied = 3;
    let mut revoked = Vec::new();
    for _ in 0..3 {
        let tokens = f.exchange(&f.code()).unwrap();
        f.authority.revoke(&f.client, &tokens.access_token).unwrap();
        revoked.push(tokens.access_token);
    }
    let full = f.exchange(&f.code()).unwrap_err();
    assert_eq!(full.code, ErrorCode::TemporarilyUnavailable);
    assert_eq!(f.authority.denied.len(), 3);
    for token in &revoked {
        assert_eq!(
            f.verify(token).unwrap_err(),
            TokenError::Revoked,
            "none forgotten"
        );
    }
    f.advance(f.config.tokens.access_ttl.as_secs());
    assert!(
        f.exchange(&f.code()).is_ok(),
        "expired revocations make room"
    );
}

#[test]
fn a_flood_of_distinct_tokens_keeps_the_verified_cache_within_its_bound() {
    let mut f = fixture();
    f.authority.max_verified = 4;
    let mut tokens = Vec::new();
    for _ in 0..10 {
        let access = f.exchange(&f.code()).unwrap().access_token;
        f.verify(&access).unwrap();
        assert!(
            f.authority.verified.len() <= 4,
            "{}",
            f.authority.verified.len()
        );
        tokens.push(access);
    }
    for access in &tokens {
        assert!(
            f.verify(access).is_ok(),
            "a token pushed out is verified again"
        );
    }
}

#[test]
fn a_client_assertion_is_accepted_once_across_instances_sharing_redis() {
    let server = crate::store::test_redis::RedisServer::start();
    let time = ManualClock::starting_now();
    let instance = || {
        let records = Records(Arc::new(
            crate::store::Redis::open(&server.url(), None).unwrap(),
        ));
        Authority::new(records, time.clock(), &config().tokens).unwrap()
    };
    let (a, b) = (instance(), instance());
    let exp = time.clock().unix() + 60;
    assert_eq!(a.first_use_of_assertion("client", "jti-1", exp), Ok(()));
    assert_eq!(
        b.first_use_of_assertion("client", "jti-1", exp),
        Err(assertion::SeenError::Replayed),
        "seen by the other instance"
    );
    assert_eq!(
        b.first_use_of_assertion("other-client", "jti-1", exp),
        Ok(())
    );
    drop(server);
    assert_eq!(
        a.first_use_of_assertion("client", "jti-2", exp),
        Err(assertion::SeenError::Unavailable),
        "Redis gone: refused, never accepted unchecked"
    );
}

#[test]
fn a_resync_applies_the_revocations_an_instance_did_not_hear_of() {
    let server = crate::store::test_redis::RedisServer::start();
    let time = ManualClock::starting_now();
    let instance = || {
        let records = Records(Arc::new(
            crate::store::Redis::open(&server.url(), None).unwrap(),
        ));
        Authority::new(records, time.clock(), &config().tokens).unwrap()
    };
    // Neither listens on the channel here: b hears of a's revocation only by the resync.
    let (a, b) = (instance(), instance());
    let exp = time.clock().unix() + 100;
    a.deny(vec![IssuedAccess {
        jti: "j1".into(),
        exp,
    }]);
    assert!(a.denied.contains_key("j1"));
    assert!(!b.denied.contains_key("j1"));
    assert_eq!(b.resync_revocations().unwrap(), 1);
    assert_eq!(b.denied.get("j1").map(|e| *e), Some(exp));
    assert_eq!(b.resync_revocations().unwrap(), 0, "applied once");
    let c = instance();
    assert!(
        c.denied.contains_key("j1"),
        "and an instance starting later loads it"
    );
}
mod admin;
