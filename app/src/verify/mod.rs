//! Two-factor codes in the console (admins): the Verify page (services and their guards, recent
//! verifications, the share approved per day) and, while smsdesk simulates, what each simulated
//! phone received.

pub mod api;
pub mod page;
