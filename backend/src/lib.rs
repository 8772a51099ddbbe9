//! What smsdesk does: storage, users, the audit log, templates. No Leptos: the console (`app`)
//! and the binary (`server`) call into this crate, and its tests need no browser.

pub mod audit;
pub mod crypto;
pub mod db;
pub mod sessions;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;
pub mod twilio;
pub mod users;
