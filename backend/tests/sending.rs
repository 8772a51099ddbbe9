//! The sending engine against a real database (SQLite and PostgreSQL) and a fake Twilio over real
//! HTTP: intake checks, priority order, limits, retry classes, in-doubt resolution, validity,
//! callbacks, idempotency. The worker is driven by hand (`try_execute_task` with a chosen time):
//! nothing here sleeps to wait for work.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backend::crypto::DataKey;
use backend::db::{Db, now_micros};
use backend::intake::{Content, Intake, RefusalCode, Submission};
use backend::outbox::{self, Idempotency, MessageState, Source};
use backend::settings::{self, SendingSettings};
use backend::simulator::Simulator;
use backend::testing::fake_twilio::{FakeTwilio, Script, Storm};
use backend::twilio::{NewMessage, Sender, TwilioClient, TwilioConfig};
use backend::worker::breaker::Breaker;
use backend::worker::{Callback, CallbackOutcome, Fallback, Provider, Worker, WorkerConfig};
use backend::{audit, on_db};
use domain::status::MessageStatus;
use domain::template::Category;
use secrecy::SecretString;

const SECOND: i64 = 1_000_000;
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const FROM: &str = "+15005550006";

fn key() -> DataKey {
    DataKey::new(&[7u8; 32])
}

/// A US number that differs by `n`.
fn number(n: u32) -> String {
    format!("+1415555{:04}", 2000 + n)
}

fn client(fake: &FakeTwilio, timeout: Duration) -> TwilioClient {
    TwilioClient::new(TwilioConfig {
        base_url: fake.uri(),
        account_sid: ACCOUNT.to_owned(),
        username: ACCOUNT.to_owned(),
        password: SecretString::from("token"),
        timeout,
    })
    .expect("client")
}

fn worker(db: &Db, fake: &FakeTwilio) -> Worker {
    let mut config = WorkerConfig::new(
        Sender::From(FROM.to_owned()),
        Some("https://sms.example/webhooks/twilio/status".to_owned()),
    );
    config.lease = Duration::from_secs(30);
    config.start_window = Duration::from_secs(10);
    Worker::new(
        db.clone(),
        key(),
        Provider::Twilio(client(fake, Duration::from_millis(400))),
        config,
    )
}

/// Settings with every limit far away, so a test sets only the one it checks.
fn open_settings() -> SendingSettings {
    let mut s = SendingSettings::default();
    s.limits.per_second = 10_000;
    s.limits.per_minute = 100_000;
    s.limits.per_hour = 1_000_000;
    s.limits.per_recipient_per_hour = 1_000;
    s.limits.per_recipient_per_day = 1_000;
    s.pace.long_code = 10_000;
    s
}

async fn save(db: &Db, s: &SendingSettings) {
    settings::save_sending(db, &audit::Actor::system(), s)
        .await
        .expect("settings saved");
}

fn body_to(to: &str, body: &str, category: Option<Category>) -> Submission {
    Submission {
        to: to.to_owned(),
        content: Content::Body(body.to_owned()),
        category,
        sender: None,
        validity_seconds: None,
    }
}

fn intake(db: &Db) -> Intake {
    Intake::new(db.clone(), key(), Arc::new(tokio::sync::Notify::new()))
}

/// A console user: may give free text emergency priority.
fn dispatcher() -> Source {
    Source::User("dispatch@safeshipper.example".to_owned())
}

/// Checks and writes one submission through intake; panics on refusal.
async fn submit(db: &Db, submission: Submission, now: i64) -> outbox::MessageView {
    let s = settings::sending(db).await.expect("settings");
    intake(db)
        .submit(&s, &dispatcher(), vec![submission], now)
        .await
        .expect("db")
        .pop()
        .expect("one")
        .expect("accepted")
}

async fn refusal_from(
    db: &Db,
    source: &Source,
    submission: Submission,
) -> backend::intake::Refusal {
    let s = settings::sending(db).await.expect("settings");
    intake(db)
        .check(&s, source, vec![submission])
        .await
        .expect("db")
        .pop()
        .expect("one")
        .expect_err("refused")
}

async fn refusal(db: &Db, submission: Submission) -> backend::intake::Refusal {
    refusal_from(db, &dispatcher(), submission).await
}

async fn view(db: &Db, sid: &str) -> outbox::MessageView {
    outbox::find(db, &key(), sid)
        .await
        .expect("db")
        .expect("found")
}

async fn intake_refuses_with_a_clear_reason_for_each_check(db: Db) {
    let cases = [
        (body_to("", "hi", None), RefusalCode::MissingTo),
        (body_to("+1 415 55", "hi", None), RefusalCode::InvalidNumber),
        (
            body_to("415-555-2671x", "hi", None),
            RefusalCode::InvalidNumber,
        ),
        (
            body_to("+44 7400 123456", "hi", None),
            RefusalCode::CountryNotAllowed,
        ),
        (body_to(&number(1), "  ", None), RefusalCode::EmptyBody),
        (
            body_to(&number(1), &"a".repeat(1_601), None),
            RefusalCode::BodyTooLong,
        ),
    ];
    for (submission, code) in cases {
        let r = refusal(&db, submission.clone()).await;
        assert_eq!(r.code, code, "{submission:?}: {}", r.message);
        assert!(!r.message.is_empty());
    }
    let geo = refusal(&db, body_to("+44 7400 123456", "hi", None)).await;
    assert_eq!(geo.twilio_code, Some(21408));
    assert!(geo.message.contains("GB"), "{}", geo.message);

    let template = |key: &str, vars: &[(&str, &str)]| Submission {
        to: number(1),
        content: Content::Template {
            key: key.to_owned(),
            variables: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        },
        category: None,
        sender: None,
        validity_seconds: None,
    };
    backend::templates::seed_defaults(&db)
        .await
        .expect("seeded");
    let stored = backend::templates::list(&db).await.expect("templates");
    let first = &stored[0].template;
    let r = refusal(&db, template("no_such_template", &[])).await;
    assert_eq!(r.code, RefusalCode::UnknownTemplate);
    let r = refusal(&db, template(first.key().as_str(), &[("nope", "x")])).await;
    assert_eq!(r.code, RefusalCode::UnknownVariable);
    assert!(r.message.contains("nope"), "{}", r.message);
    let r = refusal(&db, template(first.key().as_str(), &[])).await;
    assert_eq!(r.code, RefusalCode::TemplateValues);

    let mut bad_sender = body_to(&number(1), "hi", None);
    bad_sender.sender = Some("+14155550000".into());
    assert_eq!(
        refusal(&db, bad_sender).await.code,
        RefusalCode::InvalidSender
    );
    let mut bad_validity = body_to(&number(1), "hi", None);
    bad_validity.validity_seconds = Some(36_001);
    assert_eq!(
        refusal(&db, bad_validity).await.code,
        RefusalCode::InvalidValidity
    );
}
on_both!(intake_refuses_with_a_clear_reason_for_each_check);

async fn an_accepted_message_is_in_the_outbox_with_its_first_event(db: Db) {
    let now = now_micros();
    let accepted = submit(
        &db,
        body_to("(415) 555-2671", "Shipment SS-1 picked up", None),
        now,
    )
    .await;
    let m = view(&db, &accepted.sid).await;
    assert_eq!(m.to, "+14155552671");
    assert_eq!(m.to_masked, "+1 415 *** **71");
    assert_eq!(m.status, MessageStatus::Accepted);
    assert_eq!(
        (m.state.as_str(), m.segments, m.encoding.as_str()),
        ("waiting", 1, "GSM-7")
    );
    let events = outbox::events(&db, m.id).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "accepted");
    // Stored encrypted: the number is nowhere in the row as text.
    let raw: String = on_db!(&db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT to_encrypted || to_hash || to_masked FROM messages"
    )
    .fetch_one(pool)
    .await
    .expect("row"));
    assert!(!raw.contains("4155552671"));
}
on_both!(an_accepted_message_is_in_the_outbox_with_its_first_event);

