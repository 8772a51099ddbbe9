//! Budgets and spend over HTTP, on SQLite and PostgreSQL: a hard stop refuses through the JSON
//! API (422 `budget_exceeded`) and the Twilio-compatible endpoint (400, code 30010), the
//! estimate endpoint answers what a batch would do without sending, finance sets budgets and
//! reads the spend page (its charts in the HTML) and its CSV, other roles are refused, and a
//! budget alert reaches the webhook signed.

mod common;

use backend::audit::Actor;
use backend::testing::Backend;
use common::{TestApp, spawn_app, spawn_app_with};
use domain::access::Role;
use domain::budget::{Budget, Period};
use serde_json::{Value, json};

async fn api_key(app: &TestApp) -> (String, String) {
    let created = backend::api_keys::create(&app.db, &Actor::cli(), "spend test")
        .await
        .expect("key");
    let secret = backend::api_keys::reveal(&created.secret).to_owned();
    (created.key.id, secret)
}

async fn post_json(
    app: &TestApp,
    key: &(String, String),
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(app.url(path))
        .basic_auth(&key.0, Some(&key.1))
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("answer");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn daily_hard_stop(app: &TestApp, micros: i64) {
    backend::budgets::set(
        &app.db,
        &Actor::cli(),
        &Budget {
            period: Period::Day,
            category: None,
            amount_micros: micros,
            warn_percents: vec![50, 80, 100],
            hard_stop: true,
        },
        backend::db::now_micros(),
    )
    .await
    .expect("db")
    .expect("valid");
}

async fn a_hard_stop_refuses_through_both_apis(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    // Two US segments of $0.0083 fit in $0.02, a third does not.
    daily_hard_stop(&app, 20_000).await;
    let message = json!({ "to": "+14155552671", "body": "Shipment 4411 is at the depot" });
    let estimate = json!({ "messages": [message, message, message] });
    let (status, answer) = post_json(&app, &key, "/api/v1/messages/estimate", &estimate).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sendable"], 3);
    assert_eq!(answer["estimated_price"], "0.0249");
    assert_eq!(answer["within_budgets"], false);
    assert_eq!(answer["budgets"][0]["budget"], "daily budget");
    assert_eq!(answer["budgets"][0]["would_refuse"], 1);
    assert_eq!(answer["budgets"][0]["after"], "0.0166");
    // Nothing was written by the estimate.
    let (status, answer) = post_json(&app, &key, "/api/v1/messages", &message).await;
    assert_eq!(status, 202, "{answer}");
    let (status, _) = post_json(&app, &key, "/api/v1/messages", &message).await;
    assert_eq!(status, 202);
    let (status, answer) = post_json(&app, &key, "/api/v1/messages", &message).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "budget_exceeded");
    let text = answer["error"]["message"].as_str().expect("message");
    assert!(
        text.contains("daily budget") && text.contains("resets at"),
        "{text}"
    );
    // Twilio's client sees a Twilio error.
    let account = backend::settings::account_sid(&app.db, None)
        .await
        .expect("sid");
    let response = reqwest::Client::new()
        .post(app.url(&format!("/2010-04-01/Accounts/{account}/Messages.json")))
        .basic_auth(&key.0, Some(&key.1))
        .form(&[("To", "+14155552671"), ("Body", "Shipment 4412")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["code"], 30010, "{answer}");
}
on_both!(a_hard_stop_refuses_through_both_apis);

async fn finance_sets_budgets_and_reads_spend(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let batch = json!({ "messages": [
        { "to": "+14155552671", "body": "Depot 3 at 9", "category": "shipment" },
        { "to": "+14155552672", "body": "Depot 3 at 9", "category": "driver" },
        { "to": "+61412345678", "body": "Depot 3 at 9" },
    ]});
    let (status, answer) = post_json(&app, &key, "/api/v1/messages/batch", &batch).await;
    assert_eq!(status, 202, "{answer}");

    let finance = app.signed_in(Role::Finance).await;
    let saved = finance
        .call(
            "set_budget",
            &[
                ("period", "month"),
                ("category", ""),
                ("amount", "$1,000"),
                ("warn", "50, 80"),
                ("hard_stop", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    let refused = finance
        .call(
            "set_budget",
            &[
                ("period", "week"),
                ("category", ""),
                ("amount", "10"),
                ("warn", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.text.contains("day or month"), "{}", refused.text);

    let page = finance.get("/spend").await;
    assert_eq!(page.status, 200);
    // Charts are in the page's HTML (drawn on the server), with their figures in tables.
    assert!(page.text.matches("<svg").count() >= 4, "{}", page.text);
    assert!(page.text.contains("monthly budget"), "the budget is listed");
    // US $0.0083 × 2 + AU $0.0515.
    assert!(page.text.contains("$0.0681"), "the total estimate");

    let csv = finance.get("/spend/export.csv?by=country").await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    assert_eq!(csv.header("content-type"), "text/csv; charset=utf-8");
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(
        lines[0],
        "country,messages,segments,estimated_usd,reported_usd"
    );
    assert_eq!(lines[1], "AU,1,1,0.0515,0.00");
    assert_eq!(lines[2], "US,2,2,0.0166,0.00");
    let by_day = finance.get("/spend/export.csv?by=day").await;
    assert!(by_day.text.starts_with("day,category,"), "{}", by_day.text);
    let bad = finance
        .get("/spend/export.csv?by=day&from=2026-13-01")
        .await;
    assert_eq!(bad.status, 400);

    // Dispatchers send but do not see spend.
    let dispatcher = app.signed_in(Role::Dispatcher).await;
    assert_eq!(dispatcher.get("/spend/export.csv").await.status, 403);
    assert_eq!(dispatcher.call("list_budgets", &[]).await.status, 403);
    assert_eq!(app.client().get("/spend/export.csv").await.status, 401);
}
on_both!(finance_sets_budgets_and_reads_spend);

/// A warning level reached posts one signed alert to the webhook named in Settings and texts
/// finance's numbers, once; a spent hard stop does not hold the alert's SMS back.
#[tokio::test]
async fn an_alert_reaches_the_webhook_signed_and_finance_by_sms() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/alerts"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&hook)
        .await;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.alert_webhook_secret = Some("alert-secret".to_owned().into());
    })
    .await;
    let mut settings = backend::settings::sending(&app.db).await.expect("settings");
    settings.budgets.alert_webhook_url = Some(format!("{}/alerts", hook.uri()));
    backend::settings::save_sending(&app.db, &Actor::cli(), &settings)
        .await
        .expect("saved");
    backend::budgets::add_alert_number(
        &app.db,
        &app.sending.key,
        &Actor::cli(),
        "+14155550190",
        "+1415555••90",
        backend::db::now_micros(),
    )
    .await
    .expect("db")
    .expect("added");
    // Kept encrypted: the number is nowhere in the table as text.
    let stored: Vec<String> = backend::on_db!(&app.db, |pool| sqlx::query_scalar(
        "SELECT number_enc || number_hash || masked FROM budget_alert_numbers"
    )
    .fetch_all(pool)
    .await
    .expect("stored"));
    assert!(!stored[0].contains("4155550190"), "{stored:?}");
    // $0.0083 of $0.01 is 83 %: the 50 and 80 levels; the hard stop has no room left.
    daily_hard_stop(&app, 10_000).await;
    let key = api_key(&app).await;
    let message = json!({ "to": "+14155552671", "body": "Depot 3 at 9" });
    let (status, _) = post_json(&app, &key, "/api/v1/messages", &message).await;
    assert_eq!(status, 202);
    let secret: secrecy::SecretString = "alert-secret".to_owned().into();
    let http = backend::budgets::alert_client();
    let mut warned = false;
    let handled = server::sending::alert_round(&app.sending, &http, Some(&secret), &mut warned)
        .await
        .expect("round");
    assert_eq!(handled, 2);
    let requests = hook.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 2);
    for r in &requests {
        let signature = r
            .headers
            .get("x-smsdesk-signature")
            .and_then(|v| v.to_str().ok())
            .expect("signed");
        assert_eq!(
            signature,
            backend::budgets::signature(b"alert-secret", &r.body)
        );
        let body: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(body["type"], "budget.alert");
        assert_eq!(body["budget"], "daily budget");
    }
    // Two texts to finance, sent by smsdesk itself despite the spent hard stop.
    let sent: Vec<(String, String)> = backend::on_db!(&app.db, |pool| sqlx::query_as(
        "SELECT source, body FROM messages WHERE source LIKE 'system:%' ORDER BY id"
    )
    .fetch_all(pool)
    .await
    .expect("messages"));
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter()
            .all(|(source, _)| source == "system:budget_alert")
    );
    for level in ["50 %", "80 %"] {
        let text = format!("smsdesk: the daily budget has reached {level}");
        assert!(
            sent.iter().any(|(_, body)| body.starts_with(&text)),
            "{sent:?}"
        );
    }
    // The texts cost too and count: they take the day to 100 %, one more alert; then nothing
    // is left (each level once).
    let hundred = server::sending::alert_round(&app.sending, &http, Some(&secret), &mut warned)
        .await
        .expect("round");
    assert_eq!(hundred, 1);
    let again = server::sending::alert_round(&app.sending, &http, Some(&secret), &mut warned)
        .await
        .expect("round");
    assert_eq!(again, 0);
}
