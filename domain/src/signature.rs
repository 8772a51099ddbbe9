//! `X-Twilio-Signature`: how Twilio signs every webhook it sends, computed and checked exactly as
//! Twilio's own helper libraries do (twilio-python `RequestValidator`, twilio-node `validateRequest`).
//!
//! The string Twilio signs is the full URL it requested, followed, for a form post, by every
//! parameter as `name + value`: names sorted, each name's values sorted, a repeated identical
//! `(name, value)` pair counted once (twilio-python sorts `set(values)`). Sorting is by bytes, which
//! for UTF-8 is the code point order Python uses. The signature is
//! `base64(HMAC-SHA1(key = auth token, message = that string))`.
//!
//! Twilio is not consistent about ports, so, like the helper libraries, a signature is accepted if
//! it matches the URL as given, or the URL with its port removed when it has one, or with the
//! scheme's default port (443 for https, 80 for http) added when it has none.
//!
//! JSON bodies are signed differently: the URL carries `bodySHA256=<hex(sha256(body))>` and the
//! signature covers the URL alone; [`validate_json`] checks both.
//!
//! Behind a proxy the URL Twilio requested is not the one the server sees: callers pass the URL
//! built from the configured public base URL, never one rebuilt from request headers.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

type HmacSha1 = Hmac<Sha1>;

/// The HTTP header Twilio puts the signature in.
pub const HEADER: &str = "X-Twilio-Signature";

/// The query parameter that carries the SHA-256 of a JSON body.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

/// Length of an HMAC-SHA1 in bytes.
const MAC_LEN: usize = 20;
/// Length of its base64 form (with one `=` of padding).
const SIGNATURE_LEN: usize = 28;
/// Requests with at most this many parameters are sorted on the stack (status callbacks have
/// about a dozen).
const INLINE_PARAMS: usize = 32;

/// A Twilio auth token (or API key secret): the HMAC key webhooks are signed with.
///
/// `Debug` prints `[redacted]` and there is no `Display`, so it cannot end up in a log by accident.
/// The HMAC key schedule is computed once here, which saves two SHA-1 blocks per validation.
/// (Not zeroized on drop: `domain` has no `zeroize`; the point of the type is keeping the secret out
/// of logs and error messages.)
#[derive(Clone)]
pub struct AuthToken {
    secret: String,
    keyed: HmacSha1,
}

/// Why a string is not usable as an auth token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthTokenError {
    #[error("the auth token is empty")]
    Empty,
    /// Usually a trailing newline read from a secrets file: Twilio tokens never contain white space.
    #[error("the auth token contains white space or control characters (a trailing newline?)")]
    Whitespace,
}

impl AuthToken {
    /// Wraps a token. Rejects an empty one and one with white space or control characters.
    pub fn new(secret: impl Into<String>) -> Result<Self, AuthTokenError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(AuthTokenError::Empty);
        }
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AuthTokenError::Whitespace);
        }
        let keyed = match <HmacSha1 as hmac::Mac>::new_from_slice(secret.as_bytes()) {
            Ok(mac) => mac,
            // HMAC hashes or pads keys of any length; `new_from_slice` only fails for fixed-key MACs.
            Err(_) => unreachable!("HMAC-SHA1 accepts keys of any length"),
        };
        Ok(Self { secret, keyed })
    }

    /// The token itself, for HTTP Basic authentication against Twilio's API.
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken([redacted])")
    }
}

/// Why a webhook's signature was not accepted.
///
/// No variant carries the URL, the parameters or the token: the message is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not 28 characters, so it cannot be base64 of a 20-byte HMAC-SHA1.
    #[error(
        "X-Twilio-Signature must be 28 base64 characters (an HMAC-SHA1; 44 for a SharedKey's HMAC-SHA256), got {len} characters"
    )]
    WrongLength { len: usize },
    /// The header has the right length but is not canonical standard base64.
    #[error("X-Twilio-Signature is not valid base64")]
    NotBase64,
    /// The URL to check against is not an absolute `http`/`https` URL (a configuration error).
    #[error("cannot check a signature against this URL: {reason}")]
    InvalidUrl { reason: &'static str },
    /// A JSON webhook whose URL has no `bodySHA256` query parameter.
    #[error("the URL has no bodySHA256 query parameter, which JSON webhooks must carry")]
    MissingBodyHash,
    /// The signature matches but the body is not the one Twilio hashed.
    #[error("the body's SHA-256 does not match the URL's bodySHA256")]
    BodyHashMismatch,
    /// Well-formed, but not the signature of this URL and these parameters with this token.
    #[error("X-Twilio-Signature does not match the request")]
    Mismatch,
}

/// The signature Twilio would send for a form post of `params` to `url` (the URL exactly as given,
/// no port variants). Used by tests and fakes that play Twilio.
pub fn sign<K, V>(token: &AuthToken, url: &str, params: &[(K, V)]) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mac = with_sorted(params, |sorted| compute(token, &[url], sorted));
    BASE64.encode(mac)
}

