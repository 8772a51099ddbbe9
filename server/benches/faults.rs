//! `make bench`: how long smsdesk takes to route around a fault and to come back from it, on a
//! real `smsdesk` process (release build) on PostgreSQL, while a client posts one message every
//! 10 ms through its JSON API and fake Twilios answer over HTTP.
//!
//! - **Failover**: the primary starts answering every request with 503; the switch time runs
//!   until the first message reaches the fallback. The primary then recovers; the return time
//!   runs until the first message it accepts (one probe per pause, pauses doubling from 1 s, so
//!   it depends on where in a pause the primary recovered).
//! - **Database outage**: PostgreSQL's port is cut for 5 s (connections refused, open ones
//!   dropped) and restored; the recovery times run from the restore until `/readyz` answers
//!   200, until intake answers 202, and until the next message reaches Twilio.
//!
//! Each run ends by checking that every message accepted with 202 reached a Twilio exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backend::audit::Actor;
use backend::db::now_micros;
use backend::testing::TestDb;
use backend::testing::fake_twilio::{FakeTwilio, Storm};
use backend::testing::instance::{free_port, start_with, until_ready};
use backend::testing::outage::Proxy;
use serde_json::json;

/// A running `smsdesk`, killed when dropped (a failed run leaves no process behind).
struct Instance(std::process::Child);

impl Drop for Instance {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// One post: when it was sent and answered (µs), its status (0: no answer), its body.
#[derive(Clone)]
struct Post {
    sent: i64,
    answered: i64,
    status: u16,
    body: String,
}

/// Posts one message every 10 ms to `port` until stopped.
struct Client {
    posts: Arc<Mutex<Vec<Post>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    fn start(port: u16, key_id: String, secret: String) -> Client {
        let posts = Arc::new(Mutex::new(Vec::new()));
        let record = posts.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client");
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut in_flight = tokio::task::JoinSet::new();
            for n in 0u64.. {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => break,
                }
                let (http, key_id, secret, record) =
                    (http.clone(), key_id.clone(), secret.clone(), record.clone());
                in_flight.spawn(async move {
                    let body = format!("fault bench {n}");
                    let sent = now_micros();
                    let status = http
                        .post(format!("http://127.0.0.1:{port}/api/v1/messages"))
                        .basic_auth(&key_id, Some(&secret))
                        .json(&json!({ "to": format!("+1415555{:04}", n % 10_000), "body": body }))
                        .send()
                        .await
                        .map_or(0, |r| r.status().as_u16());
                    let answered = now_micros();
                    record.lock().expect("posts").push(Post {
                        sent,
                        answered,
                        status,
                        body,
                    });
                });
            }
            // The posts in flight finish (answered, or their 30 s timeout).
            in_flight.join_all().await;
        });
        Client { posts, stop, task }
    }

    /// Stops posting and waits for the answers still due.
    async fn stop(self) -> Vec<Post> {
        let Client { posts, stop, task } = self;
        let _ = stop.send(());
        task.await.expect("the client");
        posts.lock().expect("posts").clone()
    }
}

/// Every message accepted with 202 reached one of `fakes` exactly once: how long after its
/// acceptance each did (µs).
async fn each_accepted_once(posts: &[Post], fakes: &[&FakeTwilio]) -> Vec<i64> {
    let accepted: Vec<&Post> = posts.iter().filter(|p| p.status == 202).collect();
    let carried = || fakes.iter().map(|f| f.ledger().len()).sum::<usize>();
    FakeTwilio::until_any(
        fakes,
        Duration::from_secs(60),
        "every accepted message at Twilio",
        || carried() >= accepted.len(),
    )
    .await;
    let mut seen: HashMap<String, (usize, i64)> = HashMap::new();
    for created in fakes.iter().flat_map(|f| f.ledger()) {
        let entry = seen.entry(created.body).or_default();
        *entry = (entry.0 + 1, created.at);
    }
    assert_eq!(
        carried(),
        accepted.len(),
        "a message nobody accepted was sent"
    );
    accepted
        .iter()
        .map(|post| match seen.get(&post.body) {
            Some(&(1, at)) => at - post.answered,
            other => panic!("{} not sent once: {other:?}", post.body),
        })
        .collect()
}

/// The slowest of `latencies` and how many took over a second, in words.
fn late(latencies: &[i64]) -> String {
    let slowest = latencies.iter().copied().max().unwrap_or(0);
    let over = latencies.iter().filter(|&&l| l > 1_000_000).count();
    format!(
        "the slowest reached Twilio {:.1} s after it was accepted, {over} over a second (sends in doubt are looked up, then sent again at their retry, {RETRY_SECONDS} s here)",
        slowest as f64 / 1e6
    )
}

fn ms(micros: i64) -> f64 {
    micros as f64 / 1000.0
}

/// Limits far away, and a failed send retried after 5 s (60 s by default): a send in doubt when
/// the fault began is looked up and sent again at its retry.
async fn settings(database: &TestDb) {
    backend::testing::open_limits(&database.db).await;
    let mut s = backend::settings::sending(&database.db)
        .await
        .expect("settings");
    s.retries.base_delay_seconds = RETRY_SECONDS;
    backend::settings::save_sending(&database.db, &Actor::cli(), &s)
        .await
        .expect("settings");
}

const RETRY_SECONDS: u32 = 5;

async fn api_key(database: &TestDb) -> (String, String) {
    let key = backend::api_keys::create(&database.db, &Actor::cli(), "bench")
        .await
        .expect("key");
    let secret = backend::api_keys::reveal(&key.secret).to_owned();
    (key.key.id, secret)
}

