//! The sending engine's settings (admins): the page, and the server functions that read and save
//! them.

pub mod api;
pub mod page;