async fn every_message_carries_its_estimate_from_the_price_table(db: Db) {
    use domain::money::Money;
    use domain::pricing::SegmentPrice;
    use domain::sending::SenderKind;
    let mut s = open_settings();
    s.extra_senders.push("+18885550100".to_owned());
    s.prices = vec![
        SegmentPrice {
            country: "US".into(),
            kind: None,
            per_segment: Money::from_micros(8_300),
        },
        SegmentPrice {
            country: "US".into(),
            kind: Some(SenderKind::TollFree),
            per_segment: Money::from_micros(9_000),
        },
    ];
    save(&db, &s).await;
    let now = now_micros();
    let estimate = |m: &outbox::MessageView| (m.segments, m.estimated_micros);
    // One GSM-7 segment: the US price.
    let one = submit(&db, body_to("+14155552671", "Depot 3 at 9", None), now).await;
    assert_eq!(estimate(&one), (1, Some(8_300)));
    // 161 GSM-7 characters are two segments of 153: twice the price.
    let long = submit(&db, body_to("+14155552671", &"a".repeat(161), None), now).await;
    assert_eq!(estimate(&long), (2, Some(16_600)));
    // One character outside GSM-7 makes it UCS-2: 71 characters are two segments of 67.
    let ucs2 = format!("{}é…✓", "b".repeat(68));
    let wide = submit(&db, body_to("+14155552671", &ucs2, None), now).await;
    assert_eq!(
        (wide.encoding.as_str(), estimate(&wide)),
        ("UCS-2", (2, Some(16_600)))
    );
    // A toll-free sender has its own row; a country without a price has no estimate.
    let mut from_toll_free = body_to("+14155552671", "Depot 3 at 9", None);
    from_toll_free.sender = Some("+18885550100".to_owned());
    let toll_free = submit(&db, from_toll_free, now).await;
    assert_eq!(estimate(&toll_free), (1, Some(9_000)));
    let canada = submit(&db, body_to("+16045550123", "Depot 3 at 9", None), now).await;
    assert_eq!(estimate(&canada), (1, None));
    // As stored, not only as answered.
    assert_eq!(view(&db, &long.sid).await.estimated_micros, Some(16_600));
    assert_eq!(view(&db, &canada.sid).await.estimated_micros, None);
}
on_both!(every_message_carries_its_estimate_from_the_price_table);

async fn emergency_goes_first_then_two_factor_then_the_rest_in_order(db: Db) {
    save(&db, &open_settings()).await;
    let fake = FakeTwilio::start().await;
    let now = now_micros();
    let order = [
        (1, None),
        (2, Some(Category::Shipment)),
        (3, Some(Category::TwoFactor)),
        (4, Some(Category::Emergency)),
        (5, Some(Category::Driver)),
        (6, Some(Category::Emergency)),
        (7, Some(Category::TwoFactor)),
    ];
    for (n, category) in order {
        submit(
            &db,
            body_to(&number(n), &format!("message {n}"), category),
            now,
        )
        .await;
    }
    let mut w = worker(&db, &fake);
    // One at a time, so the order of requests is the order of claims.
    let mut config = WorkerConfig::new(Sender::From(FROM.to_owned()), None);
    config.batch_size = 1;
    w = Worker::new(db.clone(), key(), w.provider().clone(), config);
    for _ in 0..order.len() {
        assert_eq!(w.try_execute_task(now).await.expect("step").sent, 1);
    }
    let sent: Vec<String> = fake.ledger().into_iter().map(|c| c.body).collect();
    assert_eq!(
        sent,
        [
            "message 4",
            "message 6",
            "message 3",
            "message 7",
            "message 1",
            "message 2",
            "message 5"
        ]
    );
    assert_eq!(w.try_execute_task(now).await.expect("step").claimed, 0);
}
on_both!(emergency_goes_first_then_two_factor_then_the_rest_in_order);

async fn global_limits_are_never_exceeded(db: Db) {
    let mut s = open_settings();
    s.limits.per_second = 2;
    s.limits.per_minute = 3;
    s.limits.per_hour = 5;
    // Windows exactly as named here; the margin's own test is below.
    s.limits.network_margin_ms = 0;
    save(&db, &s).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    for n in 0..8 {
        submit(&db, body_to(&number(n), &format!("m{n}"), None), t0).await;
    }
    let w = worker(&db, &fake);
    // (time offset, messages claimed): 2 per second, 3 per minute, 5 per hour.
    let mut sent_at: Vec<i64> = Vec::new();
    let plan = [
        (0, 2),
        (0, 0),
        (SECOND / 2, 0),
        (SECOND, 1),
        (2 * SECOND, 0),
        (59 * SECOND, 0),
        (60 * SECOND, 2),
        (61 * SECOND, 0),
        (3_600 * SECOND, 2),
        (3_601 * SECOND, 1),
    ];
    for (offset, expected) in plan {
        let step = w.try_execute_task(t0 + offset).await.expect("step");
        assert_eq!(step.claimed, expected, "at +{offset} µs");
        sent_at.extend(std::iter::repeat_n(t0 + offset, step.claimed));
        if step.claimed == 0 {
            let next = step.next_due.expect("messages wait");
            assert!(next > t0 + offset, "the next due time is in the future");
        }
    }
    assert_eq!(fake.ledger().len(), sent_at.len());
    for (limit, window) in [(2, SECOND), (3, 60 * SECOND), (5, 3_600 * SECOND)] {
        for &start in &sent_at {
            let inside = sent_at
                .iter()
                .filter(|&&t| t >= start && t < start + window)
                .count();
            assert!(inside <= limit, "{inside} sends in a window of {window} µs");
        }
    }
}
on_both!(global_limits_are_never_exceeded);

async fn recipient_limits_defer_and_emergency_is_exempt(db: Db) {
    let mut s = open_settings();
    s.limits.per_recipient_per_hour = 3;
    s.limits.per_recipient_per_day = 4;
    save(&db, &s).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    let to = number(9);
    let mut sids = Vec::new();
    for n in 0..5 {
        sids.push(
            submit(&db, body_to(&to, &format!("update {n}"), None), t0)
                .await
                .sid,
        );
    }
    let emergency = submit(
        &db,
        body_to(&to, "EVACUATE depot 3", Some(Category::Emergency)),
        t0,
    )
    .await;
    let w = worker(&db, &fake);
    let step = w.try_execute_task(t0).await.expect("step");
    assert_eq!(
        (step.claimed, step.deferred),
        (4, 2),
        "3 updates and the emergency"
    );
    assert_eq!(view(&db, &emergency.sid).await.state, MessageState::Done);
    let waiting = view(&db, &sids[3]).await;
    assert_eq!(waiting.state, MessageState::Waiting);
    assert_eq!(
        waiting.due_at,
        t0 + 3_600 * SECOND,
        "allowed when the first leaves the hour"
    );
    let step = w.try_execute_task(t0 + 3_600 * SECOND).await.expect("step");
    assert_eq!(
        step.claimed, 1,
        "the daily limit (4) leaves room for one more today"
    );
    assert_eq!(fake.ledger().len(), 5);
}
on_both!(recipient_limits_defer_and_emergency_is_exempt);

async fn two_factor_codes_skip_recipient_limits_unless_the_settings_say_otherwise(db: Db) {
    let mut s = open_settings();
    s.limits.per_recipient_per_hour = 1;
    s.limits.per_recipient_per_day = 1;
    save(&db, &s).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    let to = number(8);
    submit(&db, body_to(&to, "update", None), t0).await;
    for n in 0..3 {
        submit(
            &db,
            body_to(
                &to,
                &format!("Your code is 10000{n}"),
                Some(Category::TwoFactor),
            ),
            t0,
        )
        .await;
    }
    let w = worker(&db, &fake);
    let step = w.try_execute_task(t0).await.expect("step");
    assert_eq!(
        (step.claimed, step.deferred),
        (4, 0),
        "the three codes skip the limit and do not count against it"
    );
    // Not exempt: a code waits for the recipient's window like any text.
    s.limits.two_factor_exempt = false;
    save(&db, &s).await;
    let held = submit(
        &db,
        body_to(&to, "Your code is 200000", Some(Category::TwoFactor)),
        t0 + 1,
    )
    .await;
    let step = w.try_execute_task(t0 + 1).await.expect("step");
    assert_eq!((step.claimed, step.deferred), (0, 1));
    assert_eq!(view(&db, &held.sid).await.state, MessageState::Waiting);
}
on_both!(two_factor_codes_skip_recipient_limits_unless_the_settings_say_otherwise);

