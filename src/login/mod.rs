//! Logging people in: sessions and CSRF (signed cookies), the HTML pages,
//! local accounts, and slowing down password guessing.

pub mod pages;
pub mod session;
pub mod throttle;
pub mod users;

pub use users::LoginUser;
