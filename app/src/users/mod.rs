//! Users (admins only): the page, and the server functions that create users, change roles,
//! disable and reset passwords.

pub mod api;
pub mod page;
