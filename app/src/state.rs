//! What server functions and pages need from the server: the database (and, next, the sender).

use backend::db::Db;

/// Provided as Leptos context to every page render and server function.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    /// Whether smsdesk sends through its simulator (shown in the console).
    pub simulator: bool,
}
