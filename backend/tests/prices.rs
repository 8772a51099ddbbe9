//! Actual prices: from a status callback, and from a later fetch of the message (Twilio often
//! fills `price` minutes after the message left), through a fake Twilio over HTTP and through
//! the simulator; a price in another currency is not mixed in.

mod common;

use std::sync::Arc;
use std::time::Duration;

use backend::crypto::DataKey;
use backend::db::{Db, now_micros};
use backend::intake::{Content, Intake, Submission};
use backend::outbox::{self, MessageView, Source};
use backend::settings::{self, SendingSettings};
use backend::simulator::Simulator;
use backend::testing::fake_twilio::FakeTwilio;
use backend::twilio::{Sender, TwilioClient, TwilioConfig};
use backend::worker::{Callback, Provider, Worker, WorkerConfig};
use domain::status::MessageStatus;
use secrecy::SecretString;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const MINUTE: i64 = 60_000_000;

fn key() -> DataKey {
    DataKey::new(&[7u8; 32])
}

fn open_settings() -> SendingSettings {
    let mut s = SendingSettings::default();
    s.limits.per_second = 10_000;
    s.limits.per_minute = 100_000;
    s.limits.per_hour = 1_000_000;
    s.pace.long_code = 10_000;
    s
}

fn twilio(fake: &FakeTwilio) -> Provider {
    Provider::Twilio(
        TwilioClient::new(TwilioConfig {
            base_url: fake.uri(),
            account_sid: ACCOUNT.to_owned(),
            username: ACCOUNT.to_owned(),
            password: SecretString::from("token"),
            timeout: Duration::from_secs(2),
        })
        .expect("client"),
    )
}

fn worker(db: &Db, provider: Provider) -> Worker {
    // Nothing listens there: the simulator's callbacks are refused at once, its ledger moves on.
    let config = WorkerConfig::new(
        Sender::From("+15005550006".to_owned()),
        Some("http://127.0.0.1:9/webhooks/twilio/status".to_owned()),
    );
    Worker::new(db.clone(), key(), provider, config)
}

async fn send(db: &Db, to: &str, body: &str, now: i64) -> MessageView {
    settings::save_sending(db, &backend::audit::Actor::system(), &open_settings())
        .await
        .expect("settings");
    let s = settings::sending(db).await.expect("settings");
    Intake::new(db.clone(), key(), Arc::new(tokio::sync::Notify::new()))
        .submit(
            &s,
            &Source::User("dispatch@safeshipper.example".to_owned()),
            vec![Submission {
                to: to.to_owned(),
                content: Content::Body(body.to_owned()),
                category: None,
                sender: None,
                validity_seconds: None,
            }],
            now,
        )
        .await
        .expect("db")
        .pop()
        .expect("one")
        .expect("accepted")
}

/// One run of the late-price job at `at` (one batch), through the primary only.
async fn fetch_at(db: &Db, provider: &Provider, at: i64) -> backend::late_prices::Fetched {
    backend::late_prices::fetch(db, provider, None, at)
        .await
        .expect("db")
}

async fn price_of(db: &Db, sid: &str) -> Option<i64> {
    outbox::find(db, &key(), sid)
        .await
        .expect("db")
        .expect("found")
        .price_micros
}

