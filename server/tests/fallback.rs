//! A fallback provider beside Twilio, configured as an operator would (a second account on
//! another base URL): a message the primary refuses with a failover code goes out through the
//! fallback from its own number, and the fallback's status callbacks, signed with its own auth
//! token, move the message on; signed with the primary's token they are refused.

mod common;

use std::time::Duration;

use backend::audit::Actor;
use backend::testing::Backend;
use backend::testing::fake_twilio::{FakeTwilio, Script};
use common::{spawn_app_with, twilio_account};
use domain::signature::AuthToken;
use serde_json::json;

const PRIMARY: &str = "AC0123456789abcdef0123456789abcdef";
const PRIMARY_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const FALLBACK: &str = "ACfedcba9876543210fedcba9876543210";
const FALLBACK_TOKEN: &str = "fedcba9876543210fedcba9876543210";
const FALLBACK_FROM: &str = "+15005550010";

async fn a_refused_message_goes_through_the_fallback_and_its_callbacks_are_checked_with_its_token(
    backend: Backend,
) {
    let primary = FakeTwilio::start().await;
    let fallback = FakeTwilio::start().await;
    let (primary_base, fallback_base) = (primary.uri(), fallback.uri());
    let app = spawn_app_with(backend, move |s| {
        s.twilio = Some(twilio_account(
            PRIMARY,
            PRIMARY_TOKEN,
            "+15005550006",
            primary_base,
        ));
        s.fallback = Some(twilio_account(
            FALLBACK,
            FALLBACK_TOKEN,
            FALLBACK_FROM,
            fallback_base,
        ));
    })
    .await;
    let key = backend::api_keys::create(&app.db, &Actor::cli(), "fallback")
        .await
        .expect("key");
    let to = "+14155552671";
    primary.script(
        to,
        [Script::Error {
            status: 400,
            code: 21611,
        }],
    );
    let answer = reqwest::Client::new()
        .post(app.url("/api/v1/messages"))
        .basic_auth(&key.key.id, Some(backend::api_keys::reveal(&key.secret)))
        .json(&json!({ "to": to, "body": "through the other account" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status().as_u16(), 202);
    let id = answer.json::<serde_json::Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let step = app
        .sending
        .worker(None)
        .try_execute_task(backend::db::now_micros())
        .await
        .expect("step");
    assert_eq!(step.sent, 1);
    assert!(primary.ledger().is_empty());
    let carried = fallback.ledger();
    assert_eq!(carried.len(), 1);
    assert_eq!(carried[0].from.as_deref(), Some(FALLBACK_FROM));
    assert!(
        carried[0]
            .authorization
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic ")),
        "the fallback's own credentials"
    );

    let url = app.sending.status_url();
    let params = [
        ("AccountSid", FALLBACK.to_owned()),
        ("MessageSid", carried[0].sid.clone()),
        ("MessageStatus", "delivered".to_owned()),
    ];
    let post = |token: &str| {
        let signature =
            domain::signature::sign(&AuthToken::new(token).expect("token"), &url, &params);
        reqwest::Client::new()
            .post(&url)
            .header("X-Twilio-Signature", signature)
            .form(&params)
            .timeout(Duration::from_secs(10))
            .send()
    };
    assert_eq!(
        post(PRIMARY_TOKEN).await.expect("POST").status().as_u16(),
        403,
        "the fallback's account is checked with the fallback's token"
    );
    assert_eq!(
        post(FALLBACK_TOKEN).await.expect("POST").status().as_u16(),
        204
    );
    let m = backend::outbox::find(&app.db, &app.sending.key, &id)
        .await
        .expect("db")
        .expect("message");
    assert_eq!(m.status, domain::status::MessageStatus::Delivered);

    // The fallback's token speaks only for what the fallback carried.
    let answer = reqwest::Client::new()
        .post(app.url("/api/v1/messages"))
        .basic_auth(&key.key.id, Some(backend::api_keys::reveal(&key.secret)))
        .json(&json!({ "to": "+14155552672", "body": "through the primary" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status().as_u16(), 202);
    // (Two seconds on: the sender's pace, one segment a second, counted the first.)
    let step = app
        .sending
        .worker(None)
        .try_execute_task(backend::db::now_micros() + 2_000_000)
        .await
        .expect("step");
    assert_eq!(step.sent, 1);
    let by_primary = primary.ledger()[0].sid.clone();
    let params = [
        ("AccountSid", FALLBACK.to_owned()),
        ("MessageSid", by_primary),
        ("MessageStatus", "failed".to_owned()),
    ];
    let signature = domain::signature::sign(
        &AuthToken::new(FALLBACK_TOKEN).expect("token"),
        &url,
        &params,
    );
    let forged = reqwest::Client::new()
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&params)
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status().as_u16(), 403);
}
on_both!(a_refused_message_goes_through_the_fallback_and_its_callbacks_are_checked_with_its_token);