async fn a_sender_sends_no_faster_than_its_pace(db: Db) {
    let mut s = open_settings();
    s.pace.long_code = 1;
    save(&db, &s).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    let long = "x".repeat(200); // 2 segments
    let a = submit(&db, body_to(&number(1), &long, None), t0).await;
    let b = submit(&db, body_to(&number(2), "short", None), t0).await;
    let w = worker(&db, &fake);
    let step = w.try_execute_task(t0).await.expect("step");
    assert_eq!((step.claimed, step.deferred), (1, 1));
    assert_eq!(view(&db, &a.sid).await.state, MessageState::Done);
    assert_eq!(
        view(&db, &b.sid).await.due_at,
        t0 + 2 * SECOND,
        "2 segments at 1/s"
    );
    assert_eq!(
        w.try_execute_task(t0 + 2 * SECOND - 1)
            .await
            .expect("step")
            .claimed,
        0
    );
    assert_eq!(
        w.try_execute_task(t0 + 2 * SECOND)
            .await
            .expect("step")
            .claimed,
        1
    );
}
on_both!(a_sender_sends_no_faster_than_its_pace);

async fn each_twilio_error_class_gets_its_treatment(db: Db) {
    let mut s = open_settings();
    s.retries.base_delay_seconds = 60;
    save(&db, &s).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    let throttled = number(1);
    let invalid = number(2);
    let opted_out = number(3);
    let bad_auth = number(4);
    let bad_auth_too = number(5);
    for n in [&bad_auth, &bad_auth_too] {
        fake.script(
            n,
            [Script::Error {
                status: 401,
                code: 20003,
            }],
        );
    }
    fake.script(
        &throttled,
        [Script::Error {
            status: 429,
            code: 20429,
        }],
    );
    fake.script(
        &invalid,
        [Script::Error {
            status: 400,
            code: 21211,
        }],
    );
    fake.script(
        &opted_out,
        [Script::Error {
            status: 400,
            code: 21610,
        }],
    );
    let a = submit(&db, body_to(&throttled, "a", None), t0).await;
    let b = submit(&db, body_to(&invalid, "b", None), t0).await;
    let c = submit(&db, body_to(&opted_out, "c", None), t0).await;
    let d = submit(&db, body_to(&bad_auth, "d", None), t0).await;
    submit(&db, body_to(&bad_auth_too, "e", None), t0).await;
    let w = worker(&db, &fake);
    let step = w.try_execute_task(t0).await.expect("step");
    assert_eq!(
        (step.claimed, step.held, step.retry_scheduled, step.failed),
        (5, 1, 0, 4)
    );

    // A 429 pauses sending (a second, without Retry-After); the message waits for that.
    let a_view = view(&db, &a.sid).await;
    assert_eq!(a_view.state, MessageState::Waiting);
    let wait = a_view.due_at - t0;
    assert!((SECOND..2 * SECOND).contains(&wait), "1 s: {wait}");
    let b_view = view(&db, &b.sid).await;
    assert_eq!(
        (b_view.status, b_view.error_code),
        (MessageStatus::Failed, Some(21211))
    );
    let reason = b_view.error_message.expect("reason");
    assert!(reason.contains("21211"), "{reason}");
    assert!(
        !reason.contains(&invalid[1..]),
        "Twilio's text names the number; it is stored masked: {reason}"
    );
    assert!(reason.contains("*71") || reason.contains('*'), "{reason}");
    let c_view = view(&db, &c.sid).await;
    assert_eq!(c_view.error_code, Some(21610));
    assert_eq!(
        refusal(&db, body_to(&opted_out, "again", None)).await.code,
        RefusalCode::OptedOut,
        "21610 recorded an opt-out"
    );
    assert_eq!(view(&db, &d.sid).await.error_code, Some(20003));
    let alerts = alerts(&db).await;
    assert_eq!(
        alerts.len(),
        1,
        "admins alerted once for 20003, not once per message"
    );

    // The throttled one goes out when due, once.
    assert_eq!(
        w.try_execute_task(t0 + wait - 1)
            .await
            .expect("step")
            .claimed,
        0
    );
    let step = w.try_execute_task(t0 + wait).await.expect("step");
    assert_eq!(step.sent, 1);
    assert_eq!(view(&db, &a.sid).await.attempts, 1, "the 429 did not count");
    assert_eq!(fake.ledger().len(), 1);
}
on_both!(each_twilio_error_class_gets_its_treatment);

async fn a_send_in_doubt_is_looked_up_before_it_is_sent_again(db: Db) {
    save(&db, &open_settings()).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    let late = number(1);
    let down = number(2);
    // Acted on, but answered after the client gave up; and a 503 that did nothing.
    fake.script(&late, [Script::AcceptLate(Duration::from_secs(3))]);
    fake.script(&down, [Script::Unavailable]);
    let a = submit(&db, body_to(&late, "late answer", None), t0).await;
    let b = submit(&db, body_to(&down, "service down", None), t0).await;
    let w = worker(&db, &fake);
    let step = w.try_execute_task(t0).await.expect("step");
    assert_eq!(step.retry_scheduled, 2);
    assert_eq!(fake.ledger().len(), 1, "the late one was created");
    let due = view(&db, &a.sid)
        .await
        .due_at
        .max(view(&db, &b.sid).await.due_at);

    let step = w.try_execute_task(due).await.expect("step");
    assert_eq!((step.sent, step.found_in_doubt), (2, 1));
    let ledger = fake.ledger();
    assert_eq!(ledger.len(), 2, "each message exactly once");
    assert_eq!(ledger.iter().filter(|c| c.to == late).count(), 1);
    let a_view = view(&db, &a.sid).await;
    assert_eq!(a_view.provider_sid.as_deref(), Some(ledger[0].sid.as_str()));
    let kinds: Vec<String> = outbox::events(&db, a_view.id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["accepted", "retry", "found"]);
}
on_both!(a_send_in_doubt_is_looked_up_before_it_is_sent_again);

/// Leaves message `sid` as a process that died mid-attempt would: claimed at `t0` with its
/// lease running out 30 s later, where the attempt went unknown.
async fn crashed_mid_attempt(db: &Db, sid: &str, t0: i64) {
    on_db!(db, |pool| sqlx::query(
        "UPDATE messages SET state = 'sending', lease_until = $1, attempts = 1,
             attempt_started_at = $2, attempt_provider = NULL WHERE sid = $3"
    )
    .bind(t0 + 30 * SECOND)
    .bind(t0)
    .bind(sid)
    .execute(pool)
    .await
    .expect("claimed")
    .rows_affected());
}

/// A message created at `fake` directly, as a send whose answer never reached smsdesk.
async fn create_at(fake: &FakeTwilio, to: &str, from: &str, body: &str) {
    client(fake, Duration::from_secs(5))
        .create_message(&NewMessage {
            to: to.to_owned(),
            sender: Sender::From(from.to_owned()),
            body: body.to_owned(),
            status_callback: None,
            validity_period: None,
            smart_encoded: None,
            attempt: Some(1),
        })
        .await
        .expect("created");
}

async fn a_claim_left_by_a_crash_is_resolved_without_sending_twice(db: Db) {
    save(&db, &open_settings()).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    let went = submit(
        &db,
        body_to(&number(1), "went out before the crash", None),
        t0,
    )
    .await;
    let lost = submit(&db, body_to(&number(2), "never left", None), t0).await;
    // The process died after claiming both; the first request had reached Twilio.
    for sid in [&went.sid, &lost.sid] {
        crashed_mid_attempt(&db, sid, t0).await;
    }
    create_at(&fake, &number(1), FROM, "went out before the crash").await;
    let w = worker(&db, &fake);
    assert_eq!(
        w.try_execute_task(t0 + SECOND).await.expect("step").claimed,
        0,
        "leased"
    );
    let step = w.try_execute_task(t0 + 31 * SECOND).await.expect("step");
    assert_eq!((step.claimed, step.sent, step.found_in_doubt), (2, 2, 1));
    let ledger = fake.ledger();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger.iter().filter(|c| c.to == number(1)).count(), 1);
    assert_eq!(ledger.iter().filter(|c| c.to == number(2)).count(), 1);
}
on_both!(a_claim_left_by_a_crash_is_resolved_without_sending_twice);

