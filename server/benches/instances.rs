//! `make bench`: dispatch throughput with one, two and three `smsdesk` processes on one
//! PostgreSQL database (release build), sending to a fake Twilio over HTTP that answers each
//! create in 20 ms, the limits set high. Each run has a fresh database: the messages are posted
//! through the instances' batch API, and the clock runs from the first post until the fake has
//! every message. If the claim's lock row capped throughput, two and three instances would send
//! no faster than one.
//!
//! All processes share this machine's cores with PostgreSQL and the fake, so the figures say
//! whether instances scale here, not what separate machines would reach.

use std::process::Child;
use std::time::{Duration, Instant};

use backend::audit::Actor;
use backend::testing::TestDb;
use backend::testing::fake_twilio::FakeTwilio;
use backend::testing::instance::{free_port, start, until_ready};
use serde_json::json;

const MESSAGES: usize = 6_000;
const BATCH: usize = 1_000;

/// Messages per second with `n` instances.
async fn run(n: usize) -> f64 {
    let fake = FakeTwilio::start_with_delay(Duration::from_millis(20)).await;
    let database = TestDb::postgres().await;
    backend::testing::open_limits(&database.db).await;
    let key = backend::api_keys::create(&database.db, &Actor::cli(), "bench")
        .await
        .expect("key");
    let secret = backend::api_keys::reveal(&key.secret);
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let mut instances: Vec<Child> = ports
        .iter()
        .map(|&port| {
            start(
                env!("CARGO_BIN_EXE_smsdesk"),
                &database.url(),
                &fake.uri(),
                port,
                5,
            )
        })
        .collect();
    for &port in &ports {
        until_ready(port).await;
    }
    let http = reqwest::Client::new();
    let started = Instant::now();
    let posts = (0..MESSAGES / BATCH).map(|b| {
        let port = ports[b % n];
        let messages: Vec<_> = (0..BATCH)
            .map(|i| {
                let m = b * BATCH + i;
                json!({ "to": format!("+1415555{:04}", m % 10_000), "body": format!("bench {m}") })
            })
            .collect();
        http.post(format!("http://127.0.0.1:{port}/api/v1/messages/batch"))
            .basic_auth(&key.key.id, Some(secret))
            .json(&json!({ "messages": messages }))
            .send()
    });
    for answer in futures::future::join_all(posts).await {
        assert_eq!(answer.expect("batch").status().as_u16(), 202);
    }
    fake.until_arrivals(MESSAGES).await;
    let elapsed = started.elapsed();
    for instance in &mut instances {
        instance.kill().ok();
        instance.wait().ok();
    }
    assert_eq!(fake.ledger().len(), MESSAGES, "each message once");
    database.cleanup().await;
    MESSAGES as f64 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let mut one = 0.0;
    for n in 1..=3 {
        let rate = run(n).await;
        if n == 1 {
            one = rate;
        }
        println!(
            "dispatch with {n} instance(s) on PostgreSQL: {rate:.0} messages/s ({:.2}x one instance; {MESSAGES} messages, fake Twilio answering in 20 ms)",
            rate / one
        );
    }
}
