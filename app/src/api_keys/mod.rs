//! API keys (admins), which other services send with: the page, and the server functions that
//! list, create and revoke them.

pub mod api;
pub mod page;