async fn sends_that_cannot_start_in_time_go_back_untried(db: Db) {
    save(&db, &open_settings()).await;
    // Twilio answers in 300 ms, one send at a time, and a send may start at most 100 ms after
    // the claim: the first goes, the two queued behind it would outlive their lease.
    let fake = FakeTwilio::start_with_delay(Duration::from_millis(300)).await;
    let t0 = now_micros();
    let mut sids = Vec::new();
    for n in 1..=3 {
        sids.push(
            submit(&db, body_to(&number(n), "Depot 3 closes early", None), t0)
                .await
                .sid,
        );
    }
    let mut config = WorkerConfig::new(Sender::From(FROM.to_owned()), None);
    config.concurrency = 1;
    config.lease = Duration::from_secs(30);
    config.start_window = Duration::from_millis(100);
    let slow = Worker::new(
        db.clone(),
        key(),
        Provider::Twilio(client(&fake, Duration::from_secs(5))),
        config,
    );
    let step = slow.try_execute_task(t0).await.expect("step");
    assert_eq!((step.claimed, step.sent, step.not_started), (3, 1, 2));
    assert_eq!(fake.ledger().len(), 1);
    let logged = on_db!(&db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM dispatch_log"
    )
    .fetch_one(pool)
    .await
    .expect("count"));
    assert_eq!(
        logged, 1,
        "only the send that happened counts against the limits"
    );
    let mut back = 0;
    for sid in &sids {
        let v = view(&db, sid).await;
        if v.state == MessageState::Waiting {
            assert_eq!(
                (v.attempts, v.status),
                (0, MessageStatus::Accepted),
                "{sid}"
            );
            back += 1;
        }
    }
    assert_eq!(back, 2);
    // Due at once: the next step sends them, each once.
    let step = worker(&db, &fake)
        .try_execute_task(t0 + SECOND)
        .await
        .expect("step");
    assert_eq!((step.claimed, step.sent), (2, 2));
    let mut to: Vec<String> = fake.ledger().into_iter().map(|c| c.to).collect();
    to.sort();
    assert_eq!(to, [number(1), number(2), number(3)]);
}
on_both!(sends_that_cannot_start_in_time_go_back_untried);

async fn a_message_past_its_validity_is_not_sent(db: Db) {
    save(&db, &open_settings()).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    let mut code = body_to(&number(1), "Your code is 123456", Some(Category::TwoFactor));
    code.validity_seconds = Some(30);
    let m = submit(&db, code, t0).await;
    let fresh = submit(
        &db,
        body_to(&number(2), "Your code is 654321", Some(Category::TwoFactor)),
        t0,
    )
    .await;
    // A template's TTL is its messages' validity.
    let template = domain::template::Template::new(domain::template::TemplateParts {
        key: domain::template::TemplateKey::parse("door_code").unwrap(),
        body: domain::template::TemplateBody::parse("Gate code {code}").unwrap(),
        variables: vec![
            domain::template::VariableSpec::new(
                "code",
                6,
                domain::template::Charset::Gsm7,
                "123456",
            )
            .unwrap(),
        ],
        category: Category::Driver,
        priority: None,
        smart_encoding: false,
        ttl_seconds: Some(90),
    })
    .expect("template");
    backend::templates::create(&db, &audit::Actor::system(), &template)
        .await
        .expect("stored");
    let gate = Submission {
        content: Content::Template {
            key: "door_code".into(),
            variables: BTreeMap::from([("code".to_owned(), "424242".to_owned())]),
        },
        ..body_to(&number(3), "", None)
    };
    submit(&db, gate, t0).await;
    let w = worker(&db, &fake);
    let step = w.try_execute_task(t0 + 31 * SECOND).await.expect("step");
    assert_eq!((step.expired, step.sent), (1, 2));
    let v = view(&db, &m.sid).await;
    assert_eq!(
        (v.status, v.error_code),
        (MessageStatus::Failed, Some(30036))
    );
    assert!(v.error_message.expect("reason").contains("validity"));
    // The other code (default validity 600 s) went with the seconds it has left.
    // The template's message went with what is left of its 90 s.
    let sent = fake.ledger();
    assert_eq!(sent.len(), 2);
    let validity_to = |to: &str| -> Vec<String> {
        sent.iter()
            .filter(|c| c.to == to)
            .flat_map(|c| c.form.iter())
            .filter(|(k, _)| k == "ValidityPeriod")
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(validity_to(&number(2)), ["569"]);
    assert_eq!(validity_to(&number(3)), ["59"]);
    assert_eq!(view(&db, &fresh.sid).await.status, MessageStatus::Queued);
}
on_both!(a_message_past_its_validity_is_not_sent);

async fn callbacks_move_a_message_forward_once(db: Db) {
    let mut s = open_settings();
    s.retries.max_attempts = 3;
    save(&db, &s).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    let m = submit(&db, body_to(&number(1), "tracked", None), t0).await;
    let retried = submit(&db, body_to(&number(2), "handset off", None), t0).await;
    let w = worker(&db, &fake);
    w.try_execute_task(t0).await.expect("step");
    let sid = view(&db, &m.sid).await.provider_sid.expect("sid");
    let cb = |status: MessageStatus, code: Option<u32>| Callback {
        sid: sid.clone(),
        status,
        error_code: code,
        error_message: None,
        price_micros: None,
    };
    let k = key();
    let rec = |c: Callback| {
        let db = db.clone();
        let k = k.clone();
        async move {
            backend::worker::record_callback(&db, &k, &c, t0)
                .await
                .expect("recorded")
        }
    };
    assert_eq!(
        rec(cb(MessageStatus::Sent, None)).await,
        CallbackOutcome::Recorded {
            advanced: true,
            retry: false
        }
    );
    assert_eq!(
        rec(cb(MessageStatus::Delivered, None)).await,
        CallbackOutcome::Recorded {
            advanced: true,
            retry: false
        }
    );
    assert_eq!(
        rec(cb(MessageStatus::Delivered, None)).await,
        CallbackOutcome::Duplicate
    );
    // A late `sending` arrives after `delivered`: recorded as an event, the status stays.
    assert_eq!(
        rec(cb(MessageStatus::Sending, None)).await,
        CallbackOutcome::Recorded {
            advanced: false,
            retry: false
        }
    );
    let v = view(&db, &m.sid).await;
    assert_eq!(v.status, MessageStatus::Delivered);
    assert_eq!(outbox::events(&db, v.id).await.expect("events").len(), 5);
    let unknown = Callback {
        sid: "SMffffffffffffffffffffffffffffffff".into(),
        ..cb(MessageStatus::Sent, None)
    };
    assert_eq!(rec(unknown).await, CallbackOutcome::UnknownSid);

    // Unreachable handset (30003): tried again later, as a new Twilio message.
    let other = view(&db, &retried.sid).await.provider_sid.expect("sid");
    let out = rec(Callback {
        sid: other,
        ..cb(MessageStatus::Undelivered, Some(30003))
    })
    .await;
    assert_eq!(
        out,
        CallbackOutcome::Recorded {
            advanced: true,
            retry: true
        }
    );
    let v = view(&db, &retried.sid).await;
    assert_eq!(
        (v.state.as_str(), v.status, v.error_code),
        ("waiting", MessageStatus::Accepted, Some(30003))
    );
    w.try_execute_task(v.due_at).await.expect("step");
    assert_eq!(
        fake.ledger().iter().filter(|c| c.to == number(2)).count(),
        2
    );
}
on_both!(callbacks_move_a_message_forward_once);

async fn an_idempotency_key_replays_the_first_answer(db: Db) {
    let now = now_micros();
    let mut tx = db.begin().await.expect("tx");
    let first = outbox::claim_idempotency(&mut tx, &key(), "SK1", "k-1", "fp", now)
        .await
        .expect("claim");
    assert_eq!(first, Idempotency::New);
    outbox::store_answer(&mut tx, &key(), "SK1", "k-1", 202, "{\"sid\":\"SM1\"}")
        .await
        .expect("stored");
    tx.commit().await.expect("commit");
    let mut tx = db.begin().await.expect("tx");
    assert_eq!(
        outbox::claim_idempotency(&mut tx, &key(), "SK1", "k-1", "fp", now)
            .await
            .expect("claim"),
        Idempotency::Replay {
            status: 202,
            body: "{\"sid\":\"SM1\"}".into()
        }
    );
    assert_eq!(
        outbox::claim_idempotency(&mut tx, &key(), "SK1", "k-1", "other", now)
            .await
            .expect("claim"),
        Idempotency::Mismatch
    );
    assert_eq!(
        outbox::claim_idempotency(&mut tx, &key(), "SK2", "k-1", "fp", now)
            .await
            .expect("claim"),
        Idempotency::New,
        "keys are per API key"
    );
}
on_both!(an_idempotency_key_replays_the_first_answer);

async fn the_simulator_gives_magic_numbers_twilios_outcomes(db: Db) {
    save(&db, &open_settings()).await;
    let sim = Arc::new(Simulator::new(
        ACCOUNT,
        domain::signature::AuthToken::new("sim-token").expect("token"),
        Some(42),
    ));
    let w = Worker::new(
        db.clone(),
        key(),
        Provider::Simulator(sim.clone()),
        WorkerConfig::new(Sender::From(FROM.to_owned()), None),
    );
    let t0 = now_micros();
    let ok = submit(&db, body_to(&number(1), "hello", None), t0).await;
    let stop = submit(&db, body_to("+15005550004", "hello", None), t0).await;
    let step = w.try_execute_task(t0).await.expect("step");
    assert_eq!((step.sent, step.failed), (1, 1));
    assert_eq!(view(&db, &ok.sid).await.status, MessageStatus::Queued);
    assert_eq!(view(&db, &stop.sid).await.error_code, Some(21610));
    assert_eq!(
        refusal(&db, body_to("+15005550004", "again", None))
            .await
            .code,
        RefusalCode::OptedOut
    );
}
on_both!(the_simulator_gives_magic_numbers_twilios_outcomes);

fn template_to(to: &str, key: &str, vars: &[(&str, &str)]) -> Submission {
    Submission {
        to: to.to_owned(),
        content: Content::Template {
            key: key.to_owned(),
            variables: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        },
        category: None,
        sender: None,
        validity_seconds: None,
    }
}

async fn consent_is_checked_for_a_whole_batch_at_once(db: Db) {
    backend::templates::seed_defaults(&db)
        .await
        .expect("seeded");
    let now = now_micros();
    let mut tx = db.begin().await.expect("tx");
    // 2 opted out; 3 opted out and back in; 4 opted in only.
    for (n, action) in [
        (2, backend::consent::Action::OptOut),
        (3, backend::consent::Action::OptOut),
        (3, backend::consent::Action::OptIn),
        (4, backend::consent::Action::OptIn),
    ] {
        backend::consent::record(&mut tx, &key(), &number(n), action, "test", "evidence", now)
            .await
            .expect("recorded");
    }
    tx.commit().await.expect("commit");
    let s = settings::sending(&db).await.expect("settings");
    let batch: Vec<Submission> = (1..=5)
        .map(|n| {
            template_to(
                &number(n),
                "shipment_delivered",
                &[("tracking_number", "SS-1"), ("recipient_name", "Ada")],
            )
        })
        .chain([body_to("+1 415 55", "hi", None)])
        .collect();
    let checked = intake(&db)
        .check(&s, &dispatcher(), batch)
        .await
        .expect("db");
    let codes: Vec<Option<RefusalCode>> = checked
        .iter()
        .map(|c| c.as_ref().err().map(|r| r.code))
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some(RefusalCode::OptedOut),
            None,
            None,
            None,
            Some(RefusalCode::InvalidNumber)
        ]
    );
}
on_both!(consent_is_checked_for_a_whole_batch_at_once);

