//! Where each console request comes from, for sign-in throttling: the connection's peer, or,
//! behind a reverse proxy (`SMSDESK_BEHIND_PROXY`), the address the proxy appended to
//! `X-Forwarded-For`. Only the last entry is believed: the ones before it are whatever the client
//! sent.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

/// How to find the client's address.
#[derive(Debug, Clone, Copy)]
pub struct AddressFrom {
    pub behind_proxy: bool,
}

/// Puts `app::auth::ClientAddress` into the request's extensions. The server is served with
/// connection info (`Application::run_until`); without it no address is set, and sign-in refuses
/// with an internal error (logged) rather than throttle everyone as one.
pub async fn resolve(
    State(from): State<AddressFrom>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let forwarded = from
        .behind_proxy
        .then(|| last_forwarded_for(request.headers()))
        .flatten();
    if let Some(address) = forwarded.or(peer) {
        request
            .extensions_mut()
            .insert(app::auth::ClientAddress(address));
    }
    next.run(request).await
}

/// The last address in the last `X-Forwarded-For` header, if it reads as one.
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_entry_the_proxy_appended_counts() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            last_forwarded_for(&headers(&["1.2.3.4, 203.0.113.7"])),
            ip("203.0.113.7")
        );
        assert_eq!(
            last_forwarded_for(&headers(&["1.2.3.4", "198.51.100.2"])),
            ip("198.51.100.2")
        );
        assert_eq!(
            last_forwarded_for(&headers(&["2001:db8::1"])),
            ip("2001:db8::1")
        );
        assert_eq!(
            last_forwarded_for(&headers(&["[2001:db8::1]:4711"])),
            ip("2001:db8::1")
        );
        assert_eq!(last_forwarded_for(&headers(&["1.2.3.4, unknown"])), None);
        assert_eq!(last_forwarded_for(&HeaderMap::new()), None);
    }
}
