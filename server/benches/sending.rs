//! `make bench`: the sending engine's speed on this machine, SQLite, release build.
//!
//! - Intake through the JSON API: messages accepted per second with many clients at once, then
//!   latency p50/p99 at a steady 1,000 requests per second.
//! - Dispatch to a local fake Twilio (HTTP) with the limits set high: messages per second, and in
//!   the same run the raw rate of a plain HTTP client posting the same forms to the same fake, so
//!   the ratio says what the engine itself costs.
//! - Twilio's incoming-message webhook, signed: webhooks per second, p50/p99.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::audit::Actor;
use backend::db::now_micros;
use backend::testing::TestDb;
use backend::testing::fake_twilio::FakeTwilio;
use backend::twilio::{Sender, TwilioClient, TwilioConfig};
use backend::worker::{Provider, Worker, WorkerConfig};
use futures::StreamExt;
use secrecy::{SecretBox, SecretString};
use server::settings::Settings;
use server::startup::Application;

const INTAKE_MESSAGES: usize = 20_000;
const INTAKE_CLIENTS: usize = 32;
const PACED_RATE: u64 = 1_000;
const PACED_SECONDS: u64 = 5;
const DISPATCH_MESSAGES: usize = 20_000;
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn number(n: usize) -> String {
    format!("+1415555{:04}", 2_000 + n % 8_000)
}

/// The settings of a server on `database` for a bench: simulating, no worker.
fn bench_settings(database: &TestDb) -> Settings {
    Settings {
        database_url: database.url(),
        listen: "127.0.0.1:0".parse().expect("address"),
        public_url: None,
        behind_proxy: false,
        data_key: SecretBox::new(Box::new([7u8; 32])),
        session_secret: SecretBox::new(Box::new([9u8; 64])),
        admin_email: "admin@bench.test".into(),
        admin_password: Some(SecretString::from("bench admin password")),
        twilio: None,
        fallback: None,
        account_sid: None,
        auth_token: None,
        phone_number: None,
        simulator_seed: Some(1),
        send_timeout: Duration::from_secs(15),
        worker: false,
        request_timeout: std::time::Duration::from_secs(30),
        metrics_token: None,
        alert_webhook_secret: None,
        webhook_shared_key: None,
    }
}

async fn intake() {
    let database = TestDb::sqlite().await;
    let settings = bench_settings(&database);
    let app = Application::build(settings).await.expect("smsdesk builds");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until(std::future::pending()));
    let key = backend::api_keys::create(&database.db, &Actor::cli(), "bench")
        .await
        .expect("key");
    let (id, secret) = (
        key.key.id.clone(),
        backend::api_keys::reveal(&key.secret).to_owned(),
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(INTAKE_CLIENTS)
        .build()
        .expect("client");
    let post = |n: usize| {
        let http = http.clone();
        let url = format!("{base}/api/v1/messages");
        let (id, secret) = (id.clone(), secret.clone());
        async move {
            let started = Instant::now();
            let r = http
                .post(url)
                .basic_auth(id, Some(secret))
                .json(&serde_json::json!({ "to": number(n), "body": format!("Shipment SS-{n} picked up") }))
                .send()
                .await
                .expect("POST");
            assert_eq!(r.status().as_u16(), 202);
            started.elapsed()
        }
    };
    // Warm the pool.
    futures::stream::iter(0..500)
        .map(post)
        .buffer_unordered(INTAKE_CLIENTS)
        .collect::<Vec<_>>()
        .await;
    let started = Instant::now();
    futures::stream::iter(0..INTAKE_MESSAGES)
        .map(post)
        .buffer_unordered(INTAKE_CLIENTS)
        .collect::<Vec<_>>()
        .await;
    let rate = INTAKE_MESSAGES as f64 / started.elapsed().as_secs_f64();
    println!(
        "intake, JSON API, {INTAKE_CLIENTS} clients: {rate:.0} messages/s ({INTAKE_MESSAGES} messages)"
    );
    // The same client, the same server, the same run: `/healthz` (no database, no checks) is
    // what HTTP alone allows here; intake's share of it is the figure that does not depend on
    // the machine.
    let health = |_| {
        let http = http.clone();
        let url = format!("{base}/healthz");
        async move {
            let r = http.get(url).send().await.expect("GET");
            assert_eq!(r.status().as_u16(), 200);
        }
    };
    let started = Instant::now();
    futures::stream::iter(0..INTAKE_MESSAGES)
        .map(health)
        .buffer_unordered(INTAKE_CLIENTS)
        .collect::<Vec<_>>()
        .await;
    let health_rate = INTAKE_MESSAGES as f64 / started.elapsed().as_secs_f64();
    println!(
        "  /healthz with the same client: {health_rate:.0} requests/s; intake is {:.0} % of it (goal >= 50 %)",
        100.0 * rate / health_rate
    );

    // Open loop: one request every millisecond, whatever the answers do.
    let total = (PACED_RATE * PACED_SECONDS) as usize;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        let at = start + Duration::from_micros(n as u64 * 1_000_000 / PACED_RATE);
        let post = post(n);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            post.await
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.push(t.await.expect("task"));
    }
    latencies.sort();
    println!(
        "intake at {PACED_RATE} requests/s for {PACED_SECONDS} s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().expect("some").as_secs_f64() * 1e3,
    );

    // The same again with budgets on (a daily hard stop and a monthly one, far away): what the
    // reservation in intake's transaction costs.
    for period in [domain::budget::Period::Day, domain::budget::Period::Month] {
        backend::budgets::set(
            &database.db,
            &Actor::cli(),
            &domain::budget::Budget {
                period,
                category: None,
                amount_micros: domain::budget::MAX_AMOUNT_MICROS,
                warn_percents: vec![50, 80, 100],
                hard_stop: true,
            },
            backend::db::now_micros(),
        )
        .await
        .expect("db")
        .expect("budget");
    }
    let started = Instant::now();
    futures::stream::iter(2 * INTAKE_MESSAGES..3 * INTAKE_MESSAGES)
        .map(post)
        .buffer_unordered(INTAKE_CLIENTS)
        .collect::<Vec<_>>()
        .await;
    let budgeted = INTAKE_MESSAGES as f64 / started.elapsed().as_secs_f64();
    println!(
        "intake with two hard-stop budgets: {budgeted:.0} messages/s, {:.0} % of the rate without budgets",
        100.0 * budgeted / rate
    );
}

