//! The global limits hold as Twilio counts them: by the time requests arrive at the provider
//! (the fake Twilio's own clock), not by when smsdesk claimed the messages. The real server runs
//! its worker loops against a fake Twilio over HTTP that answers in 20 ms; the test waits for the
//! fake's ledger to fill (polling with a deadline) and reads its arrival times.

mod common;

use std::time::Duration;

use backend::audit::Actor;
use backend::testing::Backend;
use backend::testing::fake_twilio::FakeTwilio;
use common::spawn_app_with;

use common::TWILIO_ACCOUNT as ACCOUNT;
const SECOND: i64 = 1_000_000;

async fn arrivals_never_exceed_the_per_second_limit(backend: Backend) {
    let fake = FakeTwilio::start_with_delay(Duration::from_millis(20)).await;
    let base = fake.uri();
    let app = spawn_app_with(backend, move |s| {
        s.worker = true;
        s.twilio = Some(common::twilio_account(
            ACCOUNT,
            common::TWILIO_TOKEN,
            "+15005550006",
            base,
        ));
    })
    .await;
    let mut settings = backend::settings::SendingSettings::default();
    settings.limits.per_second = 10;
    settings.limits.per_minute = 10_000;
    settings.limits.per_hour = 100_000;
    settings.limits.per_recipient_per_hour = 100;
    settings.limits.per_recipient_per_day = 100;
    settings.pace.long_code = 1_000;
    backend::settings::save_sending(&app.db, &Actor::system(), &settings)
        .await
        .expect("settings");
    let key = backend::api_keys::create(&app.db, &Actor::cli(), "limits test")
        .await
        .expect("key");
    let messages: Vec<serde_json::Value> = (0..40)
        .map(|i| serde_json::json!({ "to": format!("+1415555{:04}", 3000 + i), "body": format!("m{i}") }))
        .collect();
    let answer = reqwest::Client::new()
        .post(app.url("/api/v1/messages/batch"))
        .basic_auth(&key.key.id, Some(backend::api_keys::reveal(&key.secret)))
        .json(&serde_json::json!({ "messages": messages }))
        .send()
        .await
        .expect("POST");
    assert_eq!(answer.status().as_u16(), 202);

    // The worker runs on its own: wait for the fake to have them all (40 at 10/s: ~5 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while fake.ledger().len() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of 40 arrived within a minute",
            fake.ledger().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut arrivals: Vec<i64> = fake.ledger().iter().map(|c| c.at).collect();
    arrivals.sort_unstable();
    assert_eq!(arrivals.len(), 40, "each message once");
    let busiest = arrivals
        .iter()
        .enumerate()
        .map(|(i, start)| {
            arrivals[i..]
                .iter()
                .take_while(|&&a| a < start + SECOND)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        busiest <= 10,
        "{busiest} requests reached Twilio within one second (limit 10)"
    );
}
on_both!(arrivals_never_exceed_the_per_second_limit);