/// The signature Twilio would send for a JSON webhook to `url`, which must already carry
/// `bodySHA256=` + [`body_sha256_hex`] of the body: the URL alone is signed.
pub fn sign_url(token: &AuthToken, url: &str) -> String {
    BASE64.encode(compute(token, &[url], &[]))
}

/// `hex(sha256(body))` in lower case, the value Twilio puts in the `bodySHA256` query parameter.
pub fn body_sha256_hex(body: &[u8]) -> String {
    let hex = sha256_hex(body);
    // Only ASCII hex digits were written.
    hex.iter().map(|&b| char::from(b)).collect()
}

/// Checks the signature of a form-encoded webhook (status callbacks, inbound messages).
///
/// `url` is the full URL Twilio requested (public base URL + path + query), `params` every
/// decoded form field received, repeated names included, in any order, and `signature` the
/// `X-Twilio-Signature` header value.
pub fn validate_form<K, V>(
    token: &AuthToken,
    url: &str,
    params: &[(K, V)],
    signature: &str,
) -> Result<(), SignatureError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let expected = decode_signature(signature)?;
    let url = SplitUrl::parse(url)?;
    let matched = with_sorted(params, |sorted| {
        matches_any_variant(token, &url, sorted, &expected)
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Checks the signature of a JSON webhook: the URL (which must carry `bodySHA256`) is signed
/// alone, and `hex(sha256(body))` must equal that parameter. `body` is the raw request body.
pub fn validate_json(
    token: &AuthToken,
    url: &str,
    body: &[u8],
    signature: &str,
) -> Result<(), SignatureError> {
    let expected = decode_signature(signature)?;
    let split = SplitUrl::parse(url)?;
    let claimed =
        query_param(split.query(), BODY_SHA256_PARAM).ok_or(SignatureError::MissingBodyHash)?;
    if !matches_any_variant(token, &split, &[], &expected) {
        return Err(SignatureError::Mismatch);
    }
    if bool::from(sha256_hex(body).as_slice().ct_eq(claimed.as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::BodyHashMismatch)
    }
}

/// Decodes the header into the 20 MAC bytes, rejecting anything that is not canonical base64 of
/// exactly 20 bytes.
fn decode_signature(signature: &str) -> Result<[u8; MAC_LEN], SignatureError> {
    if signature.len() != SIGNATURE_LEN {
        return Err(SignatureError::WrongLength {
            len: signature.chars().count(),
        });
    }
    // base64 sizes its check on a conservative estimate (21 bytes for 28 characters).
    let mut buf = [0u8; MAC_LEN + 1];
    match BASE64.decode_slice(signature, &mut buf) {
        Ok(MAC_LEN) => {
            let mut mac = [0u8; MAC_LEN];
            mac.copy_from_slice(&buf[..MAC_LEN]);
            Ok(mac)
        }
        _ => Err(SignatureError::NotBase64),
    }
}

/// True when `expected` is the MAC of one of the URL's accepted variants.
///
/// The URL as given is tried first and a match there returns at once: the timing then tells only
/// which variant matched, which the sender already knows. Each comparison is constant-time.
fn matches_any_variant(
    token: &AuthToken,
    url: &SplitUrl<'_>,
    sorted: &[(&str, &str)],
    expected: &[u8; MAC_LEN],
) -> bool {
    any_variant(url, |pieces| compute(token, pieces, sorted).ct_eq(expected))
}

/// Whether `matches` holds for the URL as given or for its port variant (the port removed, or
/// the scheme's default port added), as Twilio's libraries accept.
fn any_variant(url: &SplitUrl<'_>, matches: impl Fn(&[&str]) -> Choice) -> bool {
    if bool::from(matches(&[url.whole])) {
        return true;
    }
    let variant: Choice = match url.port {
        // Port removed: `scheme://userinfo@host` + `/path?query#fragment`.
        Some(_) => matches(&[url.before_port, url.after_port]),
        // Default port added.
        None => {
            let port = if url.https { ":443" } else { ":80" };
            matches(&[url.before_port, port, url.after_port])
        }
    };
    bool::from(variant)
}

/// A webhook SharedKey's secret: the HMAC-SHA256 key of webhooks that carry
/// `X-Twilio-Webhooks-Signature-Settings: key=…,algorithm=HMAC_SHA256`. `Debug` prints
/// `[redacted]`.
#[derive(Clone)]
pub struct SharedKey {
    keyed: HmacSha256,
}

type HmacSha256 = Hmac<Sha256>;

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedKey([redacted])")
    }
}

impl SharedKey {
    /// Wraps a SharedKey secret, with the same rules as [`AuthToken::new`].
    pub fn new(secret: &str) -> Result<Self, AuthTokenError> {
        if secret.is_empty() {
            return Err(AuthTokenError::Empty);
        }
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AuthTokenError::Whitespace);
        }
        match <HmacSha256 as hmac::Mac>::new_from_slice(secret.as_bytes()) {
            Ok(keyed) => Ok(SharedKey { keyed }),
            Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
        }
    }

    fn mac(&self, url_pieces: &[&str], sorted: &[(&str, &str)]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        feed(url_pieces, sorted, |bytes| {
            hmac::Mac::update(&mut mac, bytes)
        });
        hmac::Mac::finalize(mac).into_bytes().into()
    }
}

