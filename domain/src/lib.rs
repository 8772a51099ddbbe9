//! The rules of SMS, as Twilio applies them: pure Rust, no I/O, no Leptos, compiles to wasm.
//!
//! Every number a dispatcher, a compliance officer or finance sees starts here. The server and the
//! browser run the same code, so what the editor shows is what gets billed.

pub mod access;
pub mod admission;
pub mod budget;
pub mod consent;
pub mod delivery;
pub mod errors;
pub mod keywords;
pub mod money;
#[cfg(feature = "phone")]
pub mod phone;
pub mod pricing;
pub mod ratelimit;
pub mod redact;
pub mod segments;
pub mod sending;
pub mod signature;
pub mod status;
pub mod template;
pub mod verify;
