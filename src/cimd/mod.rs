//! Client ID metadata documents: `rules` says what a document URL and a
//! document must be (pure), `fetch` gets them from the network safely.

pub mod fetch;
pub mod rules;