async fn only_emergency_templates_or_console_users_give_emergency_priority(db: Db) {
    backend::templates::seed_defaults(&db)
        .await
        .expect("seeded");
    let service = Source::ApiKey("SK0123".to_owned());
    let free_text = body_to(&number(1), "Evacuate now", Some(Category::Emergency));
    let refused = refusal_from(&db, &service, free_text.clone()).await;
    assert_eq!(refused.code, RefusalCode::CategoryNotAllowed);
    assert_eq!(refused.field, "category");
    // A dispatcher in the console may; so may a service naming an emergency template.
    let s = settings::sending(&db).await.expect("settings");
    let checked = intake(&db)
        .check(&s, &dispatcher(), vec![free_text])
        .await
        .expect("db");
    assert_eq!(
        checked[0].as_ref().expect("accepted").priority,
        domain::template::Priority::Emergency
    );
    let from_template = template_to(
        &number(1),
        "emergency_alert",
        &[
            ("hazard", "Spill"),
            ("location", "Depot 7"),
            ("instructions", "Leave."),
            ("hotline", "1800 127 127"),
        ],
    );
    let checked = intake(&db)
        .check(&s, &service, vec![from_template])
        .await
        .expect("db");
    assert_eq!(
        checked[0].as_ref().expect("accepted").priority,
        domain::template::Priority::Emergency
    );
}
on_both!(only_emergency_templates_or_console_users_give_emergency_priority);

async fn two_factor_bodies_are_never_read_back(db: Db) {
    backend::templates::seed_defaults(&db)
        .await
        .expect("seeded");
    let written = submit(
        &db,
        template_to(
            &number(1),
            "two_factor_auth",
            &[("code", "482913"), ("minutes", "10")],
        ),
        now_micros(),
    )
    .await;
    assert_eq!(written.body, None, "not even in intake's answer");
    let read = view(&db, &written.sid).await;
    assert_eq!(read.body, None);
    assert_eq!(read.category, Some(Category::TwoFactor));
    let found = outbox::find_many(&db, &key(), &[read.id])
        .await
        .expect("db");
    assert_eq!(found[0].body, None);
    let shipment = submit(&db, body_to(&number(2), "Picked up", None), now_micros()).await;
    assert_eq!(
        view(&db, &shipment.sid).await.body.as_deref(),
        Some("Picked up")
    );
}
on_both!(two_factor_bodies_are_never_read_back);

async fn a_stored_value_the_code_cannot_read_is_an_error_naming_the_row(db: Db) {
    let m = submit(&db, body_to(&number(1), "hi", None), now_micros()).await;
    on_db!(&db, |pool| sqlx::query(
        "UPDATE messages SET state = 'parked' WHERE id = $1"
    )
    .bind(m.id)
    .execute(pool)
    .await
    .expect("update")
    .rows_affected());
    match outbox::find(&db, &key(), &m.sid).await {
        Err(backend::db::DbError::Unreadable {
            id, column, value, ..
        }) => assert_eq!((id, column, value.as_str()), (m.id, "state", "parked")),
        other => panic!("expected an unreadable-row error, got {other:?}"),
    }
}
on_both!(a_stored_value_the_code_cannot_read_is_an_error_naming_the_row);

