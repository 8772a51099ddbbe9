//! What server functions and pages need from the server: the database, the data key, and
//! intake.

use backend::crypto::DataKey;
use backend::db::Db;
use backend::intake::Intake;

/// Provided as Leptos context to every page render and server function.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Caps the password checks running at once (sign-in, own password change).
    pub password_checks: backend::users::PasswordChecks,
    /// Failed sign-ins by client address (this instance's).
    pub sign_in_throttle: std::sync::Arc<backend::users::throttle::SignInThrottle>,
    /// Encrypts phone numbers at rest.
    pub key: DataKey,
    /// Whether smsdesk sends through its simulator (shown in the console).
    pub simulator: bool,
    /// The sender used when a message names none (for the send page's estimate).
    pub default_sender: String,
    /// How every message enters (the send page writes through it; it wakes the worker).
    pub intake: Intake,
    /// API keys checked in the last second (revoking one here forgets them at once).
    pub api_keys: backend::api_keys::KeyCache,
    /// The CSV exports running on this instance, so their pages can show how far they are.
    pub exports: backend::export::Exports,
    /// Two-factor verifications (the console's second factor, the Verify page).
    pub verifier: backend::verify::Verifier,
    /// The simulator, while smsdesk simulates: its phones' inbox page reads it.
    pub simulated_phones: Option<std::sync::Arc<backend::simulator::Simulator>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("simulator", &self.simulator)
            .finish_non_exhaustive()
    }
}
