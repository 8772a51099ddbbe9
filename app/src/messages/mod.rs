//! The delivery log: every message, filtered, a page at a time, and each message's own page with
//! its timeline and the actions a dispatcher may take.

pub mod api;
pub mod page;
