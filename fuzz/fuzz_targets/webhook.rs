//! Twilio's webhooks as they arrive: any form body and any signature header are read without a
//! panic; what is signed with the auth token (or a SharedKey) validates, and nothing else
//! does (a changed field or URL fails); a JSON body's hash is checked the same way.
#![no_main]

use domain::signature::{
    AuthToken, SharedKey, sign, sign_sha256, validate_form, validate_form_sha256, validate_json,
};
use libfuzzer_sys::fuzz_target;

const URL: &str = "https://sms.example.com/webhooks/twilio/status?from=fuzz";

fuzz_target!(|data: &[u8]| {
    let token = AuthToken::new("12345678901234567890123456789012").expect("a token");
    let shared = SharedKey::new("fuzz-shared-key-0123456789abcdef").expect("a key");
    // The body as a form, and the first line as a forged signature and URL.
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(data).unwrap_or_default();
    let text = String::from_utf8_lossy(data);
    let forged = text.lines().next().unwrap_or_default();
    let _ = validate_form(&token, URL, &params, forged);
    let _ = validate_form(&token, forged, &params, forged);
    let _ = validate_json(&token, forged, data, forged);
    let _ = domain::signature::signed_with(Some(forged));

    let signature = sign(&token, URL, &params);
    assert!(validate_form(&token, URL, &params, &signature).is_ok());
    let sha = sign_sha256(&shared, URL, &params);
    assert!(validate_form_sha256(&shared, URL, &params, &sha).is_ok());
    // A field the form does not hold changes the signature (a field repeated with the same value
    // does not: Twilio signs each distinct value of a name once).
    let added = ("Fuzz".to_owned(), "changed".to_owned());
    if !params.contains(&added) {
        let mut changed = params.clone();
        changed.push(added);
        assert!(validate_form(&token, URL, &changed, &signature).is_err());
    }
    // Keywords from any reply body.
    if let Some((_, body)) = params.iter().find(|(k, _)| k == "Body") {
        let _ = domain::keywords::classify(body);
    }
});
