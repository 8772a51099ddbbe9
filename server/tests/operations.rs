//! What operators see: Prometheus metrics at `/metrics` (behind a bearer token when one is set),
//! never with a phone number or a body in them.

mod common;

use backend::audit::Actor;
use backend::testing::Backend;
use common::{spawn_app, spawn_app_with};

const TOKEN: &str = "metrics-token-0123456789";

async fn send(app: &common::TestApp, id: &str, secret: &str, body: &str) -> u16 {
    reqwest::Client::new()
        .post(app.url("/api/v1/messages"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST")
        .status()
        .as_u16()
}

/// The value of one sample line (`name{labels} value`) whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn metrics_count_intake_and_show_the_queue_without_numbers_or_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = backend::api_keys::create(&app.db, &Actor::cli(), "metrics test")
        .await
        .expect("key");
    let secret = backend::api_keys::reveal(&key.secret).to_owned();
    let before = reqwest::get(app.url("/metrics"))
        .await
        .expect("GET")
        .text()
        .await
        .expect("text");
    let refused_before = sample(
        &before,
        "smsdesk_messages_refused_total",
        &["reason=\"invalid_number\""],
    )
    .unwrap_or(0.0);
    let body = "Secret cargo manifest 4417";
    for to in ["+14155550101", "+14155550102"] {
        let json = format!(r#"{{"to": "{to}", "body": "{body}"}}"#);
        assert_eq!(send(&app, &key.key.id, &secret, &json).await, 202);
    }
    assert_eq!(
        send(
            &app,
            &key.key.id,
            &secret,
            r#"{"to": "+1 415 55", "body": "x"}"#
        )
        .await,
        422
    );
    let response = reqwest::get(app.url("/metrics")).await.expect("GET");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("text");
    assert!(
        sample(
            &text,
            "smsdesk_messages_accepted_total",
            &["source=\"api_key\""]
        )
        .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "smsdesk_messages_refused_total",
            &["reason=\"invalid_number\""]
        )
        .is_some_and(|n| n >= refused_before + 1.0),
        "{text}"
    );
    // Read from this app's database at scrape time (the worker does not run in tests).
    assert_eq!(
        sample(&text, "smsdesk_queue_depth", &["priority=\"normal\""]),
        Some(2.0),
        "{text}"
    );
    assert!(text.contains("# HELP smsdesk_oldest_waiting_seconds"));
    assert!(
        !text.contains("4155550101") && !text.contains("+1415"),
        "{text}"
    );
    assert!(!text.contains("cargo manifest"), "{text}");
}
on_both!(metrics_count_intake_and_show_the_queue_without_numbers_or_bodies);

async fn metrics_ask_for_the_token_when_one_is_set(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.metrics_token = Some(secrecy::SecretString::from(TOKEN));
    })
    .await;
    let client = reqwest::Client::new();
    let anonymous = client.get(app.url("/metrics")).send().await.expect("GET");
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = client
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-0123456780")
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status().as_u16(), 401);
    let right = client
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET");
    assert_eq!(right.status().as_u16(), 200);
    // The typed header reads the scheme regardless of case, as HTTP has it.
    let lowercase = client
        .get(app.url("/metrics"))
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(lowercase.status().as_u16(), 200);
    let basic = client
        .get(app.url("/metrics"))
        .basic_auth(TOKEN, None::<&str>)
        .send()
        .await
        .expect("GET");
    assert_eq!(basic.status().as_u16(), 401, "only a bearer token");
    assert!(
        right
            .text()
            .await
            .expect("text")
            .contains("smsdesk_queue_depth")
    );
}
on_both!(metrics_ask_for_the_token_when_one_is_set);

async fn the_api_description_is_served_with_swagger_ui(backend: Backend) {
    let app = spawn_app(backend).await;
    let spec: serde_json::Value = reqwest::get(app.url("/api/v1/openapi.json"))
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    for (path, method) in [
        ("/api/v1/messages", "post"),
        ("/api/v1/messages/batch", "post"),
        ("/api/v1/messages/{id}", "get"),
    ] {
        let operation = &spec["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is described");
        assert!(
            operation["responses"]["401"].is_object(),
            "{method} {path} says what a missing key gets"
        );
        assert!(
            operation["security"].is_array(),
            "{method} {path}: security"
        );
    }
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    // Derived from the handlers' own types: the request's fields are the struct's.
    let request = &spec["components"]["schemas"]["MessageRequest"]["properties"];
    for field in [
        "to",
        "body",
        "template",
        "variables",
        "category",
        "sender",
        "validity_seconds",
    ] {
        assert!(request[field].is_object(), "MessageRequest.{field}");
    }
    let docs = reqwest::get(app.url("/api/docs/")).await.expect("GET");
    assert_eq!(docs.status().as_u16(), 200);
    assert!(docs.text().await.expect("text").contains("swagger"));
}
on_both!(the_api_description_is_served_with_swagger_ui);