async fn an_idempotent_answer_is_stored_encrypted_and_forgotten_after_a_day(db: Db) {
    let now = now_micros();
    let answer = format!("{{\"to\":\"{}\"}}", number(1));
    let mut tx = db.begin().await.expect("tx");
    outbox::claim_idempotency(&mut tx, &key(), "SK1", "k-1", "fp", now)
        .await
        .expect("claim");
    outbox::store_answer(&mut tx, &key(), "SK1", "k-1", 202, &answer)
        .await
        .expect("stored");
    tx.commit().await.expect("commit");
    let stored: String = on_db!(&db, |pool| sqlx::query_scalar(
        "SELECT response_body FROM idempotency_keys WHERE key = 'k-1'"
    )
    .fetch_one(pool)
    .await
    .expect("row"));
    assert!(!stored.contains(&number(1)[1..]), "stored: {stored}");

    // Within a day: replayed. After it: a new request.
    let day = outbox::IDEMPOTENCY_KEPT_MICROS;
    let mut tx = db.begin().await.expect("tx");
    assert_eq!(
        outbox::claim_idempotency(&mut tx, &key(), "SK1", "k-1", "fp", now + day - 1)
            .await
            .expect("claim"),
        Idempotency::Replay {
            status: 202,
            body: answer
        }
    );
    assert_eq!(
        outbox::claim_idempotency(&mut tx, &key(), "SK1", "k-1", "other", now + day + 1)
            .await
            .expect("claim"),
        Idempotency::New
    );
    tx.commit().await.expect("commit");
    assert_eq!(
        outbox::purge_idempotency(&db, now + 2 * day + 2)
            .await
            .expect("purge"),
        1
    );
}
on_both!(an_idempotent_answer_is_stored_encrypted_and_forgotten_after_a_day);

/// The kinds of a message's events, oldest first.
/// The alerts raised for the administrators (audit entries `alert.*`).
async fn alerts(db: &Db) -> Vec<audit::Entry> {
    audit::list(
        db,
        &audit::Filter {
            action: Some("alert.".into()),
            ..Default::default()
        },
    )
    .await
    .expect("audit")
}

