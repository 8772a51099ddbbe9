//! What smsdesk does: storage, users, the audit log, templates, API keys, runtime settings, the
//! outbox and its worker, the Twilio client and the simulator, consent. No Leptos: the console (`app`)
//! and the binary (`server`) call into this crate, and its tests need no browser.

pub mod api_keys;
pub mod audit;
pub mod budgets;
pub mod consent;
pub mod crypto;
pub mod db;
pub mod delivery;
pub mod export;
pub mod inbox;
pub mod intake;
pub mod late_prices;
pub mod outbox;
pub mod outcome;
pub mod retention;
pub mod second_factor;
pub mod seed;
pub mod sessions;
pub mod settings;
pub mod simulator;
pub mod spend;
pub mod telemetry;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;
pub mod totals;
pub mod twilio;
pub mod users;
pub mod verify;
pub mod worker;
