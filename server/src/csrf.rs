//! Cross-site request forgery protection for the console: the browser's own word on where a
//! request comes from (Go 1.25's `http.CrossOriginProtection`, see shared/CRATES.md).
//!
//! A state-changing request (anything but GET, HEAD, OPTIONS) is refused when `Sec-Fetch-Site`
//! says it comes from another site; browsers that do not send that header are held to `Origin`,
//! which must be smsdesk's own. Requests with neither header do not come from a browser page, so
//! they cannot ride on a signed-in person's cookie. Webhooks (signed by Twilio) and the JSON API
//! (API keys, no cookies) are not the console and are not checked here.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Paths that do not use the session cookie.
const EXEMPT_PREFIXES: &[&str] = &["/webhooks/", "/api/v1/", "/2010-04-01/"];

/// The origin the console is served from, when configured (`SMSDESK_PUBLIC_URL`).
#[derive(Clone, Debug)]
pub struct Origin(pub Option<String>);

pub async fn protect(State(origin): State<Origin>, request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let path = request.uri().path();
    if safe || EXEMPT_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return next.run(request).await;
    }
    match verdict(request.headers(), origin.0.as_deref()) {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            tracing::warn!(path, reason, "cross-site request refused");
            (
                StatusCode::FORBIDDEN,
                format!("Refused: {reason}. Submit the form from the smsdesk console itself."),
            )
                .into_response()
        }
    }
}

fn verdict(headers: &HeaderMap, public_origin: Option<&str>) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err("the request came from another site"),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .map_err(|_| "the Origin header is not readable")?;
    let expected = match public_origin {
        Some(public) => public.to_owned(),
        None => {
            // No public URL configured: the console is reached directly, at its Host.
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .ok_or("the request has an Origin but no Host")?;
            let scheme = origin.split_once("://").map_or("http", |(s, _)| s);
            format!("{scheme}://{host}")
        }
    };
    if origin.eq_ignore_ascii_case(&expected) {
        Ok(())
    } else {
        Err("the request's Origin is not this console")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn fetch_metadata_decides_when_present() {
        assert!(verdict(&headers(&[("sec-fetch-site", "same-origin")]), None).is_ok());
        assert!(verdict(&headers(&[("sec-fetch-site", "none")]), None).is_ok());
        assert!(verdict(&headers(&[("sec-fetch-site", "cross-site")]), None).is_err());
        assert!(verdict(&headers(&[("sec-fetch-site", "same-site")]), None).is_err());
    }

    #[test]
    fn origin_must_be_the_console_when_fetch_metadata_is_absent() {
        let public = Some("https://sms.safeshipper.com");
        assert!(
            verdict(
                &headers(&[("origin", "https://sms.safeshipper.com")]),
                public
            )
            .is_ok()
        );
        assert!(verdict(&headers(&[("origin", "https://evil.example")]), public).is_err());
        let local = headers(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000"),
        ]);
        assert!(verdict(&local, None).is_ok());
        let forged = headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:3000"),
        ]);
        assert!(verdict(&forged, None).is_err());
    }

    #[test]
    fn requests_without_browser_headers_pass() {
        assert!(verdict(&HeaderMap::new(), Some("https://sms.safeshipper.com")).is_ok());
    }
}
