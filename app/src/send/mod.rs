//! Sending from the console (dispatchers): the send page, and the server functions behind it that
//! review a draft, send it, and follow its messages until each has its outcome.

pub mod api;
pub mod page;
