//! Client ID metadata documents: `rules` says what a document URL and a
//! document must be (pure), `fetch` gets them from the network safely.

mod address;
mod cache;
pub mod fetch;
pub mod rules;

use crate::oauth::OAuthError;
pub use fetch::FetchError;

/// Why a metadata document (or its URL) cannot be used: one variant per rule
/// broken, and [`Fetch`](CimdError::Fetch) for the network. The texts are shown
/// to whoever signs in (`rules::unusable`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CimdError {
    #[error("the client_id is not a valid URL")]
    NotAUrl,
    #[error("the client_id URL must use https")]
    NotHttps,
    #[error("the client_id URL must have a path")]
    NoPath,
    #[error("the client_id URL must not contain a fragment or credentials")]
    FragmentOrCredentials,
    #[error("the client_id URL must be in normal form")]
    NotNormalForm,
    /// The body is not JSON of the metadata's shape (serde's message).
    #[error("the document is not valid client metadata JSON ({0})")]
    NotJson(String),
    #[error("the document's client_id is not the URL it was fetched from")]
    OtherClientId,
    #[error("the document lists no redirect_uris")]
    NoRedirectUris,
    #[error("{}", .0.description)]
    RedirectUri(OAuthError),
    #[error("private_key_jwt needs jwks or jwks_uri in the document")]
    NoKeys,
    #[error("token_endpoint_auth_method {0:?} cannot be used with a metadata document")]
    AuthMethod(String),
    #[error("jwks_uri must be a URL")]
    JwksUriNotAUrl,
    /// A field (or the URL, or the key set) longer than its bound (bytes).
    #[error("{0} is too long (at most {1} bytes)")]
    TooLong(&'static str, usize),
    /// A list with more entries than its bound.
    #[error("{0} lists too many entries (at most {1})")]
    TooMany(&'static str, usize),
    /// `jwks`, or the document at `jwks_uri`, is not a key set (serde's message).
    #[error("the key set is not a JSON Web Key Set ({0})")]
    NotAKeySet(String),
    /// The client's network fetched too many documents lately: seconds to wait.
    #[error(
        "too many client metadata documents were fetched from your network; try again in {0} seconds"
    )]
    TooManyFetches(u64),
    /// The document could not be fetched: the network's answer, in detail (for
    /// the log; `rules::unusable` shows only that it could not be fetched).
    #[error(transparent)]
    Fetch(#[from] FetchError),
}
