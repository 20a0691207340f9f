//! The authorization server as pure logic: each rule here is a function of its
//! inputs and the time, unit-tested without a server. I/O lives in `authority`
//! (store, keys) and `handlers` (HTTP).

pub mod api_key;
pub mod assertion;
pub mod authorize;
pub mod client;
pub mod error;
pub mod form;
pub mod jwk;
pub mod jwt;
pub mod machine;
pub mod metadata;
pub mod pkce;
pub mod redirect;
pub mod refresh;
pub mod resource;
pub mod scope;
pub mod seal;

pub use error::{ErrorCode, OAuthError};
