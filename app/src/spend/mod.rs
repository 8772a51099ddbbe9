//! Spend and budgets, for finance and admins.

pub mod api;
pub mod page;