async fn failover() {
    let primary = FakeTwilio::start().await;
    let fallback = FakeTwilio::start().await;
    let database = TestDb::postgres().await;
    settings(&database).await;
    let (key_id, secret) = api_key(&database).await;
    let port = free_port();
    let instance = Instance(start_with(
        env!("CARGO_BIN_EXE_smsdesk"),
        &database.url(),
        &primary.uri(),
        port,
        2,
        &[
            (
                "SMSDESK_FALLBACK_ACCOUNT_SID",
                "ACfedcba9876543210fedcba9876543210".to_owned(),
            ),
            (
                "SMSDESK_FALLBACK_AUTH_TOKEN",
                "fedcba9876543210fedcba9876543210".to_owned(),
            ),
            ("SMSDESK_FALLBACK_PHONE_NUMBER", "+15005550010".to_owned()),
            ("SMSDESK_FALLBACK_API_BASE_URL", fallback.uri()),
        ],
    ));
    until_ready(port).await;
    let client = Client::start(port, key_id, secret);
    primary.until_arrivals(200).await;

    let failed = now_micros();
    primary.storm(Some(Storm::Unavailable));
    fallback.until_arrivals(1).await;
    let switch = fallback.arrivals()[0] - failed;
    fallback.until_arrivals(300).await;

    let recovered = now_micros();
    primary.storm(None);
    FakeTwilio::until_any(
        &[&primary],
        Duration::from_secs(30),
        "the primary carries again",
        || primary.ledger().iter().any(|c| c.at >= recovered),
    )
    .await;
    let back = primary
        .ledger()
        .iter()
        .filter(|c| c.at >= recovered)
        .map(|c| c.at)
        .min()
        .expect("a message after recovery")
        - recovered;
    let refused = primary.refused();
    let posts = client.stop().await;
    let latencies = each_accepted_once(&posts, &[&primary, &fallback]).await;
    drop(instance);
    database.cleanup().await;
    let accepted = posts.iter().filter(|p| p.status == 202).count();
    println!(
        "failover: switch to the fallback in {:.0} ms after the primary failed; back to the primary {:.0} ms after it recovered ({refused} requests refused by it meanwhile); {accepted} messages each sent once, {} by the fallback; {}",
        ms(switch),
        ms(back),
        fallback.ledger().len(),
        late(&latencies)
    );
}

async fn database_outage() {
    let twilio = FakeTwilio::start().await;
    let database = TestDb::postgres().await;
    settings(&database).await;
    let (key_id, secret) = api_key(&database).await;
    let mut url = reqwest::Url::parse(&database.url()).expect("URL");
    let upstream = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().unwrap_or(5432)
    );
    let proxy = Proxy::start(
        tokio::net::lookup_host(&upstream)
            .await
            .expect("PostgreSQL's address")
            .next()
            .expect("an address"),
    )
    .await;
    url.set_host(Some("127.0.0.1")).expect("host");
    url.set_port(Some(proxy.port())).expect("port");
    let port = free_port();
    let instance = Instance(start_with(
        env!("CARGO_BIN_EXE_smsdesk"),
        url.as_str(),
        &twilio.uri(),
        port,
        2,
        &[],
    ));
    until_ready(port).await;
    let client = Client::start(port, key_id, secret);
    twilio.until_arrivals(200).await;

    let cut = now_micros();
    proxy.cut();
    // The outage itself lasts 5 s (what is measured is what follows it).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restored = now_micros();
    proxy.restore();
    let ready = until_ready(port).await - restored;
    FakeTwilio::until_any(
        &[&twilio],
        Duration::from_secs(30),
        "a message sent after the restore",
        || twilio.arrivals().iter().any(|&at| at >= restored),
    )
    .await;
    let sending = twilio
        .arrivals()
        .into_iter()
        .filter(|&at| at >= restored)
        .min()
        .expect("an arrival")
        - restored;
    twilio.until_arrivals(twilio.arrivals().len() + 100).await;
    let posts = client.stop().await;
    let intake = posts
        .iter()
        .filter(|p| p.status == 202 && p.answered >= restored)
        .map(|p| p.answered)
        .min()
        .expect("a message accepted after the restore")
        - restored;
    let refused: Vec<&Post> = posts.iter().filter(|p| p.status == 503).collect();
    let slowest_503 = refused
        .iter()
        .map(|p| p.answered - p.sent)
        .max()
        .unwrap_or(0);
    let waited = posts
        .iter()
        .filter(|p| p.status == 202 && (cut..restored).contains(&p.sent))
        .count();
    let unanswered = posts
        .iter()
        .filter(|p| p.status != 202 && p.status != 503)
        .count();
    let latencies = each_accepted_once(&posts, &[&twilio]).await;
    drop(instance);
    database.cleanup().await;
    println!(
        "database outage (5 s): after the restore /readyz 200 in {:.0} ms, intake 202 in {:.0} ms, sending in {:.0} ms; {} posts answered 503 (after waiting for the database up to {:.0} ms), {waited} posted during the outage accepted once it was back, {unanswered} otherwise; {} accepted messages each sent once; {}",
        ms(ready),
        ms(intake),
        ms(sending),
        refused.len(),
        ms(slowest_503),
        posts.iter().filter(|p| p.status == 202).count(),
        late(&latencies)
    );
}

#[tokio::main]
async fn main() {
    failover().await;
    database_outage().await;
}
