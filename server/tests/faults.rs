//! The database goes away and comes back. smsdesk reaches PostgreSQL through a proxy the test
//! cuts (the port refuses connections, open connections are dropped: what smsdesk sees when the
//! server stops) and restores on the same port. Meanwhile intake answers 503 with a reason and
//! `Retry-After`, `/readyz` fails while `/healthz` answers, the worker's steps fail without
//! losing anything, and afterwards every accepted message goes out exactly once, including those
//! whose sends were in flight when the database went (their outcome could not be recorded: they
//! are looked up in Twilio's list, not sent again).

mod common;

use std::time::Duration;

use backend::audit::Actor;
use backend::testing::Backend;
use backend::testing::fake_twilio::FakeTwilio;
use backend::testing::outage::Proxy;
use common::spawn_app_with;
use serde_json::{Value, json};

use common::TWILIO_ACCOUNT as ACCOUNT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_and_coming_back_loses_nothing() {
    // PostgreSQL, through a proxy this test controls.
    let admin = reqwest::Url::parse(&backend::testing::postgres_admin_url()).expect("URL");
    let upstream = tokio::net::lookup_host((
        admin.host_str().expect("host"),
        admin.port().unwrap_or(5432),
    ))
    .await
    .expect("PostgreSQL's address")
    .next()
    .expect("an address");
    let proxy = Proxy::start(upstream).await;
    let port = proxy.port();
    // Twilio answers each create after 300 ms, so the database can go while sends are in flight.
    let fake = FakeTwilio::start_with_delay(Duration::from_millis(300)).await;
    let base = fake.uri();
    let app = spawn_app_with(Backend::Postgres, move |s| {
        let mut url = reqwest::Url::parse(&s.database_url).expect("URL");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(port)).expect("port");
        s.database_url = url.to_string();
        s.twilio = Some(common::twilio_account(
            ACCOUNT,
            common::TWILIO_TOKEN,
            "+15005550006",
            base,
        ));
    })
    .await;
    let mut settings = backend::settings::SendingSettings::default();
    settings.limits.per_second = 1_000;
    settings.limits.per_minute = 10_000;
    settings.limits.per_hour = 100_000;
    settings.pace.long_code = 1_000;
    backend::settings::save_sending(&app.db, &Actor::system(), &settings)
        .await
        .expect("settings");
    let key = backend::api_keys::create(&app.db, &Actor::cli(), "faults")
        .await
        .expect("key");
    let (id, secret) = (key.key.id.clone(), backend::api_keys::reveal(&key.secret));
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(app.url(path))
            .basic_auth(&id, Some(secret))
            .json(&body)
            .send()
    };
    let messages: Vec<Value> = (0..20)
        .map(|i| json!({ "to": format!("+1415555{:04}", 3000 + i), "body": format!("before {i}") }))
        .collect();
    let answer = post("/api/v1/messages/batch", json!({ "messages": messages }))
        .await
        .expect("POST");
    assert_eq!(answer.status().as_u16(), 202);

    // A worker step claims the twenty and sends them; the database goes while Twilio answers.
    let worker = app.sending.worker(None);
    let t0 = backend::db::now_micros();
    let step = tokio::spawn(async move {
        let result = worker.try_execute_task(t0).await;
        (worker, result)
    });
    fake.until_arrivals(20).await;
    proxy.cut();
    let (worker, result) = step.await.expect("the step ends");
    assert!(
        result.is_err(),
        "the sends' outcomes could not be recorded: {result:?}"
    );
    assert_eq!(fake.ledger().len(), 20);

    // Down: intake refuses with the reason and when to try again; readiness fails, liveness not;
    // the worker's step fails. (At once: each waits for the pool's connection timeout.)
    let account = &app.sending.installation.account_sid;
    let (down, twilio, ready, alive, stalled) = tokio::join!(
        post(
            "/api/v1/messages",
            json!({ "to": "+14155553100", "body": "during" }),
        ),
        http.post(app.url(&format!("/2010-04-01/Accounts/{account}/Messages.json")))
            .basic_auth(&id, Some(secret))
            .form(&[("To", "+14155553101"), ("Body", "during")])
            .send(),
        http.get(app.url("/readyz")).send(),
        http.get(app.url("/healthz")).send(),
        worker.try_execute_task(t0),
    );
    let down = down.expect("POST");
    assert_eq!(down.status().as_u16(), 503);
    assert_eq!(
        down.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some(server::startup::RETRY_AFTER_SECONDS)
    );
    let body: Value = down.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "database_unavailable");
    let twilio = twilio.expect("POST");
    assert_eq!(twilio.status().as_u16(), 503);
    assert!(twilio.headers().contains_key("retry-after"));
    let body: Value = twilio.json().await.expect("JSON");
    assert_eq!(body["code"], 20500);
    assert_eq!(ready.expect("GET").status().as_u16(), 503);
    assert_eq!(alive.expect("GET").status().as_u16(), 200);
    assert!(stalled.is_err(), "the worker waits");

    // Back: on the same port, nothing restarted.
    proxy.restore();
    let ready = http.get(app.url("/readyz")).send().await.expect("GET");
    assert_eq!(ready.status().as_u16(), 200);
    let after = post(
        "/api/v1/messages",
        json!({ "to": "+14155553102", "body": "after" }),
    )
    .await
    .expect("POST");
    assert_eq!(after.status().as_u16(), 202);
    // Past the lease the twenty are in doubt: found in Twilio's list, not sent again; the new
    // one goes out.
    let lease = i64::try_from(app.sending.lease.as_micros()).expect("lease");
    let later = backend::db::now_micros().max(t0 + lease + 1_000_000);
    let step = worker.try_execute_task(later).await.expect("step");
    assert_eq!((step.claimed, step.sent, step.found_in_doubt), (21, 21, 20));
    let ledger = fake.ledger();
    assert_eq!(ledger.len(), 21, "every accepted message exactly once");
    let recipients: std::collections::BTreeSet<&str> =
        ledger.iter().map(|c| c.to.as_str()).collect();
    assert_eq!(recipients.len(), 21);
    let unsent = backend::on_db!(&app.db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM messages WHERE state <> 'done' OR provider_sid IS NULL"
    )
    .fetch_one(pool)
    .await
    .expect("count"));
    assert_eq!(unsent, 0);
}
