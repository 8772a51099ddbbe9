//! `make bench`: two-factor codes on this machine, SQLite, release build.
//!
//! - From the start of a verification (`POST /v2/Services/{VA}/Verifications`, Twilio's Verify
//!   shape) to its text arriving at a local fake Twilio over HTTP: p50 / p99, starts paced at
//!   50 a second while the worker runs (each to its own number).
//! - Checks (`POST /v2/Services/{VA}/VerificationCheck`) per second with 32 clients, each
//!   check the right code of its own pending verification (each approves one).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::audit::Actor;
use backend::crypto::DataKey;
use backend::testing::TestDb;
use backend::testing::fake_twilio::FakeTwilio;
use futures::StreamExt;
use secrecy::{SecretBox, SecretString};
use server::settings::{Settings, TwilioSettings};
use server::startup::Application;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const STARTS: usize = 500;
const START_RATE: u64 = 50;
const CHECKS: usize = 2_000;
const CHECK_CLIENTS: usize = 32;
const DATA_KEY: [u8; 32] = [7u8; 32];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn number(n: usize) -> String {
    format!("+1415555{:04}", 1_000 + n)
}

fn settings(database: &TestDb, twilio: Option<TwilioSettings>, worker: bool) -> Settings {
    Settings {
        database_url: database.url(),
        listen: "127.0.0.1:0".parse().expect("address"),
        public_url: None,
        behind_proxy: false,
        data_key: SecretBox::new(Box::new(DATA_KEY)),
        session_secret: SecretBox::new(Box::new([9u8; 64])),
        admin_email: "admin@bench.test".into(),
        admin_password: Some(SecretString::from("bench admin password")),
        twilio,
        fallback: None,
        account_sid: None,
        auth_token: None,
        phone_number: None,
        simulator_seed: Some(1),
        send_timeout: Duration::from_secs(15),
        worker,
        request_timeout: Duration::from_secs(30),
        metrics_token: None,
        alert_webhook_secret: None,
        webhook_shared_key: None,
    }
}

struct Running {
    base: String,
    db: backend::db::Db,
    key_id: String,
    secret: String,
    http: reqwest::Client,
}

async fn start(settings: Settings) -> Running {
    let app = Application::build(settings).await.expect("smsdesk builds");
    let base = format!("http://{}", app.address());
    let db = app.sending.db.clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let mut s = backend::settings::SendingSettings::default();
    s.limits.per_second = 1_000_000;
    s.limits.per_minute = 10_000_000;
    s.limits.per_hour = 100_000_000;
    s.pace.long_code = 1_000_000;
    backend::settings::save_sending(&db, &Actor::system(), &s)
        .await
        .expect("settings");
    let created = backend::api_keys::create(&db, &Actor::cli(), "verify bench")
        .await
        .expect("key");
    Running {
        base,
        db,
        key_id: created.key.id,
        secret: backend::api_keys::reveal(&created.secret).to_owned(),
        http: reqwest::Client::new(),
    }
}

impl Running {
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> serde_json::Value {
        let answer = self
            .http
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.key_id, Some(&self.secret))
            .form(form)
            .send()
            .await
            .expect("POST");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        answer.json().await.expect("JSON")
    }

    async fn service(&self) -> String {
        let service = self
            .post("/v2/Services", &[("FriendlyName", "Bench")])
            .await;
        let sid = service["sid"].as_str().expect("sid").to_owned();
        // Thousands of codes to one country within the hour: past the default cap.
        let settings = backend::settings::sending(&self.db)
            .await
            .expect("settings");
        let guards = backend::verify::Guards {
            lifetime_seconds: 600,
            countries: Vec::new(),
            hourly_cap: None,
        };
        backend::verify::set_guards(&self.db, &Actor::cli(), &sid, &guards, &settings, 0)
            .await
            .expect("database")
            .expect("valid guards")
            .expect("the service");
        sid
    }
}

/// Start to the text's arrival at the fake Twilio, the worker running.
async fn start_to_provider() {
    let database = TestDb::sqlite().await;
    let fake = FakeTwilio::start().await;
    let twilio = TwilioSettings {
        account_sid: ACCOUNT.to_owned(),
        auth_token: Some(SecretString::from("0123456789abcdef0123456789abcdef")),
        phone_number: Some("+15005550006".to_owned()),
        messaging_service_sid: None,
        api_key: None,
        api_base_url: fake.uri(),
    };
    let app = start(settings(&database, Some(twilio), true)).await;
    let service = app.service().await;
    let path = format!("/v2/Services/{service}/Verifications");
    let mut started: HashMap<String, i64> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / START_RATE));
    for n in 0..STARTS {
        ticker.tick().await;
        let to = number(n);
        started.insert(to.clone(), backend::db::now_micros());
        app.post(&path, &[("To", &to), ("Channel", "sms")]).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.ledger().len() < STARTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ledger = fake.ledger();
    assert_eq!(ledger.len(), STARTS, "every code reached the provider");
    let mut latencies: Vec<Duration> = ledger
        .iter()
        .map(|c| {
            let micros = (c.at - started[&c.to]).max(0);
            Duration::from_micros(u64::try_from(micros).unwrap_or(0))
        })
        .collect();
    latencies.sort_unstable();
    println!(
        "verify start -> provider: {STARTS} starts at {START_RATE}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().expect("some").as_secs_f64() * 1e3,
    );
    database.cleanup().await;
}

/// Checks per second, each the right code of its own pending verification.
async fn checks_per_second() {
    let database = TestDb::sqlite().await;
    let app = Arc::new(start(settings(&database, None, false)).await);
    let service = app.service().await;
    let path = format!("/v2/Services/{service}/Verifications");
    let key = DataKey::new(&DATA_KEY);
    let mut pending = Vec::with_capacity(CHECKS);
    for n in 0..CHECKS {
        let to = number(n);
        let v = app.post(&path, &[("To", &to), ("Channel", "sms")]).await;
        let sid = v["sid"].as_str().expect("sid").to_owned();
        pending.push((to, key.verification_code(&sid, 6)));
    }
    let check = format!("/v2/Services/{service}/VerificationCheck");
    let began = Instant::now();
    let approved: Vec<bool> = futures::stream::iter(pending)
        .map(|(to, code)| {
            let app = app.clone();
            let check = check.clone();
            async move {
                let answer = app.post(&check, &[("To", &to), ("Code", &code)]).await;
                answer["status"] == "approved"
            }
        })
        .buffer_unordered(CHECK_CLIENTS)
        .collect()
        .await;
    let elapsed = began.elapsed();
    assert!(approved.iter().all(|a| *a), "every check approved");
    println!(
        "verify checks: {CHECKS} with {CHECK_CLIENTS} clients in {:.2} s: {:.0} checks/s",
        elapsed.as_secs_f64(),
        CHECKS as f64 / elapsed.as_secs_f64()
    );
    database.cleanup().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        start_to_provider().await;
        checks_per_second().await;
    });
}
