//! How smsdesk runs: settings, the router and its layers, start-up, the command line.
//! `main.rs` only reads the command line and calls into here; tests build the same application.

pub mod api;
pub mod cli;
pub mod client_address;
pub mod consent;
pub mod csrf;
pub mod export;
pub mod guard;
pub mod metrics;
pub mod sending;
pub mod settings;
pub mod simulator_inbox;
pub mod spend;
pub mod startup;
pub mod twilio_api;
pub mod twilio_usage;
pub mod twilio_verify;
pub mod web;
pub mod webhooks;