/// What `X-Twilio-Webhooks-Signature-Settings` says signed a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedWith<'a> {
    /// No such header, or one without `algorithm=`: the Auth Token's HMAC-SHA1.
    AuthToken,
    /// `algorithm=HMAC_SHA256`: the SharedKey named `key` (if given).
    SharedKey { key: Option<&'a str> },
    /// An algorithm smsdesk does not know: such a request must fail validation.
    Unknown,
}

/// Reads `X-Twilio-Webhooks-Signature-Settings` (`key=<sid>,algorithm=HMAC_SHA256`).
pub fn signed_with(settings: Option<&str>) -> SignedWith<'_> {
    let Some(settings) = settings else {
        return SignedWith::AuthToken;
    };
    let field = |name: &str| {
        settings
            .split(',')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim())
    };
    match field("algorithm") {
        None => SignedWith::AuthToken,
        Some("HMAC_SHA256") => SignedWith::SharedKey { key: field("key") },
        Some(_) => SignedWith::Unknown,
    }
}

/// The HMAC-SHA256 signature Twilio would send for a form post signed with a SharedKey.
pub fn sign_sha256<K, V>(key: &SharedKey, url: &str, params: &[(K, V)]) -> String
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    BASE64.encode(with_sorted(params, |sorted| key.mac(&[url], sorted)))
}

/// Checks a form-encoded webhook signed with a SharedKey (HMAC-SHA256): the same string as
/// [`validate_form`], the same port variants, a 32-byte MAC in 44 base64 characters.
pub fn validate_form_sha256<K, V>(
    key: &SharedKey,
    url: &str,
    params: &[(K, V)],
    signature: &str,
) -> Result<(), SignatureError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    if signature.len() != 44 {
        return Err(SignatureError::WrongLength {
            len: signature.chars().count(),
        });
    }
    let mut buf = [0u8; 33];
    let expected: [u8; 32] = match BASE64.decode_slice(signature, &mut buf) {
        Ok(32) => buf[..32].try_into().expect("32 bytes"),
        _ => return Err(SignatureError::NotBase64),
    };
    let url = SplitUrl::parse(url)?;
    let matched = with_sorted(params, |sorted| {
        any_variant(&url, |pieces| key.mac(pieces, sorted).ct_eq(&expected))
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// HMAC-SHA1 of the URL pieces (concatenated) followed by `name + value` for each sorted pair,
/// skipping a pair equal to the one before it.
fn compute(token: &AuthToken, url_pieces: &[&str], sorted: &[(&str, &str)]) -> [u8; MAC_LEN] {
    let mut mac = token.keyed.clone();
    feed(url_pieces, sorted, |bytes| mac.update(bytes));
    mac.finalize().into_bytes().into()
}

/// Streams the string to sign into `sink` (one code path for the MAC and for the tests that
/// compare the string itself with Twilio's published one).
fn feed(url_pieces: &[&str], sorted: &[(&str, &str)], mut sink: impl FnMut(&[u8])) {
    for piece in url_pieces {
        sink(piece.as_bytes());
    }
    let mut previous: Option<(&str, &str)> = None;
    for &(name, value) in sorted {
        if previous == Some((name, value)) {
            continue;
        }
        sink(name.as_bytes());
        sink(value.as_bytes());
        previous = Some((name, value));
    }
}

/// Calls `f` with borrowed `(name, value)` pairs sorted by name then value (bytes), without
/// copying any string and, for up to [`INLINE_PARAMS`] pairs, without allocating.
fn with_sorted<K, V, R>(params: &[(K, V)], f: impl FnOnce(&[(&str, &str)]) -> R) -> R
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    fn pair<K: AsRef<str>, V: AsRef<str>>((k, v): &(K, V)) -> (&str, &str) {
        (k.as_ref(), v.as_ref())
    }
    if params.len() <= INLINE_PARAMS {
        let mut buf: [(&str, &str); INLINE_PARAMS] = [("", ""); INLINE_PARAMS];
        for (slot, p) in buf.iter_mut().zip(params) {
            *slot = pair(p);
        }
        let sorted = &mut buf[..params.len()];
        sorted.sort_unstable();
        f(sorted)
    } else {
        let mut sorted: Vec<(&str, &str)> = params.iter().map(pair).collect();
        sorted.sort_unstable();
        f(&sorted)
    }
}

fn sha256_hex(body: &[u8]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(body);
    let mut hex = [0u8; 64];
    for (i, byte) in digest.iter().enumerate() {
        hex[2 * i] = DIGITS[usize::from(byte >> 4)];
        hex[2 * i + 1] = DIGITS[usize::from(byte & 0x0f)];
    }
    hex
}

/// The first value of `name` in a query string, undecoded (hex digests need no decoding). Like
/// Python's `parse_qs`, a parameter with an empty value counts as absent.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value)
}