async fn event_kinds(db: &Db, id: i64) -> Vec<String> {
    outbox::events(db, id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn a_send_without_an_answer_fails_once_max_attempts_are_used(db: Db) {
    let mut s = open_settings();
    s.retries.max_attempts = 2;
    save(&db, &s).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    let down = number(1);
    fake.script(&down, [Script::Unavailable, Script::Unavailable]);
    let m = submit(&db, body_to(&down, "service down", None), t0).await;
    let w = worker(&db, &fake);
    let step = w.try_execute_task(t0).await.expect("step");
    assert_eq!((step.retry_scheduled, step.failed), (1, 0));

    let due = view(&db, &m.sid).await.due_at;
    let step = w.try_execute_task(due).await.expect("step");
    assert_eq!((step.claimed, step.retry_scheduled, step.failed), (1, 0, 1));
    let v = view(&db, &m.sid).await;
    assert_eq!(
        (v.state, v.status, v.error_code, v.attempts),
        (MessageState::Done, MessageStatus::Failed, None, 2)
    );
    let reason = v.error_message.expect("reason");
    assert!(
        reason.starts_with("no answer from Twilio after 2 attempts"),
        "{reason}"
    );
    assert_eq!(
        event_kinds(&db, v.id).await,
        ["accepted", "retry", "failed"]
    );
    assert!(fake.ledger().is_empty(), "never created");
}
on_both!(a_send_without_an_answer_fails_once_max_attempts_are_used);

/// Submits a message to each of `number(range)` at `t0`.
async fn submit_many(
    db: &Db,
    range: std::ops::Range<u32>,
    body: &str,
    t0: i64,
) -> Vec<outbox::MessageView> {
    let s = settings::sending(db).await.expect("settings");
    let submissions = range.map(|i| body_to(&number(i), body, None)).collect();
    intake(db)
        .submit(&s, &dispatcher(), submissions, t0)
        .await
        .expect("db")
        .into_iter()
        .map(|r| r.expect("accepted"))
        .collect()
}

/// Every message of `views` was created exactly once, at one of `fakes`.
fn each_exactly_once(fakes: &[&FakeTwilio], views: &[outbox::MessageView]) {
    let ledger: Vec<_> = fakes.iter().flat_map(|f| f.ledger()).collect();
    assert_eq!(
        ledger.len(),
        views.len(),
        "nothing sent twice, nothing lost"
    );
    let recipients: std::collections::BTreeSet<&str> =
        ledger.iter().map(|c| c.to.as_str()).collect();
    assert_eq!(recipients.len(), views.len());
}

async fn a_rate_limit_storm_pauses_sending_for_retry_after_and_costs_no_attempt(db: Db) {
    save(&db, &open_settings()).await;
    let fake = FakeTwilio::start().await;
    fake.storm(Some(Storm::RateLimited {
        retry_after: Some(5),
    }));
    let t0 = now_micros();
    let views = submit_many(&db, 0..20, "storm", t0).await;
    let w = worker(&db, &fake);

    // All twenty were in flight before the first 429 came back; each goes back to the outbox.
    let step = w.try_execute_task(t0).await.expect("step");
    assert_eq!((step.claimed, step.held, step.failed), (20, 20, 0));
    assert_eq!(fake.arrivals().len(), 20);
    let first = view(&db, &views[0].sid).await;
    assert_eq!(
        (first.state, first.attempts, first.error_code),
        (MessageState::Waiting, 0, Some(20429)),
        "the attempt does not count: Twilio refused the request, not the message"
    );
    assert!(first.due_at >= t0 + 5 * SECOND, "after Retry-After");
    assert_eq!(event_kinds(&db, first.id).await, ["accepted", "retry"]);

    // Within Retry-After nothing is claimed and nothing reaches Twilio.
    let paused = w.try_execute_task(t0 + 4 * SECOND).await.expect("step");
    assert_eq!(paused.claimed, 0);
    let resume = paused.paused_until.expect("paused");
    assert!(
        resume >= t0 + 5 * SECOND && resume < t0 + 6 * SECOND,
        "{}",
        resume - t0
    );
    assert_eq!(
        paused.next_due,
        Some(resume),
        "the worker sleeps until then"
    );
    assert_eq!(fake.arrivals().len(), 20);

    // Still stormy: one probe, refused, and another pause.
    let probe = w.try_execute_task(resume).await.expect("step");
    assert_eq!((probe.claimed, probe.held), (1, 1));
    assert_eq!(fake.arrivals().len(), 21);
    let resume = w
        .try_execute_task(resume)
        .await
        .expect("step")
        .paused_until
        .expect("paused again");

    // Calm: the probe goes through, then the rest in one batch.
    fake.storm(None);
    let probe = w.try_execute_task(resume).await.expect("step");
    assert_eq!((probe.claimed, probe.sent), (1, 1));
    let rest = w.try_execute_task(resume).await.expect("step");
    assert_eq!((rest.claimed, rest.sent), (19, 19));
    each_exactly_once(&[&fake], &views);
    for v in &views {
        let v = view(&db, &v.sid).await;
        assert_eq!((v.state, v.attempts), (MessageState::Done, 1), "{}", v.sid);
    }
}
on_both!(a_rate_limit_storm_pauses_sending_for_retry_after_and_costs_no_attempt);

/// A worker with `lanes` sends in flight at once and this HTTP timeout.
fn narrow_worker(db: &Db, fake: &FakeTwilio, lanes: usize, timeout: Duration) -> Worker {
    let mut config = WorkerConfig::new(Sender::From(FROM.to_owned()), None);
    config.concurrency = lanes;
    Worker::new(
        db.clone(),
        key(),
        Provider::Twilio(client(fake, timeout)),
        config,
    )
}

/// Drives the worker until nothing is left to send or `until`, each step at the time the
/// engine says it should run next.
async fn drain(w: &Worker, mut at: i64, until: i64) -> i64 {
    while at <= until {
        let step = w.try_execute_task(at).await.expect("step");
        if step.claimed > 0 {
            continue;
        }
        match step.next_due {
            Some(next) => at = next.max(at + 1),
            None => break,
        }
    }
    at
}

async fn a_run_of_5xx_pauses_sending_and_the_queue_drains_once_twilio_recovers(db: Db) {
    save(&db, &open_settings()).await;
    let fake = FakeTwilio::start().await;
    fake.storm(Some(Storm::Unavailable));
    let t0 = now_micros();
    let views = submit_many(&db, 0..100, "outage", t0).await;
    let w = narrow_worker(&db, &fake, 8, Duration::from_millis(400));

    // The eight lanes' requests fail (and, while the first two failures come back, up to two
    // more start); the rest of the batch is not even tried.
    let step = w.try_execute_task(t0).await.expect("step");
    let tried = fake.arrivals().len();
    assert!((8..=10).contains(&tried), "{tried}");
    assert_eq!(
        (step.claimed, step.retry_scheduled, step.not_started),
        (100, tried, 100 - tried)
    );
    let resume = w
        .try_execute_task(t0)
        .await
        .expect("step")
        .paused_until
        .expect("paused after three failures in a row");
    assert!(resume - t0 >= SECOND);

    // Each probe that fails doubles the pause.
    let mut pauses = Vec::new();
    let mut at = resume;
    for _ in 0..3 {
        let probe = w.try_execute_task(at).await.expect("step");
        assert_eq!((probe.claimed, probe.retry_scheduled), (1, 1));
        let next = w
            .try_execute_task(at)
            .await
            .expect("step")
            .paused_until
            .expect("paused");
        pauses.push((next - at + SECOND / 2) / SECOND);
        at = next;
    }
    assert_eq!(pauses, [2, 4, 8]);
    assert_eq!(fake.arrivals().len(), tried + 3, "then one probe per pause");

    // Twilio recovers: everything goes out, those in doubt after a look-up in its list.
    fake.storm(None);
    drain(&w, at, t0 + 600 * SECOND).await;
    each_exactly_once(&[&fake], &views);
    for v in &views {
        let v = view(&db, &v.sid).await;
        assert_eq!(v.state, MessageState::Done, "{}", v.sid);
        assert_ne!(v.status, MessageStatus::Failed, "{}", v.sid);
    }
}
on_both!(a_run_of_5xx_pauses_sending_and_the_queue_drains_once_twilio_recovers);

async fn timeouts_in_a_storm_send_nothing_twice(db: Db) {
    save(&db, &open_settings()).await;
    let fake = FakeTwilio::start().await;
    // Twilio acts on each request but answers after the client gave up.
    fake.storm(Some(Storm::Slow(Duration::from_millis(700))));
    let t0 = now_micros();
    let views = submit_many(&db, 0..12, "slow", t0).await;
    let w = narrow_worker(&db, &fake, 4, Duration::from_millis(300));
    let step = w.try_execute_task(t0).await.expect("step");
    let tried = step.retry_scheduled;
    assert!(
        (4..=6).contains(&tried),
        "four lanes, then two more at most: {tried}"
    );
    assert_eq!((step.claimed, step.not_started), (12, 12 - tried));
    assert_eq!(
        fake.ledger().len(),
        tried,
        "acted on, though never answered in time"
    );

    fake.storm(None);
    drain(&w, t0, t0 + 600 * SECOND).await;
    each_exactly_once(&[&fake], &views);
    let found = futures::future::join_all(views.iter().map(|v| view(&db, &v.sid))).await;
    let in_doubt_found = found.iter().filter(|v| v.attempts == 2).count();
    assert_eq!(
        in_doubt_found, tried,
        "the timed-out sends were found in Twilio's list"
    );
}
on_both!(timeouts_in_a_storm_send_nothing_twice);

async fn failure_callbacks_record_opt_outs_and_alert_once_without_retrying(db: Db) {
    save(&db, &open_settings()).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    let stopped = number(1);
    let a = submit(&db, body_to(&stopped, "a", None), t0).await;
    let b = submit(&db, body_to(&number(2), "b", None), t0).await;
    let c = submit(&db, body_to(&number(3), "c", None), t0).await;
    let w = worker(&db, &fake);
    assert_eq!(w.try_execute_task(t0).await.expect("step").sent, 3);
    let k = key();
    let failed = |sid: String, status: MessageStatus, code: u32| Callback {
        sid,
        status,
        error_code: Some(code),
        error_message: None,
        price_micros: None,
    };
    let sid_of = |v: outbox::MessageView| v.provider_sid.expect("sid");

    // The recipient replied STOP (21610): failed, opted out, not retried.
    let out = backend::worker::record_callback(
        &db,
        &k,
        &failed(
            sid_of(view(&db, &a.sid).await),
            MessageStatus::Undelivered,
            21610,
        ),
        t0 + SECOND,
    )
    .await
    .expect("recorded");
    assert_eq!(
        out,
        CallbackOutcome::Recorded {
            advanced: true,
            retry: false
        }
    );
    assert_eq!(
        refusal(&db, body_to(&stopped, "again", None)).await.code,
        RefusalCode::OptedOut
    );
    let sources: Vec<String> = on_db!(&db, |pool| sqlx::query_scalar(
        "SELECT source FROM consent_events"
    )
    .fetch_all(pool)
    .await
    .expect("consent"));
    assert_eq!(sources, ["twilio_callback"]);

    // The account is suspended (30002): admins alerted once for both messages, nothing retried.
    for m in [&b, &c] {
        let out = backend::worker::record_callback(
            &db,
            &k,
            &failed(
                sid_of(view(&db, &m.sid).await),
                MessageStatus::Failed,
                30002,
            ),
            t0 + 2 * SECOND,
        )
        .await
        .expect("recorded");
        assert_eq!(
            out,
            CallbackOutcome::Recorded {
                advanced: true,
                retry: false
            }
        );
        let v = view(&db, &m.sid).await;
        assert_eq!(
            (v.state, v.status, v.error_code),
            (MessageState::Done, MessageStatus::Failed, Some(30002))
        );
    }
    let alerts = alerts(&db).await;
    assert_eq!(alerts.len(), 1, "once per code, not once per message");
}
on_both!(failure_callbacks_record_opt_outs_and_alert_once_without_retrying);

async fn a_callback_on_the_last_allowed_attempt_retries_nothing(db: Db) {
    let mut s = open_settings();
    s.retries.max_attempts = 1;
    save(&db, &s).await;
    let fake = FakeTwilio::start().await;
    let t0 = now_micros();
    let m = submit(&db, body_to(&number(1), "handset off", None), t0).await;
    let w = worker(&db, &fake);
    w.try_execute_task(t0).await.expect("step");
    let sid = view(&db, &m.sid).await.provider_sid.expect("sid");
    let out = backend::worker::record_callback(
        &db,
        &key(),
        &Callback {
            sid,
            status: MessageStatus::Undelivered,
            error_code: Some(30003),
            error_message: None,
            price_micros: None,
        },
        t0 + SECOND,
    )
    .await
    .expect("recorded");
    assert_eq!(
        out,
        CallbackOutcome::Recorded {
            advanced: true,
            retry: false
        }
    );
    let v = view(&db, &m.sid).await;
    assert_eq!(
        (v.state, v.status, v.error_code),
        (MessageState::Done, MessageStatus::Undelivered, Some(30003))
    );
    assert_eq!(
        w.try_execute_task(t0 + 3_600 * SECOND)
            .await
            .expect("step")
            .claimed,
        0
    );
    assert_eq!(fake.ledger().len(), 1);
}
on_both!(a_callback_on_the_last_allowed_attempt_retries_nothing);

const FALLBACK_FROM: &str = "+15005550010";

/// A worker sending through `primary`, with `fallback` as the second provider.
fn worker_with_fallback(db: &Db, primary: &FakeTwilio, fallback: &FakeTwilio) -> Worker {
    worker_with_fallback_breaker(db, primary, fallback, Breaker::default())
}

/// The same, the fallback's health kept by `breaker` (the test holds a handle on it).
fn worker_with_fallback_breaker(
    db: &Db,
    primary: &FakeTwilio,
    fallback: &FakeTwilio,
    breaker: Breaker,
) -> Worker {
    let mut config = WorkerConfig::new(Sender::From(FROM.to_owned()), None);
    config.concurrency = 4;
    config.fallback = Some(Fallback {
        provider: Provider::Twilio(client(fallback, Duration::from_millis(400))),
        sender: Sender::From(FALLBACK_FROM.to_owned()),
        breaker,
    });
    Worker::new(
        db.clone(),
        key(),
        Provider::Twilio(client(primary, Duration::from_millis(400))),
        config,
    )
}

async fn a_storm_at_the_primary_sends_through_the_fallback_until_a_probe_finds_it_healthy(db: Db) {
    save(&db, &open_settings()).await;
    let primary = FakeTwilio::start().await;
    let fallback = FakeTwilio::start().await;
    primary.storm(Some(Storm::Unavailable));
    let t0 = now_micros();
    let mut views = submit_many(&db, 0..20, "storm", t0).await;
    let w = worker_with_fallback(&db, &primary, &fallback);

    // The first sends fail at the primary (in doubt: they stay with it); once its breaker
    // opens, the rest go to the fallback, from the fallback's own number.
    let step = w.try_execute_task(t0).await.expect("step");
    let tried = primary.arrivals().len();
    assert!((3..=6).contains(&tried), "{tried}");
    assert_eq!(
        (step.claimed, step.retry_scheduled, step.sent),
        (20, tried, 20 - tried)
    );
    let carried = fallback.ledger();
    assert_eq!(carried.len(), 20 - tried);
    assert!(
        carried
            .iter()
            .all(|c| c.from.as_deref() == Some(FALLBACK_FROM))
    );
    let by_fallback = views
        .iter()
        .find(|v| v.to == carried[0].to)
        .expect("a message the fallback carried");
    let events = outbox::events(&db, by_fallback.id).await.expect("events");
    let handed = events.last().expect("an event");
    assert!(
        handed.detail.contains("the fallback provider"),
        "the log says which provider carried it: {}",
        handed.detail
    );

    // The primary recovers. New messages after its pause: one probes it and finds it healthy,
    // then it carries the rest; those in doubt are looked up there (not found: a 503 sent
    // nothing) and sent once.
    primary.storm(None);
    let later = t0 + 5 * SECOND;
    views.extend(submit_many(&db, 20..25, "calm", later).await);
    let end = drain(&w, later, t0 + 600 * SECOND).await;
    each_exactly_once(&[&primary, &fallback], &views);
    assert!(
        primary.ledger().len() > tried,
        "the probe and those in doubt"
    );

    // Healthy again: the primary carries everything new.
    let carried = fallback.ledger().len();
    views.extend(submit_many(&db, 25..30, "after", end).await);
    let step = w.try_execute_task(end).await.expect("step");
    assert_eq!(step.sent, 5);
    assert_eq!(
        fallback.ledger().len(),
        carried,
        "traffic is back at the primary"
    );
    each_exactly_once(&[&primary, &fallback], &views);
}
on_both!(a_storm_at_the_primary_sends_through_the_fallback_until_a_probe_finds_it_healthy);

async fn a_failover_code_sends_the_message_through_the_fallback_at_once(db: Db) {
    save(&db, &open_settings()).await;
    let primary = FakeTwilio::start().await;
    let fallback = FakeTwilio::start().await;
    let t0 = now_micros();
    let to = number(1);
    primary.script(
        &to,
        [Script::Error {
            status: 400,
            code: 21611,
        }],
    );
    // The fallback acts on it but answers too late: in doubt, and with the fallback.
    fallback.script(&to, [Script::AcceptLate(Duration::from_secs(1))]);
    let m = submit(&db, body_to(&to, "queue full", None), t0).await;
    let w = worker_with_fallback(&db, &primary, &fallback);
    let step = w.try_execute_task(t0).await.expect("step");
    assert_eq!((step.claimed, step.retry_scheduled), (1, 1));
    assert_eq!((primary.ledger().len(), fallback.ledger().len()), (0, 1));

    // The lookup asks the fallback, where the attempt went, and finds it: not sent again.
    let due = view(&db, &m.sid).await.due_at;
    let step = w.try_execute_task(due).await.expect("step");
    assert_eq!((step.sent, step.found_in_doubt), (1, 1));
    assert_eq!((primary.ledger().len(), fallback.ledger().len()), (0, 1));
    let v = view(&db, &m.sid).await;
    assert_eq!(
        v.provider_sid.as_deref(),
        Some(fallback.ledger()[0].sid.as_str())
    );
}
on_both!(a_failover_code_sends_the_message_through_the_fallback_at_once);

async fn a_crash_mid_attempt_asks_every_provider_before_sending_again(db: Db) {
    save(&db, &open_settings()).await;
    let primary = FakeTwilio::start().await;
    let fallback = FakeTwilio::start().await;
    let t0 = now_micros();
    let m = submit(
        &db,
        body_to(&number(1), "went out via the fallback", None),
        t0,
    )
    .await;
    // The process died after claiming it; the attempt had reached the fallback.
    crashed_mid_attempt(&db, &m.sid, t0).await;
    create_at(
        &fallback,
        &number(1),
        FALLBACK_FROM,
        "went out via the fallback",
    )
    .await;
    let w = worker_with_fallback(&db, &primary, &fallback);
    let step = w.try_execute_task(t0 + 31 * SECOND).await.expect("step");
    assert_eq!((step.claimed, step.found_in_doubt), (1, 1));
    assert_eq!((primary.ledger().len(), fallback.ledger().len()), (0, 1));
}
on_both!(a_crash_mid_attempt_asks_every_provider_before_sending_again);

async fn a_route_sends_a_country_through_the_fallback_first(db: Db) {
    let mut s = open_settings();
    s.failover.routes = vec![domain::sending::FailoverRoute {
        country: Some("AU".to_owned()),
        category: None,
    }];
    save(&db, &s).await;
    let primary = FakeTwilio::start().await;
    let fallback = FakeTwilio::start().await;
    let t0 = now_micros();
    submit(&db, body_to("+61491570156", "to Australia", None), t0).await;
    submit(&db, body_to(&number(1), "to the US", None), t0).await;
    let step = worker_with_fallback(&db, &primary, &fallback)
        .try_execute_task(t0)
        .await
        .expect("step");
    assert_eq!(step.sent, 2);
    let (p, f) = (primary.ledger(), fallback.ledger());
    assert_eq!((p.len(), f.len()), (1, 1));
    assert_eq!(f[0].to, "+61491570156");
    assert_eq!(p[0].to, number(1));

    // A route names something: a country that does not exist, or nothing at all, is refused.
    s.failover.routes[0].country = Some("XX".to_owned());
    assert!(settings::validate(&s).is_err());
    s.failover.routes[0].country = None;
    assert!(settings::validate(&s).is_err());
    s.failover.routes[0].category = Some(Category::Emergency);
    assert!(settings::validate(&s).is_ok());
}
on_both!(a_route_sends_a_country_through_the_fallback_first);

async fn a_failover_code_waits_for_a_paused_fallback_and_the_broken_primary_alerts(db: Db) {
    save(&db, &open_settings()).await;
    let primary = FakeTwilio::start().await;
    let fallback = FakeTwilio::start().await;
    let t0 = now_micros();
    let to = number(1);
    let revoked = Script::Error {
        status: 401,
        code: 20003,
    };
    primary.script(&to, [revoked.clone(), revoked]);
    let m = submit(&db, body_to(&to, "primary token revoked", None), t0).await;
    let breaker = Breaker::default();
    breaker.observe(
        backend::worker::breaker::Signal::RateLimited {
            retry_after: Some(30),
        },
        t0,
    );
    let w = worker_with_fallback_breaker(&db, &primary, &fallback, breaker);

    // The fallback is paused: the message waits for it, not failed, its attempt not counted.
    let step = w.try_execute_task(t0).await.expect("step");
    assert_eq!((step.claimed, step.held, step.failed), (1, 1, 0));
    let v = view(&db, &m.sid).await;
    assert_eq!((v.state, v.attempts), (MessageState::Waiting, 0));
    assert!(
        v.due_at >= t0 + 30 * SECOND,
        "until the fallback's pause ends"
    );

    // Then the fallback carries it, and the administrators hear that the primary cannot send.
    let step = w.try_execute_task(v.due_at).await.expect("step");
    assert_eq!(step.sent, 1);
    assert_eq!((primary.ledger().len(), fallback.ledger().len()), (0, 1));
    let alerts = alerts(&db).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
}
on_both!(a_failover_code_waits_for_a_paused_fallback_and_the_broken_primary_alerts);