async fn prices_come_from_callbacks_and_from_a_late_fetch(db: Db) {
    let fake = FakeTwilio::start().await;
    let provider = twilio(&fake);
    let t0 = now_micros();
    let by_callback = send(&db, "+14155552671", "Depot 3 at 9", t0).await;
    let by_fetch = send(&db, "+14155552672", &"a".repeat(161), t0).await;
    let in_euros = send(&db, "+14155552673", "Depot 4 at 10", t0).await;
    let w = worker(&db, provider.clone());
    assert_eq!(w.try_execute_task(t0).await.expect("step").sent, 3);
    let twilio_sid = |m: &MessageView| {
        let db = db.clone();
        let sid = m.sid.clone();
        async move {
            outbox::find(&db, &key(), &sid)
                .await
                .expect("db")
                .expect("found")
                .provider_sid
                .expect("sent")
        }
    };
    // A callback that carries a price (Twilio's older webhooks and some channels do).
    backend::worker::record_callback(
        &db,
        &key(),
        &Callback {
            sid: twilio_sid(&by_callback).await,
            status: MessageStatus::Delivered,
            error_code: None,
            error_message: None,
            price_micros: Some(8_300),
        },
        t0,
    )
    .await
    .expect("recorded");
    assert_eq!(price_of(&db, &by_callback.sid).await, Some(8_300));
    // Too early: nothing is asked before the message has had time to settle.
    let early = fetch_at(&db, &provider, t0 + MINUTE).await;
    assert_eq!(early.asked, 0);
    // Twilio fills the others' prices later; one in euros.
    fake.set_price(&twilio_sid(&by_fetch).await, "-0.01660", "USD");
    fake.set_price(&twilio_sid(&in_euros).await, "-0.00770", "EUR");
    let later = fetch_at(&db, &provider, t0 + 3 * MINUTE).await;
    assert_eq!((later.asked, later.priced), (2, 1));
    assert_eq!(price_of(&db, &by_fetch.sid).await, Some(16_600));
    assert_eq!(
        price_of(&db, &in_euros.sid).await,
        None,
        "never mixed with dollars"
    );
    // Asked at most once an hour: a minute later nothing is asked again.
    let again = fetch_at(&db, &provider, t0 + 4 * MINUTE).await;
    assert_eq!(again.asked, 0);
    // The reported prices reach the totals the spend page reads.
    let day = t0 - t0.rem_euclid(86_400_000_000);
    let rows = backend::spend::report(
        &db,
        backend::spend::Group::Country,
        false,
        day,
        day + 86_400_000_000,
    )
    .await
    .expect("db");
    assert_eq!(rows[0].key, "US");
    assert_eq!(rows[0].figures.actual_micros, 8_300 + 16_600);
    assert_eq!(rows[0].figures.estimated_micros, 8_300 * 4);
}
on_both!(prices_come_from_callbacks_and_from_a_late_fetch);

async fn the_simulator_charges_the_price_table(db: Db) {
    let sim = Arc::new(Simulator::new(
        ACCOUNT,
        domain::signature::AuthToken::new("sim-token").expect("token"),
        Some(7),
    ));
    let provider = Provider::Simulator(sim.clone());
    let t0 = now_micros();
    let m = send(&db, "+14155552671", &"b".repeat(200), t0).await;
    let w = worker(&db, provider.clone());
    assert_eq!(w.try_execute_task(t0).await.expect("step").sent, 1);
    // Not priced until it has left (the simulator posts "sent" after its delay).
    sim.post_due(t0 + 10 * MINUTE).await;
    let fetched = fetch_at(&db, &provider, t0 + 10 * MINUTE).await;
    assert_eq!((fetched.asked, fetched.priced), (1, 1));
    // Two segments at the US price.
    assert_eq!(price_of(&db, &m.sid).await, Some(16_600));
}
on_both!(the_simulator_charges_the_price_table);

/// Sends `n` messages (at `t0`, to distinct numbers) through the fake; their Twilio sids.
async fn send_many(db: &Db, fake: &FakeTwilio, n: usize, t0: i64) -> Vec<String> {
    let provider = twilio(fake);
    let mut views = Vec::with_capacity(n);
    for i in 0..n {
        views.push(send(db, &format!("+1415555{:04}", 1000 + i), "Depot 5 at 11", t0).await);
    }
    let w = worker(db, provider);
    let mut sent = 0;
    while sent < n {
        let step = w.try_execute_task(t0).await.expect("step").sent;
        assert!(step > 0, "the worker sent nothing with {sent} of {n} out");
        sent += step;
    }
    let mut sids = Vec::with_capacity(n);
    for v in &views {
        sids.push(
            outbox::find(db, &key(), &v.sid)
                .await
                .expect("db")
                .expect("found")
                .provider_sid
                .expect("sent"),
        );
    }
    sids
}

