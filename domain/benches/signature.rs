//! How long validating a Twilio status callback's `X-Twilio-Signature` takes.
//!
//! The input (URL, ten form parameters, token, expected signature) is
//! `tools/bench/status_callback.json`, which `tools/bench/twilio_validator.py` times with
//! twilio-python's `RequestValidator` on the same machine.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use domain::signature::{self, AuthToken, SignatureError};

const CASE: &str = include_str!("../../tools/bench/status_callback.json");

#[derive(serde::Deserialize)]
struct Case {
    auth_token: String,
    url: String,
    params: Vec<(String, String)>,
    signature: String,
}

fn status_callback(c: &mut Criterion) {
    let case: Case = serde_json::from_str(CASE).expect("tools/bench/status_callback.json parses");
    let token = AuthToken::new(case.auth_token).expect("the bench token is valid");
    // Same answer as twilio-python, or the timing means nothing.
    assert_eq!(
        signature::sign(&token, &case.url, &case.params),
        case.signature
    );
    let wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    let mut group = c.benchmark_group("signature");
    group.bench_function("validate_form_10_params", |b| {
        b.iter(|| {
            signature::validate_form(
                black_box(&token),
                black_box(&case.url),
                black_box(&case.params),
                black_box(&case.signature),
            )
        })
    });
    // A forged request costs both URL variants: the worst case.
    group.bench_function("validate_form_forged_10_params", |b| {
        b.iter(|| {
            let result = signature::validate_form(
                black_box(&token),
                black_box(&case.url),
                black_box(&case.params),
                black_box(wrong),
            );
            debug_assert_eq!(result, Err(SignatureError::Mismatch));
            result
        })
    });
    group.bench_function("sign_10_params", |b| {
        b.iter(|| {
            signature::sign(
                black_box(&token),
                black_box(&case.url),
                black_box(&case.params),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, status_callback);
criterion_main!(benches);