async fn dispatch() {
    let database = TestDb::sqlite().await;
    let db = database.db.clone();
    backend::testing::open_limits(&db).await;
    let key = backend::crypto::DataKey::new(&[7u8; 32]);
    let s = backend::settings::sending(&db).await.expect("settings");
    let submissions: Vec<backend::intake::Submission> = (0..DISPATCH_MESSAGES)
        .map(|n| backend::intake::Submission {
            to: number(n),
            content: backend::intake::Content::Body(format!("Shipment SS-{n} picked up")),
            category: None,
            sender: None,
            validity_seconds: None,
        })
        .collect();
    let intake = backend::intake::Intake::new(
        db.clone(),
        key.clone(),
        std::sync::Arc::new(tokio::sync::Notify::new()),
    );
    let source = backend::outbox::Source::ApiKey("SKbench".into());
    for chunk in submissions.chunks(1_000) {
        let written = intake
            .submit(&s, &source, chunk.to_vec(), now_micros())
            .await
            .expect("db");
        assert!(written.iter().all(Result::is_ok), "every message is valid");
    }

    let fake = FakeTwilio::start().await;
    let client = TwilioClient::new(TwilioConfig {
        base_url: fake.uri(),
        account_sid: ACCOUNT.into(),
        username: ACCOUNT.into(),
        password: SecretString::from("token"),
        timeout: Duration::from_secs(10),
    })
    .expect("client");
    let config = WorkerConfig::new(Sender::From("+15005550006".into()), None);
    let concurrency = config.concurrency;
    // As the server runs them: WORKER_LOOPS loops, claims taking turns.
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let loops: Vec<_> = (0..server::sending::WORKER_LOOPS)
        .map(|_| {
            let worker = Worker::new(
                db.clone(),
                key.clone(),
                Provider::Twilio(client.clone()),
                config.clone(),
            );
            let sent = sent.clone();
            tokio::spawn(async move {
                use std::sync::atomic::Ordering::Relaxed;
                while sent.load(Relaxed) < DISPATCH_MESSAGES {
                    let step = worker.try_execute_task(now_micros()).await.expect("step");
                    assert_eq!(step.failed, 0);
                    sent.fetch_add(step.sent, Relaxed);
                    if step.claimed == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for l in loops {
        l.await.expect("worker loop");
    }
    let elapsed = started.elapsed();
    let dispatch_rate = DISPATCH_MESSAGES as f64 / elapsed.as_secs_f64();
    assert_eq!(fake.ledger().len(), DISPATCH_MESSAGES);

    // The same fake, the same forms, a plain client with the same concurrency.
    let http = reqwest::Client::new();
    let url = Arc::new(format!(
        "{}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
        fake.uri()
    ));
    let started = Instant::now();
    futures::stream::iter(0..DISPATCH_MESSAGES)
        .map(|n| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let r = http
                    .post(url.as_str())
                    .basic_auth(ACCOUNT, Some("token"))
                    .form(&[
                        ("To", number(n)),
                        ("From", "+15005550006".into()),
                        ("Body", format!("Shipment SS-{n} picked up")),
                    ])
                    .send()
                    .await
                    .expect("POST");
                assert_eq!(r.status().as_u16(), 201);
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let raw_rate = DISPATCH_MESSAGES as f64 / started.elapsed().as_secs_f64();
    println!(
        "dispatch to a local fake Twilio: {dispatch_rate:.0} messages/s; plain HTTP client, same fake: {raw_rate:.0} requests/s; ratio {:.0} %",
        100.0 * dispatch_rate / raw_rate
    );
}

const INBOUND_MESSAGES: usize = 20_000;
const AUTH_TOKEN: &str = "bench-auth-token-0123456789abcdef";

/// Signed incoming-message webhooks per second (Twilio's parameters, signed with the auth token
/// as Twilio signs them; signing is done beforehand), with 32 clients at once: one in ten a STOP
/// or START (a consent ledger entry), the rest replies for the inbox.
async fn inbound() {
    let database = TestDb::sqlite().await;
    let mut settings = bench_settings(&database);
    settings.auth_token = Some(SecretString::from(AUTH_TOKEN));
    let app = Application::build(settings).await.expect("smsdesk builds");
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until(std::future::pending()));
    let url = format!("{base}{}", server::sending::INBOUND_PATH);
    let token = domain::signature::AuthToken::new(AUTH_TOKEN).expect("token");
    let forms: Vec<(String, String)> = (0..INBOUND_MESSAGES + 500)
        .map(|n| {
            let body = match n % 20 {
                0 => "STOP".to_owned(),
                10 => "START".to_owned(),
                _ => format!("Running {} min late, SS-{n}", n % 40),
            };
            let params = vec![
                ("MessageSid", format!("SM{n:032x}")),
                ("AccountSid", ACCOUNT.to_owned()),
                ("From", number(n)),
                ("To", "+15005550006".to_owned()),
                ("Body", body),
                ("NumMedia", "0".to_owned()),
                ("NumSegments", "1".to_owned()),
                ("ApiVersion", "2010-04-01".to_owned()),
            ];
            let signature = domain::signature::sign(&token, &url, &params);
            (
                serde_urlencoded::to_string(&params).expect("form"),
                signature,
            )
        })
        .collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(INTAKE_CLIENTS)
        .build()
        .expect("client");
    let post = |(form, signature): (String, String)| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let started = Instant::now();
            let r = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", signature)
                .body(form)
                .send()
                .await
                .expect("POST");
            assert_eq!(r.status().as_u16(), 200);
            started.elapsed()
        }
    };
    let mut forms = forms.into_iter();
    // Warm the pool.
    futures::stream::iter(forms.by_ref().take(500))
        .map(post)
        .buffer_unordered(INTAKE_CLIENTS)
        .collect::<Vec<_>>()
        .await;
    let started = Instant::now();
    let mut latencies = futures::stream::iter(forms)
        .map(post)
        .buffer_unordered(INTAKE_CLIENTS)
        .collect::<Vec<_>>()
        .await;
    let rate = INBOUND_MESSAGES as f64 / started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    println!(
        "inbound webhooks, signed, {INTAKE_CLIENTS} clients: {rate:.0} webhooks/s ({INBOUND_MESSAGES}; p50 {:.1} ms, p99 {:.1} ms)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // SMSDESK_BENCH=intake, =dispatch or =inbound runs one part (for profiling); all by default.
    let only = std::env::var("SMSDESK_BENCH").unwrap_or_default();
    runtime.block_on(async {
        if only.is_empty() || only == "intake" {
            intake().await;
        }
        if only.is_empty() || only == "dispatch" {
            dispatch().await;
        }
        if only.is_empty() || only == "inbound" {
            inbound().await;
        }
    });
}