async fn a_run_prices_a_busy_minute_and_forgets_what_twilio_deleted(db: Db) {
    let fake = FakeTwilio::start().await;
    let provider = twilio(&fake);
    let t0 = now_micros();
    // More than the old 100 a run: a minute of 4 messages a second.
    let sids = send_many(&db, &fake, 240, t0).await;
    for sid in &sids[..238] {
        fake.set_price(sid, "-0.00830", "USD");
    }
    // Two Twilio no longer holds (deleted through its API, or redacted).
    fake.forget(&sids[238]);
    fake.forget(&sids[239]);
    let run = fetch_at(&db, &provider, t0 + 3 * MINUTE).await;
    assert_eq!(
        run,
        backend::late_prices::Fetched {
            asked: 240,
            priced: 238,
            gone: 2,
            skipped: 0
        }
    );
    assert_eq!(fake.fetches().await, 240, "each asked about once");
    // Two hours on, the two gone ones are not asked about again (nothing else is left).
    let later = fetch_at(&db, &provider, t0 + 123 * MINUTE).await;
    assert_eq!(later, backend::late_prices::Fetched::default());
    assert_eq!(fake.fetches().await, 240);
    // They stay on the spend page's list of unpriced messages.
    let unpriced = backend::spend::unpriced(&db, t0 - MINUTE, t0 + 2 * 24 * 60 * MINUTE, 10)
        .await
        .expect("db");
    assert_eq!(unpriced.len(), 2);
}
on_both!(a_run_prices_a_busy_minute_and_forgets_what_twilio_deleted);

async fn a_run_stops_asking_when_twilio_stops_answering(db: Db) {
    use backend::testing::fake_twilio::Storm;
    let fake = FakeTwilio::start().await;
    let provider = twilio(&fake);
    let t0 = now_micros();
    let sids = send_many(&db, &fake, 60, t0).await;
    for sid in &sids {
        fake.set_price(sid, "-0.00830", "USD");
    }
    fake.storm(Some(Storm::Unavailable));
    let stormy = fetch_at(&db, &provider, t0 + 3 * MINUTE).await;
    // Five failures in a row stop it; those already under way (ten at a time) finish.
    assert_eq!(stormy.priced, 0);
    assert!(
        (5..=15).contains(&stormy.asked),
        "asked {} during the storm",
        stormy.asked
    );
    assert_eq!(stormy.asked + stormy.skipped, 60);
    // Twilio answers again: the next run (a minute later) asks the ones it skipped; the failed
    // ones wait for their hour.
    fake.storm(None);
    let next = fetch_at(&db, &provider, t0 + 4 * MINUTE).await;
    assert_eq!((next.asked, next.priced), (stormy.skipped, stormy.skipped));
    let hour = fetch_at(&db, &provider, t0 + 64 * MINUTE).await;
    assert_eq!((hour.asked, hour.priced), (stormy.asked, stormy.asked));
}
on_both!(a_run_stops_asking_when_twilio_stops_answering);

async fn a_run_catches_up_batch_after_batch_until_none_is_full(db: Db) {
    let fake = FakeTwilio::start().await;
    let provider = twilio(&fake);
    let t0 = now_micros();
    let sids = send_many(&db, &fake, 130, t0).await;
    for sid in &sids {
        fake.set_price(sid, "-0.00830", "USD");
    }
    // Batches of 50, at most two: 100 priced, the rest left for the next run.
    let capped = backend::late_prices::catch_up(&db, &provider, None, t0 + 3 * MINUTE, 50, 2)
        .await
        .expect("db");
    assert_eq!((capped.asked, capped.priced), (100, 100));
    // Ten allowed: the third batch holds 30 (not full), and the run ends there.
    let rest = backend::late_prices::catch_up(&db, &provider, None, t0 + 4 * MINUTE, 50, 10)
        .await
        .expect("db");
    assert_eq!((rest.asked, rest.priced), (30, 30));
    assert_eq!(fake.fetches().await, 130, "each asked about once");
}
on_both!(a_run_catches_up_batch_after_batch_until_none_is_full);