/// An absolute URL cut around its port: just enough parsing to add or remove the port.
///
/// `scheme://[userinfo@]host[:port][/path][?query][#fragment]`, where `host` may be a bracketed
/// IPv6 literal. Everything else is kept byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SplitUrl<'a> {
    whole: &'a str,
    /// `scheme://[userinfo@]host`.
    before_port: &'a str,
    /// The port's digits (possibly empty, for `host:`), without the colon.
    port: Option<&'a str>,
    /// `[/path][?query][#fragment]`.
    after_port: &'a str,
    https: bool,
}

impl<'a> SplitUrl<'a> {
    fn parse(url: &'a str) -> Result<Self, SignatureError> {
        let invalid = |reason| SignatureError::InvalidUrl { reason };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or(invalid("no scheme (expected http:// or https://)"))?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return Err(invalid("the scheme is not http or https"));
        };
        let authority_start = scheme.len() + 3;
        let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        // The host starts after the last `@`: WHATWG's rule, and `@` cannot appear in a host.
        let host_start = authority.rfind('@').map_or(0, |at| at + 1);
        let host_port = &authority[host_start..];
        let port_colon = if host_port.starts_with('[') {
            let close = host_port
                .find(']')
                .ok_or(invalid("an IPv6 host has no closing bracket"))?;
            match &host_port[close + 1..] {
                "" => None,
                after if after.starts_with(':') => Some(close + 1),
                _ => return Err(invalid("unexpected characters after an IPv6 host")),
            }
        } else {
            let colon = host_port.find(':');
            if let Some(colon) = colon
                && host_port[colon + 1..].contains(':')
            {
                return Err(invalid("an IPv6 host must be in brackets"));
            }
            colon
        };
        let host_len = port_colon.unwrap_or(host_port.len());
        if host_len == 0 {
            return Err(invalid("the host is empty"));
        }
        let port = port_colon.map(|colon| &host_port[colon + 1..]);
        if let Some(port) = port {
            if !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("the port is not a number"));
            }
            if port.len() > 5 || port.parse::<u32>().is_ok_and(|p| p > 65_535) {
                return Err(invalid("the port is larger than 65535"));
            }
        }
        let before_port_end = authority_start + host_start + host_len;
        let after_port_start = authority_start + authority_len;
        Ok(Self {
            whole: url,
            before_port: &url[..before_port_end],
            port,
            after_port: &url[after_port_start..],
            https,
        })
    }

    /// The query string, without `?` and fragment.
    fn query(&self) -> &'a str {
        let rest = self.after_port;
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        rest.split_once('?').map_or("", |(_, query)| query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The official vectors, identical in the python, node and ruby helper libraries' tests.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const PARAMS: &[(&str, &str)] = &[
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ];
    const STRING_TO_SIGN: &str = "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212";
    const SIGNATURE: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    const JSON_BODY: &str = r#"{"property": "value", "boolean": true}"#;
    const JSON_BODY_SHA256: &str =
        "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const JSON_SIGNATURE: &str = "a9nBmqA0ju/hNViExpshrM61xv4=";

    fn token() -> AuthToken {
        AuthToken::new(TOKEN).expect("the test token is valid")
    }

    fn string_to_sign(url: &str, params: &[(&str, &str)]) -> String {
        let mut bytes = Vec::new();
        with_sorted(params, |sorted| {
            feed(&[url], sorted, |b| bytes.extend_from_slice(b))
        });
        String::from_utf8(bytes).expect("built from &str pieces")
    }

    fn json_url() -> String {
        format!("{URL}&bodySHA256={JSON_BODY_SHA256}")
    }

    #[test]
    fn official_vector_string_to_sign() {
        assert_eq!(string_to_sign(URL, PARAMS), STRING_TO_SIGN);
    }

    #[test]
    fn official_vector_string_to_sign_does_not_depend_on_param_order() {
        let mut reversed = PARAMS.to_vec();
        reversed.reverse();
        assert_eq!(string_to_sign(URL, &reversed), STRING_TO_SIGN);
    }

    #[test]
    fn official_vector_signature() {
        assert_eq!(sign(&token(), URL, PARAMS), SIGNATURE);
        assert_eq!(validate_form(&token(), URL, PARAMS, SIGNATURE), Ok(()));
    }

    #[test]
    fn official_vector_https_with_port_validates_with_port_removed() {
        let url = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(validate_form(&token(), url, PARAMS, SIGNATURE), Ok(()));
    }

    #[test]
    fn official_vector_http_with_port() {
        let url = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        let signature = "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=";
        assert_eq!(sign(&token(), url, PARAMS), signature);
        assert_eq!(validate_form(&token(), url, PARAMS, signature), Ok(()));
    }

    #[test]
    fn official_vector_multi_valued_params() {
        let params = [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ];
        let signature = "IK+Dwps556ElfBT0I3Rgjkr1wJU=";
        assert_eq!(
            string_to_sign(URL, &params),
            format!("{URL}Digits1234Digits5678SidCA123SidAccountAC123")
        );
        assert_eq!(sign(&token(), URL, &params), signature);
        assert_eq!(validate_form(&token(), URL, &params, signature), Ok(()));
    }

    #[test]
    fn official_vector_json_body_hash() {
        assert_eq!(body_sha256_hex(JSON_BODY.as_bytes()), JSON_BODY_SHA256);
    }

    #[test]
    fn official_vector_json_body() {
        let url = json_url();
        assert_eq!(sign_url(&token(), &url), JSON_SIGNATURE);
        assert_eq!(
            validate_json(&token(), &url, JSON_BODY.as_bytes(), JSON_SIGNATURE),
            Ok(())
        );
    }

    #[test]
    fn json_body_with_port_validates_with_port_removed() {
        let url = format!(
            "https://mycompany.com:1234/myapp.php?foo=1&bar=2&bodySHA256={JSON_BODY_SHA256}"
        );
        assert_eq!(
            validate_json(&token(), &url, JSON_BODY.as_bytes(), JSON_SIGNATURE),
            Ok(())
        );
    }

    #[test]
    fn json_body_that_was_changed_is_rejected() {
        let body = br#"{"property": "value", "boolean": false}"#;
        assert_eq!(
            validate_json(&token(), &json_url(), body, JSON_SIGNATURE),
            Err(SignatureError::BodyHashMismatch)
        );
    }

    #[test]
    fn json_url_without_body_hash_is_rejected() {
        assert_eq!(
            validate_json(&token(), URL, JSON_BODY.as_bytes(), JSON_SIGNATURE),
            Err(SignatureError::MissingBodyHash)
        );
        let empty = format!("{URL}&bodySHA256=");
        assert_eq!(
            validate_json(&token(), &empty, JSON_BODY.as_bytes(), JSON_SIGNATURE),
            Err(SignatureError::MissingBodyHash)
        );
    }

    #[test]
    fn json_with_wrong_signature_is_a_mismatch() {
        assert_eq!(
            validate_json(&token(), &json_url(), JSON_BODY.as_bytes(), SIGNATURE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn json_body_hash_is_case_sensitive_like_twilio_python() {
        let url = format!("{URL}&bodySHA256={}", JSON_BODY_SHA256.to_uppercase());
        let signature = sign_url(&token(), &url);
        assert_eq!(
            validate_json(&token(), &url, JSON_BODY.as_bytes(), &signature),
            Err(SignatureError::BodyHashMismatch)
        );
    }

    #[test]
    fn url_without_port_validates_a_signature_made_with_the_default_port() {
        let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        let signature = sign(&token(), with_port, PARAMS);
        assert_eq!(validate_form(&token(), URL, PARAMS, &signature), Ok(()));
        let http = "http://mycompany.com/myapp.php";
        let signature = sign(&token(), "http://mycompany.com:80/myapp.php", PARAMS);
        assert_eq!(validate_form(&token(), http, PARAMS, &signature), Ok(()));
    }

    #[test]
    fn the_other_schemes_default_port_is_not_accepted() {
        let signature = sign(&token(), "https://mycompany.com:80/myapp.php", PARAMS);
        assert_eq!(
            validate_form(
                &token(),
                "https://mycompany.com/myapp.php",
                PARAMS,
                &signature
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_different_port_is_not_accepted() {
        let signature = sign(&token(), "https://mycompany.com:8443/myapp.php", PARAMS);
        assert_eq!(
            validate_form(
                &token(),
                "https://mycompany.com:1234/myapp.php",
                PARAMS,
                &signature
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn wrong_token_is_a_mismatch() {
        let other = AuthToken::new("54321").expect("valid");
        assert_eq!(
            validate_form(&other, URL, PARAMS, SIGNATURE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tampered_param_is_a_mismatch() {
        let mut params = PARAMS.to_vec();
        params[2] = ("Digits", "1235");
        assert_eq!(
            validate_form(&token(), URL, &params, SIGNATURE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn extra_param_is_a_mismatch() {
        let mut params = PARAMS.to_vec();
        params.push(("Extra", ""));
        assert_eq!(
            validate_form(&token(), URL, &params, SIGNATURE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn owned_string_pairs_are_accepted() {
        let params: Vec<(String, String)> = PARAMS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(validate_form(&token(), URL, &params, SIGNATURE), Ok(()));
    }

    #[test]
    fn many_params_take_the_allocating_path_and_agree() {
        let names: Vec<String> = (0..INLINE_PARAMS + 5).map(|i| format!("P{i:03}")).collect();
        let params: Vec<(&str, &str)> = names.iter().rev().map(|n| (n.as_str(), "v")).collect();
        let signature = sign(&token(), URL, &params);
        let expected: String = names.iter().map(|n| format!("{n}v")).collect();
        assert_eq!(string_to_sign(URL, &params), format!("{URL}{expected}"));
        assert_eq!(validate_form(&token(), URL, &params, &signature), Ok(()));
    }

    #[test]
    fn params_sort_by_bytes_not_case_insensitively() {
        let params = [("b", "1"), ("B", "2"), ("a", "é"), ("a", "z")];
        // Upper case before lower case; `z` (0x7A) before `é` (0xC3 0xA9).
        assert_eq!(string_to_sign("u", &params), "uB2azaéb1");
    }

    #[test]
    fn empty_params_sign_the_url_alone() {
        let none: &[(&str, &str)] = &[];
        assert_eq!(sign(&token(), URL, none), sign_url(&token(), URL));
    }

    #[test]
    fn malformed_signatures_are_rejected_with_a_reason() {
        let t = token();
        assert_eq!(
            validate_form(&t, URL, PARAMS, ""),
            Err(SignatureError::WrongLength { len: 0 })
        );
        assert_eq!(
            validate_form(&t, URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8"),
            Err(SignatureError::WrongLength { len: 27 })
        );
        // A SHA-256 signature is 44 characters.
        assert_eq!(
            validate_form(&t, URL, PARAMS, &"A".repeat(43).add_pad()),
            Err(SignatureError::WrongLength { len: 44 })
        );
        assert_eq!(
            validate_form(&t, URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8!"),
            Err(SignatureError::NotBase64)
        );
        // URL-safe alphabet is not what Twilio sends.
        assert_eq!(
            validate_form(&t, URL, PARAMS, "RSOYDt4T1cUTdK1PDd93_VVr8B8="),
            Err(SignatureError::NotBase64)
        );
        // Non-canonical trailing bits (`9` instead of `8` before the padding).
        assert_eq!(
            validate_form(&t, URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B9="),
            Err(SignatureError::NotBase64)
        );
        // 28 characters that decode to 21 bytes.
        assert_eq!(
            validate_form(&t, URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8A"),
            Err(SignatureError::NotBase64)
        );
        // Surrounding white space is not trimmed here (HTTP libraries already trim header values).
        assert_eq!(
            validate_form(&t, URL, PARAMS, " RSOYDt4T1cUTdK1PDd93/VVr8B8"),
            Err(SignatureError::NotBase64)
        );
    }

    trait AddPad {
        fn add_pad(self) -> String;
    }
    impl AddPad for String {
        fn add_pad(mut self) -> String {
            self.push('=');
            self
        }
    }

    #[test]
    fn auth_token_debug_is_redacted() {
        let t = AuthToken::new("supersecret0123").expect("valid");
        let shown = format!("{t:?}");
        assert_eq!(shown, "AuthToken([redacted])");
        assert!(!shown.contains("supersecret"));
        assert_eq!(t.expose_secret(), "supersecret0123");
    }

    #[test]
    fn auth_token_rejects_empty_and_white_space() {
        assert_eq!(AuthToken::new("").err(), Some(AuthTokenError::Empty));
        assert_eq!(
            AuthToken::new("abc\n").err(),
            Some(AuthTokenError::Whitespace)
        );
        assert_eq!(
            AuthToken::new("a bc").err(),
            Some(AuthTokenError::Whitespace)
        );
    }

    fn split(url: &str) -> (String, Option<String>, String, bool) {
        let s = SplitUrl::parse(url).expect("valid URL");
        (
            s.before_port.to_owned(),
            s.port.map(str::to_owned),
            s.after_port.to_owned(),
            s.https,
        )
    }

    fn parts(
        before: &str,
        port: Option<&str>,
        after: &str,
        https: bool,
    ) -> (String, Option<String>, String, bool) {
        (
            before.to_owned(),
            port.map(str::to_owned),
            after.to_owned(),
            https,
        )
    }

    #[test]
    fn url_split_plain() {
        assert_eq!(
            split("https://mycompany.com/myapp.php?foo=1"),
            parts("https://mycompany.com", None, "/myapp.php?foo=1", true)
        );
        assert_eq!(
            split("http://mycompany.com:8080/a#frag"),
            parts("http://mycompany.com", Some("8080"), "/a#frag", false)
        );
    }

    #[test]
    fn url_split_ipv6_hosts() {
        assert_eq!(
            split("https://[2001:db8::1]:8443/hook"),
            parts("https://[2001:db8::1]", Some("8443"), "/hook", true)
        );
        assert_eq!(
            split("http://[::1]/hook"),
            parts("http://[::1]", None, "/hook", false)
        );
        assert_eq!(
            split("http://[::1]"),
            parts("http://[::1]", None, "", false)
        );
    }

    #[test]
    fn url_split_userinfo() {
        assert_eq!(
            split("https://user:pa:ss@host.example:444/p"),
            parts("https://user:pa:ss@host.example", Some("444"), "/p", true)
        );
        assert_eq!(
            split("https://user@[::1]/p"),
            parts("https://user@[::1]", None, "/p", true)
        );
        // A `@` in the password (unencoded): the host starts after the last one.
        assert_eq!(
            split("https://u:p@ss@host/p"),
            parts("https://u:p@ss@host", None, "/p", true)
        );
    }

    #[test]
    fn url_split_no_path_and_query_only() {
        assert_eq!(split("https://host"), parts("https://host", None, "", true));
        assert_eq!(
            split("https://host:8443"),
            parts("https://host", Some("8443"), "", true)
        );
        assert_eq!(
            split("https://host?a=1&b=2"),
            parts("https://host", None, "?a=1&b=2", true)
        );
        assert_eq!(
            split("https://host:1?a=1:2"),
            parts("https://host", Some("1"), "?a=1:2", true)
        );
        assert_eq!(
            split("https://host#x:1"),
            parts("https://host", None, "#x:1", true)
        );
        assert_eq!(split("HTTPS://host"), parts("HTTPS://host", None, "", true));
        assert_eq!(
            split("https://host:/p"),
            parts("https://host", Some(""), "/p", true)
        );
    }

    #[test]
    fn url_query_is_found() {
        let q = |u: &'static str| SplitUrl::parse(u).expect("valid").query();
        assert_eq!(q("https://h/p?a=1&b=2#f"), "a=1&b=2");
        assert_eq!(q("https://h?a=1"), "a=1");
        assert_eq!(q("https://h/p#f?a=1"), "");
        assert_eq!(q("https://h/p"), "");
    }

    #[test]
    fn url_rejects() {
        let reject = |u: &str| matches!(SplitUrl::parse(u), Err(SignatureError::InvalidUrl { .. }));
        assert!(reject("mycompany.com/myapp.php"));
        assert!(reject("/myapp.php"));
        assert!(reject("ftp://host/p"));
        assert!(reject("https:///p"));
        assert!(reject("https://user@/p"));
        assert!(reject("https://:443/p"));
        assert!(reject("https://host:12a/p"));
        assert!(reject("https://host:65536/p"));
        assert!(reject("https://host:000443/p"));
        assert!(reject("https://2001:db8::1/p"));
        assert!(reject("https://[::1/p"));
        assert!(reject("https://[::1]x/p"));
        assert!(!reject("https://host:65535/p"));
    }

    #[test]
    fn port_variants_work_for_ipv6_and_userinfo() {
        let signed = "https://user@[2001:db8::1]/hook?x=1";
        let signature = sign(&token(), signed, PARAMS);
        for seen in [
            "https://user@[2001:db8::1]:443/hook?x=1",
            "https://user@[2001:db8::1]:8443/hook?x=1",
            signed,
        ] {
            assert_eq!(
                validate_form(&token(), seen, PARAMS, &signature),
                Ok(()),
                "{seen}"
            );
        }
        let signed_with_port = "https://user@[2001:db8::1]:443/hook?x=1";
        let signature = sign(&token(), signed_with_port, PARAMS);
        assert_eq!(validate_form(&token(), signed, PARAMS, &signature), Ok(()));
    }

    #[test]
    fn url_with_no_path_gets_the_port_before_the_query() {
        let signature = sign(&token(), "https://host:443?a=1", PARAMS);
        assert_eq!(
            validate_form(&token(), "https://host?a=1", PARAMS, &signature),
            Ok(())
        );
    }

    #[test]
    fn invalid_url_is_reported_not_mismatched() {
        assert!(matches!(
            validate_form(&token(), "mycompany.com/x", PARAMS, SIGNATURE),
            Err(SignatureError::InvalidUrl { .. })
        ));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn param() -> impl Strategy<Value = (String, String)> {
            ("[A-Za-z]{1,3}", "[ -~é€😀]{0,4}")
        }

        proptest! {
            #[test]
            fn signed_requests_validate_in_any_order(
                mut params in proptest::collection::vec(param(), 0..40),
                seed in any::<u64>(),
            ) {
                let t = token();
                let signature = sign(&t, URL, &params);
                // Any permutation, and any duplicate of an existing pair, keeps the signature.
                let n = params.len();
                if n > 1 {
                    let k = (seed % n as u64) as usize;
                    params.rotate_left(k);
                    params.swap(0, n - 1);
                    params.push(params[k].clone());
                }
                prop_assert_eq!(validate_form(&t, URL, &params, &signature), Ok(()));
            }

            #[test]
            fn string_to_sign_matches_the_python_reference_algorithm(
                params in proptest::collection::vec(param(), 0..20),
            ) {
                // twilio-python: for name in sorted(set(names)): for value in sorted(set(values)).
                let mut names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
                names.sort();
                names.dedup();
                let mut expected = String::from(URL);
                for name in names {
                    let mut values: Vec<&str> = params
                        .iter()
                        .filter(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                        .collect();
                    values.sort();
                    values.dedup();
                    for value in values {
                        expected.push_str(name);
                        expected.push_str(value);
                    }
                }
                let borrowed: Vec<(&str, &str)> =
                    params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                prop_assert_eq!(string_to_sign(URL, &borrowed), expected);
            }

            #[test]
            fn any_single_character_change_to_the_signature_is_rejected(
                index in 0usize..27,
                replacement in "[A-Za-z0-9+/]",
            ) {
                let mut sig: Vec<char> = SIGNATURE.chars().collect();
                let new = replacement.chars().next().expect("one char");
                prop_assume!(sig[index] != new);
                sig[index] = new;
                let sig: String = sig.into_iter().collect();
                let result = validate_form(&token(), URL, PARAMS, &sig);
                prop_assert!(
                    result == Err(SignatureError::Mismatch) || result == Err(SignatureError::NotBase64)
                );
            }

            #[test]
            fn url_split_reassembles(
                https in any::<bool>(),
                userinfo in proptest::option::of("[a-z]{1,5}(:[a-z]{0,5})?"),
                host in prop_oneof!["[a-z]{1,8}(\\.[a-z]{2,3})?", "\\[[0-9a-f:]{2,10}\\]"],
                port in proptest::option::of(0u32..=65535),
                tail in prop_oneof!["", "/[a-z/]{0,6}", "\\?[a-z=&:]{0,6}", "#[a-z:]{0,4}"],
            ) {
                let scheme = if https { "https" } else { "http" };
                let user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
                let port_text = port.map(|p| format!(":{p}")).unwrap_or_default();
                let url = format!("{scheme}://{user}{host}{port_text}{tail}");
                let s = SplitUrl::parse(&url).expect("generated URLs are valid");
                prop_assert_eq!(s.before_port, format!("{scheme}://{user}{host}"));
                prop_assert_eq!(s.port.map(str::to_owned), port.map(|p| p.to_string()));
                prop_assert_eq!(s.after_port, tail.as_str());
                prop_assert_eq!(s.https, https);
            }
        }
    }
}

#[cfg(test)]
mod shared_key_tests {
    use super::*;

    const URL: &str = "https://sms.example.com/webhooks/twilio/inbound";
    const PARAMS: [(&str, &str); 4] = [
        ("MessageSid", "SM123"),
        ("Body", "STOP"),
        ("From", "+14155552671"),
        ("To", "+15005550006"),
    ];
    /// twilio-python 9.13: `RequestValidator("shared-key-secret-0123").compute_signature(URL,
    /// PARAMS, algorithm=HMAC_SHA256)`.
    const TWILIO_PYTHON: &str = "APo9G1IChTRRSFkPxeWwrPpzyyNWKJj+plBOiBtdoYM=";

    #[test]
    fn a_shared_key_signature_matches_twilio_python_and_its_port_variants() {
        let key = SharedKey::new("shared-key-secret-0123").expect("key");
        assert_eq!(sign_sha256(&key, URL, &PARAMS), TWILIO_PYTHON);
        assert_eq!(
            validate_form_sha256(&key, URL, &PARAMS, TWILIO_PYTHON),
            Ok(())
        );
        let with_port = "https://sms.example.com:443/webhooks/twilio/inbound";
        assert_eq!(
            validate_form_sha256(&key, with_port, &PARAMS, TWILIO_PYTHON),
            Ok(())
        );
        let other = SharedKey::new("another-key").expect("key");
        assert_eq!(
            validate_form_sha256(&other, URL, &PARAMS, TWILIO_PYTHON),
            Err(SignatureError::Mismatch)
        );
        // The SHA-1 signature of the same request is not a SHA-256 one, and the reverse.
        let token = AuthToken::new("shared-key-secret-0123").expect("token");
        let sha1 = sign(&token, URL, &PARAMS);
        assert_eq!(
            validate_form_sha256(&key, URL, &PARAMS, &sha1),
            Err(SignatureError::WrongLength { len: 28 })
        );
        assert_eq!(
            validate_form(&token, URL, &PARAMS, TWILIO_PYTHON),
            Err(SignatureError::WrongLength { len: 44 })
        );
        assert_eq!(format!("{key:?}"), "SharedKey([redacted])");
    }

    #[test]
    fn the_settings_header_names_the_algorithm() {
        assert_eq!(signed_with(None), SignedWith::AuthToken);
        assert_eq!(signed_with(Some("key=KS1")), SignedWith::AuthToken);
        assert_eq!(
            signed_with(Some("key=KS1,algorithm=HMAC_SHA256")),
            SignedWith::SharedKey { key: Some("KS1") }
        );
        assert_eq!(
            signed_with(Some(" algorithm=HMAC_SHA256 ")),
            SignedWith::SharedKey { key: None }
        );
        assert_eq!(
            signed_with(Some("key=KS1,algorithm=HMAC_SHA512")),
            SignedWith::Unknown
        );
        assert_eq!(
            signed_with(Some("algorithm=hmac_sha256")),
            SignedWith::Unknown
        );
    }
}
