//! The audit log (admins and compliance officers): the page, and the server function that reads
//! it.

pub mod api;
pub mod page;
