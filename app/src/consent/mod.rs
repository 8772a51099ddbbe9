//! The consent ledger for compliance officers: a number's state and history with the evidence,
//! the latest changes, and opt-outs or opt-ins recorded by hand with a note.

pub mod api;
pub mod page;
