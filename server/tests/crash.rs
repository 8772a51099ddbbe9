//! A crash in the middle of a batch: the real `smsdesk` binary sends 2,000 messages to a fake
//! Twilio (over HTTP, each answer a little slow so the kill lands mid-way), is killed with
//! SIGKILL while sends are in flight, and is started again on the same database. The fake's
//! ledger must then hold every message exactly once: those whose outcome the killed process never
//! recorded are looked up in Twilio's Message list, not sent again.
//!
//! And the same with three instances on one PostgreSQL database, one of them killed mid-batch and
//! started again: every message exactly once, and the global limit kept as Twilio counts it, by
//! the fake's arrival times.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use backend::audit::Actor;
use backend::db::Db;
use backend::testing::fake_twilio::FakeTwilio;
use backend::testing::instance::free_port;
use serde_json::json;

const MESSAGES: usize = 2_000;

/// These tests start real `smsdesk` processes (up to three at once) and judge their timing by a
/// fake Twilio's clock; run side by side on a small machine they starve each other's processes
/// for CPU. One at a time (each test's runtime is its own, so the lock is tokio's).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn start(database_url: &str, fake: &str, port: u16, timeout_seconds: u32) -> Child {
    backend::testing::instance::start(
        env!("CARGO_BIN_EXE_smsdesk"),
        database_url,
        fake,
        port,
        timeout_seconds,
    )
}

