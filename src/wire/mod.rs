//! The HTTP wire layer every handler shares: the one body type and bounded
//! body reads, JSON responses, what is known of the client's connection, and
//! which headers are connection-specific. A leaf: it depends on no other
//! module of the crate.

mod body;
mod conn;
mod hop;
mod response;

pub use body::{
    Body, BodyError, BoxError, Holding, MAX_FORM_BODY, boxed, discard, empty, full, read_body,
};
pub use conn::{ConnInfo, IpText};
pub use hop::is_hop_by_hop;
pub use response::{check_method, json, json_error, method_not_allowed};
