//! The one error type of the console's server functions: it crosses to the browser as JSON, sets
//! the HTTP status, and says what went wrong in words a person can act on. Internals (database
//! errors and the like) go to the server log, never to the browser.

use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// No session, or it ended (signed out, password changed, account disabled).
    #[error("please sign in")]
    Unauthenticated,
    /// Signed in, but the role does not allow it.
    #[error("your role ({role}) may not {action}")]
    Forbidden { role: String, action: String },
    /// Sign-in refused: the message says what to do, and says it alike for a wrong password, an
    /// unknown e-mail and a locked account.
    #[error("{0}")]
    SignIn(String),
    /// Too many failed sign-ins from the caller's network: the message says when to try again.
    #[error("{0}")]
    Throttled(String),
    /// Too many password checks at once; nothing was checked.
    #[error("smsdesk is busy checking other sign-ins: try again in a few seconds")]
    Busy,
    /// Input that cannot be accepted; `field` names the form field when there is one.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// Several fields at once (the template editor): each message goes next to its field.
    #[error("{}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))]
    Fields(Vec<crate::templates::model::FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Something failed on the server; the details are in its log.
    #[error(
        "something went wrong on the server (it has been logged); try again, and tell an admin if it persists"
    )]
    Internal,
    /// The request itself failed (network, encoding).
    #[error("the request failed: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The HTTP status this error answers with.
    #[cfg(feature = "ssr")]
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            AppError::Unauthenticated | AppError::SignIn(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::Invalid { .. } | AppError::Fields(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal | AppError::Transport(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Sets this error's status on the response being built, and returns the error.
    #[cfg(feature = "ssr")]
    pub fn respond(self) -> AppError {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(self.status());
        }
        self
    }

    /// Logs an internal failure with its whole cause chain and answers [`AppError::Internal`].
    #[cfg(feature = "ssr")]
    pub fn internal(context: &str, error: &(dyn std::error::Error + 'static)) -> AppError {
        let mut chain = error.to_string();
        let mut source = error.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "{context}");
        AppError::Internal.respond()
    }
}
