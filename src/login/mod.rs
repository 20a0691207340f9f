//! Logging people in: the browser flow's decisions, sessions and CSRF (signed
//! cookies), the HTML pages, local accounts, and slowing down password guessing.

pub mod flow;
pub mod pages;
pub mod session;
pub mod throttle;
pub mod users;

pub use users::LoginUser;
