//! The admin actions on a real (temporary) store: listing, revoking, deleting.

use super::*;
use crate::authority::admin::{Action, AdminError, ClientKind, Outcome, Selector};

impl Fixture {
    /// A grant of `user` for this fixture's client: its tokens.
    fn grant_of(&self, user: &str) -> TokenResponse {
        let request = AuthorizationRequest {
            client_id: self.client.client_id.clone(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            redirect_uri_sent: true,
            state: None,
            code_challenge: CHALLENGE.into(),
            route: "notes".into(),
            resource: "https://proxy.example/notes/mcp".into(),
            scopes: vec!["notes:read".into()],
        };
        let user = LoginUser {
            name: user.into(),
            groups: vec![],
        };
        let code = self
            .authority
            .create_code(&self.config, &request, &user)
            .unwrap();
        self.exchange(&code).unwrap()
    }

    fn admin(&self, action: Action) -> Result<Outcome, AdminError> {
        self.authority.admin(&self.config, &action, None)
    }

    fn grants(&self, user: Option<&str>, client: Option<&str>) -> Vec<(String, String)> {
        let action = Action::Grants {
            user: user.map(str::to_string),
            client: client.map(str::to_string),
        };
        match self.admin(action).unwrap() {
            Outcome::Grants { grants } => grants.into_iter().map(|g| (g.user, g.route)).collect(),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn grants_list_the_live_families_with_their_route_and_last_use() {
    let f = fixture();
    let alice = f.grant_of("alice");
    f.grant_of("bob");
    assert_eq!(
        f.grants(None, None),
        [
            ("alice".to_string(), "notes".to_string()),
            ("bob".to_string(), "notes".to_string())
        ]
    );
    assert_eq!(f.grants(Some("bob"), None).len(), 1);
    assert_eq!(f.grants(None, Some(&f.client.client_id)).len(), 2);
    assert!(f.grants(None, Some("someone-else")).is_empty());

    f.advance(50);
    f.refresh(alice.refresh_token.as_deref().unwrap()).unwrap();
    let Outcome::Grants { grants } = f
        .admin(Action::Grants {
            user: Some("alice".into()),
            client: None,
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(grants[0].created_at, 1_000_000);
    assert_eq!(
        grants[0].last_used, 1_000_050,
        "the refresh is its last use"
    );
    assert_eq!(grants[0].scopes, ["notes:read"]);
}

#[test]
fn revoking_a_user_refuses_their_cached_access_token_at_once_and_their_refresh() {
    let f = fixture();
    let alice = f.grant_of("alice");
    let bob = f.grant_of("bob");
    // Seen once: now in the verified-token cache.
    assert!(f.verify(&alice.access_token).is_ok());
    assert!(f.verify(&alice.access_token).is_ok());

    let Outcome::Revoked { revoked } = f
        .admin(Action::Revoke(Selector::User("alice".into())))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(revoked.len(), 1);
    assert_eq!(
        f.verify(&alice.access_token).unwrap_err(),
        TokenError::Revoked
    );
    assert_eq!(
        f.refresh(alice.refresh_token.as_deref().unwrap())
            .unwrap_err()
            .code,
        ErrorCode::InvalidGrant
    );
    assert!(
        f.verify(&bob.access_token).is_ok(),
        "another user's grant stays"
    );
    assert_eq!(f.grants(None, None).len(), 1);

    // Also after a restart: the deny list is in the store.
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
            .verify_access(&config, &config.routes[0], &alice.access_token)
            .unwrap_err(),
        TokenError::Revoked
    );
}

#[test]
fn revoking_one_grant_leaves_the_users_others_and_an_unknown_grant_is_an_error() {
    let f = fixture();
    let first = f.grant_of("alice");
    let second = f.grant_of("alice");
    let id = crate::oauth::refresh::family_id(first.refresh_token.as_deref().unwrap())
        .unwrap()
        .to_string();
    f.admin(Action::Revoke(Selector::Grant(id.clone())))
        .unwrap();
    assert_eq!(
        f.verify(&first.access_token).unwrap_err(),
        TokenError::Revoked
    );
    assert!(f.verify(&second.access_token).is_ok());
    assert!(matches!(
        f.admin(Action::Revoke(Selector::Grant(id))),
        Err(AdminError::NoGrant(_))
    ));
    let Outcome::Revoked { revoked } = f
        .admin(Action::Revoke(Selector::User("nobody".into())))
        .unwrap()
    else {
        panic!()
    };
    assert!(revoked.is_empty(), "no grants of that user: nothing to do");
}

#[test]
fn deleting_a_client_removes_its_registration_and_revokes_its_grants() {
    let f = fixture();
    let t = f.grant_of("alice");
    let Outcome::Clients { clients } = f.admin(Action::Clients).unwrap() else {
        panic!()
    };
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].client_id, f.client.client_id);
    assert_eq!(clients[0].kind, ClientKind::Registered);
    assert_eq!(clients[0].redirect_uris, ["http://127.0.0.1/cb"]);
    assert_eq!(
        (clients[0].grants, clients[0].last_used),
        (1, Some(1_000_000))
    );

    let Outcome::Deleted(deleted) = f
        .admin(Action::DeleteClient(f.client.client_id.clone()))
        .unwrap()
    else {
        panic!()
    };
    assert!(deleted.registration_deleted);
    assert_eq!(deleted.revoked.len(), 1);
    assert_eq!(f.verify(&t.access_token).unwrap_err(), TokenError::Revoked);
    assert!(f.authority.client(&f.client.client_id).unwrap().is_none());
    assert!(matches!(
        f.admin(Action::DeleteClient(f.client.client_id.clone())),
        Err(AdminError::NoClient(_))
    ));
    let Outcome::Clients { clients } = f.admin(Action::Clients).unwrap() else {
        panic!()
    };
    assert!(clients.is_empty());
}

#[test]
fn selectors_read_and_write_as_one_key_json_objects() {
    let s: Selector = serde_json::from_str(r#"{"user": "alice"}"#).unwrap();
    assert_eq!(s, Selector::User("alice".into()));
    assert_eq!(
        serde_json::to_string(&Selector::Grant("g1".into())).unwrap(),
        r#"{"grant":"g1"}"#
    );
    for bad in [
        r#"{"user": "a", "client": "b"}"#,
        r#"{}"#,
        r#"{"group": "x"}"#,
    ] {
        assert!(serde_json::from_str::<Selector>(bad).is_err(), "{bad}");
    }
}
