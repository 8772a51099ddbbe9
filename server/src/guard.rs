//! Page access on the server: a console page asked for without a session redirects to sign-in;
//! one the role may not see answers 403 (and the page itself says so). Server functions check
//! their own permission (`app::auth::require`); this covers the documents.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use backend::db::Db;
use tower_sessions::Session;

/// Redirects or marks forbidden page requests; everything else passes untouched.
pub async fn pages(State(db): State<Db>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let Some(page) = (request.method() == Method::GET)
        .then(|| app::access::page_for(&path))
        .flatten()
    else {
        return next.run(request).await;
    };
    let Some(required) = page.requires else {
        return next.run(request).await;
    };
    let user = match request.extensions().get::<Session>() {
        Some(session) => app::auth::user_of_session(&db, session, backend::db::now_micros()).await,
        None => Ok(None),
    };
    let user = match user {
        Ok(user) => user,
        Err(e) => {
            tracing::error!(error = %e, "checking page access");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "smsdesk cannot reach its database; try again shortly",
            )
                .into_response();
        }
    };
    let Some(user) = user else {
        // Back to the same page, filters included, after sign-in. The sign-in page decodes
        // `next` once and follows it only if it is a path of this site (`safe_next`).
        let asked = request
            .uri()
            .path_and_query()
            .map_or(path.as_str(), |p| p.as_str());
        let target = format!("/login?next={}", urlencode(asked));
        return Redirect::to(&target).into_response();
    };
    let forbidden = !required.iter().all(|p| user.role.can(*p));
    let mut response = next.run(request).await;
    if forbidden {
        tracing::warn!(user_id = user.id, path, "page forbidden for this role");
        *response.status_mut() = StatusCode::FORBIDDEN;
        response.headers_mut().remove(header::CACHE_CONTROL);
    }
    response
}

/// Percent-encodes every byte but letters, digits, `/-_.`: a `?`, `&`, `#`, `%`, `\`, space or
/// control character in the path cannot end `next` early or survive decoding as anything but
/// itself.
fn urlencode(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