/// Waits (polling, with a deadline) until `done` says so.
async fn until<F, Fut>(what: &str, deadline: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server at `base` answers `/readyz`.
async fn ready(http: &reqwest::Client, base: &str) {
    until("smsdesk is ready", Duration::from_secs(30), || {
        let request = http.get(format!("{base}/readyz")).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
}

/// A migrated SQLite database in a fresh folder, and an API key (id, secret) on it.
async fn database(name: &str) -> (std::path::PathBuf, String, Db, String, String) {
    let dir = std::env::temp_dir().join(format!("smsdesk_{name}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/smsdesk.db", dir.display());
    let db = Db::connect(&url).await.expect("db");
    db.migrate().await.expect("migrated");
    let key = backend::api_keys::create(&db, &Actor::cli(), name)
        .await
        .expect("key");
    let secret = backend::api_keys::reveal(&key.secret).to_owned();
    (dir, url, db, key.key.id, secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_then_restart_sends_every_message_exactly_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let fake = FakeTwilio::start_with_delay(Duration::from_millis(15)).await;
    // The database, an API key, limits far away: prepared before the first start.
    let (dir, url, db, key_id, secret) = database("crash").await;
    let mut settings = backend::settings::SendingSettings::default();
    settings.limits.per_second = 100_000;
    settings.limits.per_minute = 1_000_000;
    settings.limits.per_hour = 10_000_000;
    settings.pace.long_code = 100_000;
    backend::settings::save_sending(&db, &Actor::system(), &settings)
        .await
        .expect("settings");

    let port = free_port();
    let mut first = start(&url, &fake.uri(), port, 1);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    ready(&http, &base).await;
    for chunk in 0..MESSAGES / 1_000 {
        let messages: Vec<_> = (0..1_000)
            .map(|i| {
                let n = chunk * 1_000 + i;
                json!({ "to": format!("+1415555{:04}", 2_000 + n), "body": format!("crash test {n}") })
            })
            .collect();
        let answer = http
            .post(format!("{base}/api/v1/messages/batch"))
            .basic_auth(&key_id, Some(&secret))
            .json(&json!({ "messages": messages }))
            .send()
            .await
            .expect("batch");
        assert_eq!(answer.status().as_u16(), 202);
    }
    until("a quarter has gone out", Duration::from_secs(60), || {
        let n = fake.ledger().len();
        async move { n >= MESSAGES / 4 }
    })
    .await;
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    let at_kill = fake.ledger().len();
    assert!(
        at_kill < MESSAGES,
        "the kill landed before the end ({at_kill} sent)"
    );

    let mut second = start(&url, &fake.uri(), port, 1);
    until("every message is done", Duration::from_secs(120), || {
        let db = db.clone();
        async move { backend::outbox::backlog(&db).await.is_ok_and(|n| n == 0) }
    })
    .await;
    second.kill().ok();
    second.wait().ok();

    let ledger = fake.ledger();
    let mut bodies: Vec<&str> = ledger.iter().map(|c| c.body.as_str()).collect();
    bodies.sort_unstable();
    let total = bodies.len();
    bodies.dedup();
    assert_eq!(bodies.len(), MESSAGES, "every message went out");
    assert_eq!(total, MESSAGES, "none went out twice");
    let failed: i64 = backend::on_db!(&db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM messages WHERE status = 'failed'"
    )
    .fetch_one(pool)
    .await
    .expect("count"));
    assert_eq!(failed, 0);
    db.close().await;
    std::fs::remove_dir_all(&dir).ok();
}

/// The most arrivals (µs) in any window of `window` µs.
fn busiest(arrivals: &mut [i64], window: i64) -> usize {
    arrivals.sort_unstable();
    (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|&&a| a < arrivals[i] + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_killed_send_every_message_once_within_the_limit() {
    let _alone = ONE_AT_A_TIME.lock().await;
    const TOTAL: usize = 3_000;
    const PER_SECOND: u32 = 300;
    let fake = FakeTwilio::start_with_delay(Duration::from_millis(15)).await;
    let database = backend::testing::TestDb::postgres().await;
    let (db, url) = (database.db.clone(), database.url());
    let mut settings = backend::settings::SendingSettings::default();
    settings.limits.per_second = PER_SECOND;
    settings.limits.per_minute = 1_000_000;
    settings.limits.per_hour = 10_000_000;
    settings.pace.long_code = 100_000;
    backend::settings::save_sending(&db, &Actor::system(), &settings)
        .await
        .expect("settings");
    let key = backend::api_keys::create(&db, &Actor::cli(), "instances")
        .await
        .expect("key");
    let (key_id, secret) = (key.key.id.clone(), backend::api_keys::reveal(&key.secret));

    // Three instances start at once on the same database.
    let ports = [free_port(), free_port(), free_port()];
    let mut instances: Vec<Child> = ports
        .iter()
        .map(|&port| start(&url, &fake.uri(), port, 1))
        .collect();
    let http = reqwest::Client::new();
    for port in ports {
        ready(&http, &format!("http://127.0.0.1:{port}")).await;
    }
    // A thousand through each.
    for (n, port) in ports.iter().enumerate() {
        let messages: Vec<_> = (0..TOTAL / 3)
            .map(|i| {
                let m = n * (TOTAL / 3) + i;
                json!({ "to": format!("+1415555{:04}", m), "body": format!("instance test {m}") })
            })
            .collect();
        let answer = http
            .post(format!("http://127.0.0.1:{port}/api/v1/messages/batch"))
            .basic_auth(&key_id, Some(secret))
            .json(&json!({ "messages": messages }))
            .send()
            .await
            .expect("batch");
        assert_eq!(answer.status().as_u16(), 202);
    }
    until("a quarter has gone out", Duration::from_secs(120), || {
        let n = fake.ledger().len();
        async move { n >= TOTAL / 4 }
    })
    .await;
    instances[1].kill().expect("SIGKILL");
    instances[1].wait().expect("reaped");
    let at_kill = fake.ledger().len();
    assert!(
        at_kill < TOTAL,
        "the kill landed before the end ({at_kill} sent)"
    );
    instances[1] = start(&url, &fake.uri(), ports[1], 1);
    until("every message is done", Duration::from_secs(180), || {
        let db = db.clone();
        async move { backend::outbox::backlog(&db).await.is_ok_and(|n| n == 0) }
    })
    .await;
    for mut instance in instances {
        instance.kill().ok();
        instance.wait().ok();
    }

    let ledger = fake.ledger();
    let mut bodies: Vec<&str> = ledger.iter().map(|c| c.body.as_str()).collect();
    bodies.sort_unstable();
    bodies.dedup();
    assert_eq!(bodies.len(), TOTAL, "every message went out");
    assert_eq!(ledger.len(), TOTAL, "none went out twice");
    let mut arrivals: Vec<i64> = ledger.iter().map(|c| c.at).collect();
    let most = busiest(&mut arrivals, 1_000_000);
    assert!(
        most <= PER_SECOND as usize,
        "{most} requests arrived within one second (limit {PER_SECOND})"
    );
    let failed: i64 = backend::on_db!(&db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM messages WHERE status = 'failed'"
    )
    .fetch_one(pool)
    .await
    .expect("count"));
    assert_eq!(failed, 0);
    database.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_send_in_flight_finish_and_record_it() {
    let _alone = ONE_AT_A_TIME.lock().await;
    // Twilio takes 2 s to answer: SIGTERM arrives while the request is out.
    let fake = FakeTwilio::start_with_delay(Duration::from_secs(2)).await;
    let (dir, url, db, key_id, secret) = database("sigterm").await;
    let port = free_port();
    let mut child = start(&url, &fake.uri(), port, 10);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    ready(&http, &base).await;
    let answer = http
        .post(format!("{base}/api/v1/messages"))
        .basic_auth(&key_id, Some(&secret))
        .json(&json!({ "to": "+14155552671", "body": "in flight at shutdown" }))
        .send()
        .await
        .expect("POST");
    let id = answer.json::<serde_json::Value>().await.expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    until(
        "the request reached Twilio",
        Duration::from_secs(30),
        || {
            let n = fake.ledger().len();
            async move { n == 1 }
        },
    )
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().expect("exits"))
        .await
        .expect("joined");
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
    let m = backend::outbox::find(
        &db,
        &backend::crypto::DataKey::new(&backend::testing::instance::DATA_KEY),
        &id,
    )
    .await
    .expect("db")
    .expect("message");
    assert_eq!(
        m.state,
        backend::outbox::MessageState::Done,
        "the answer that came after SIGTERM was recorded"
    );
    assert_eq!(
        m.provider_sid.as_deref(),
        Some(fake.ledger()[0].sid.as_str())
    );
    db.close().await;
    std::fs::remove_dir_all(&dir).ok();
}
