//! The delivery log on a real database (SQLite and PostgreSQL): filters that combine, counts per
//! status, keyset paging in both directions, the filter's errors, and the two actions (send a
//! failed message again, cancel a waiting one), audited. Messages go through intake and the
//! worker with the simulator, driven by hand with a chosen time.

mod common;

use std::sync::Arc;

use backend::audit;
use backend::crypto::DataKey;
use backend::db::{Db, now_micros};
use backend::delivery::{self, ActionRefused, Cursor, Filter, StatusFilter};
use backend::intake::{Content, Intake, Submission};
use backend::outbox::{self, MessageState, MessageView, Source};
use backend::settings::{self, SendingSettings};
use backend::simulator::Simulator;
use backend::twilio::Sender;
use backend::worker::{Provider, Worker, WorkerConfig};
use domain::delivery::LogQuery;
use domain::status::MessageStatus;
use domain::template::Category;

const SECOND: i64 = 1_000_000;
const DAY: i64 = 86_400 * SECOND;

fn key() -> DataKey {
    DataKey::new(&[7u8; 32])
}

fn number(n: u32) -> String {
    format!("+1415555{:04}", 2000 + n)
}

fn service() -> Source {
    Source::ApiKey("SK0123456789abcdef0123456789abcdef".to_owned())
}

fn alice() -> Source {
    Source::User("alice@safeshipper.example".to_owned())
}

async fn open(db: &Db) -> SendingSettings {
    let mut s = SendingSettings::default();
    s.limits.per_second = 10_000;
    s.limits.per_minute = 100_000;
    s.limits.per_hour = 1_000_000;
    s.limits.per_recipient_per_hour = 1_000;
    s.limits.per_recipient_per_day = 1_000;
    s.pace.long_code = 10_000;
    settings::save_sending(db, &audit::Actor::system(), &s)
        .await
        .expect("settings saved");
    s
}

async fn send(
    db: &Db,
    source: &Source,
    to: &str,
    body: &str,
    category: Option<Category>,
    now: i64,
) -> MessageView {
    let s = settings::sending(db).await.expect("settings");
    Intake::new(db.clone(), key(), Arc::new(tokio::sync::Notify::new()))
        .submit(
            &s,
            source,
            vec![Submission {
                to: to.to_owned(),
                content: Content::Body(body.to_owned()),
                category,
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

fn simulated(db: &Db) -> Worker {
    let sim = Arc::new(Simulator::new(
        "AC0123456789abcdef0123456789abcdef",
        domain::signature::AuthToken::new("sim-token").expect("token"),
        Some(42),
    ));
    Worker::new(
        db.clone(),
        key(),
        Provider::Simulator(sim),
        WorkerConfig::new(Sender::From("+15005550006".to_owned()), None),
    )
}

/// The UTC day of a time, as the log's date filters write it.
fn day(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .expect("a time")
        .format("%Y-%m-%d")
        .to_string()
}

fn parse(pairs: &[(&str, &str)]) -> Filter {
    Filter::parse(
        &LogQuery::from_pairs(pairs.iter().copied()),
        &key(),
        Some("US"),
    )
    .expect("a valid filter")
}

async fn sids(db: &Db, filter: &Filter) -> Vec<String> {
    delivery::list(db, &key(), filter, None, 100)
        .await
        .expect("listed")
        .into_iter()
        .map(|m| m.sid)
        .collect()
}

async fn filters_combine_and_counts_say_what_each_status_would_show(db: Db) {
    open(&db).await;
    let t0 = now_micros();
    let yesterday = t0 - DAY;
    let old = send(
        &db,
        &service(),
        &number(1),
        "Pickup at the DEPOT",
        None,
        yesterday,
    )
    .await;
    let depot = send(
        &db,
        &alice(),
        &number(2),
        "Leaving the depot now",
        Some(Category::Driver),
        t0,
    )
    .await;
    let sale = send(
        &db,
        &service(),
        &number(3),
        "50% of the load is in",
        None,
        t0,
    )
    .await;
    let invalid = send(&db, &service(), "+15005550001", "To nowhere", None, t0).await;
    let stopped = send(
        &db,
        &alice(),
        "+15005550004",
        "To a STOP",
        Some(Category::Driver),
        t0,
    )
    .await;
    let code = send(
        &db,
        &service(),
        &number(4),
        "Your depot code is 123456",
        Some(Category::TwoFactor),
        t0,
    )
    .await;
    let step = simulated(&db).try_execute_task(t0).await.expect("step");
    assert_eq!((step.sent, step.failed), (4, 2));

    // Newest first, everything.
    assert_eq!(
        sids(&db, &Filter::default()).await,
        [&code, &stopped, &invalid, &sale, &depot, &old].map(|m| m.sid.clone())
    );
    // Problems are failed and undelivered.
    assert_eq!(
        sids(&db, &parse(&[("status", "problems")])).await,
        [&stopped, &invalid].map(|m| m.sid.clone())
    );
    assert_eq!(
        sids(&db, &parse(&[("error_code", "21211")])).await,
        vec![invalid.sid.clone()]
    );
    // Text in any case; a two-factor body, which holds a code, is never found by its text.
    assert_eq!(
        sids(&db, &parse(&[("text", "depot")])).await,
        [&depot, &old].map(|m| m.sid.clone())
    );
    assert!(sids(&db, &parse(&[("text", "123456")])).await.is_empty());
    // LIKE's wildcards are text: "50%" finds the one body with "50%", "%" alone only it.
    assert_eq!(
        sids(&db, &parse(&[("text", "50%")])).await,
        vec![sale.sid.clone()]
    );
    assert_eq!(
        sids(&db, &parse(&[("text", "_")])).await,
        Vec::<String>::new()
    );
    // The recipient typed as people write it, found through its keyed hash.
    assert_eq!(
        sids(&db, &parse(&[("to", "(415) 555-2002")])).await,
        vec![depot.sid.clone()]
    );
    // Who sent it: the stored form, or an e-mail alone.
    assert_eq!(
        sids(&db, &parse(&[("source", "alice@safeshipper.example")])).await,
        [&stopped, &depot].map(|m| m.sid.clone())
    );
    assert_eq!(
        sids(
            &db,
            &parse(&[
                ("source", &service().to_string()),
                ("category", "two_factor")
            ])
        )
        .await,
        vec![code.sid.clone()]
    );
    // Days are UTC days, both ends included.
    let yesterday_only = parse(&[("date_from", &day(yesterday)), ("date_to", &day(yesterday))]);
    assert_eq!(sids(&db, &yesterday_only).await, vec![old.sid.clone()]);
    assert_eq!(
        sids(
            &db,
            &parse(&[
                ("date_from", &day(t0)),
                ("category", "driver"),
                ("status", "failed")
            ])
        )
        .await,
        vec![stopped.sid.clone()]
    );

    // Counts leave the filter's own status out: they say what each status would show.
    let alice_failed = parse(&[
        ("source", "alice@safeshipper.example"),
        ("status", "failed"),
    ]);
    assert_eq!(
        delivery::counts(&db, &alice_failed).await.expect("counts"),
        vec![(MessageStatus::Queued, 1), (MessageStatus::Failed, 1)]
    );
    let all = delivery::counts(&db, &Filter::default())
        .await
        .expect("counts");
    assert_eq!(
        all,
        vec![(MessageStatus::Queued, 4), (MessageStatus::Failed, 2)]
    );
}
on_both!(filters_combine_and_counts_say_what_each_status_would_show);

async fn pages_walk_older_and_newer_without_gaps_or_repeats(db: Db) {
    open(&db).await;
    let t0 = now_micros();
    let mut sent = Vec::new();
    for n in 0..7 {
        sent.push(send(&db, &service(), &number(n), &format!("m{n}"), None, t0).await);
    }
    let id = |n: usize| sent[n].id;
    let ids = |p: &delivery::Page| p.messages.iter().map(|m| m.id).collect::<Vec<_>>();
    let f = Filter::default();
    let first = delivery::page(&db, &key(), &f, None, 3)
        .await
        .expect("page");
    assert_eq!(ids(&first), [id(6), id(5), id(4)]);
    assert_eq!((first.newer, first.older), (None, Some(id(4))));

    // A message arriving meanwhile does not shift the older pages; a reader of the first page
    // is told one more is there, and follows the statuses of the rows on the page.
    let late = send(&db, &service(), &number(9), "late", None, t0).await;
    assert_eq!(
        delivery::count_newer(&db, &f, id(6)).await.expect("count"),
        1
    );
    let problems = Filter {
        status: Some(StatusFilter::Problems),
        ..Filter::default()
    };
    assert_eq!(
        delivery::count_newer(&db, &problems, id(6))
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        delivery::statuses(&db, &[sent[6].sid.clone(), "SMnone".to_owned()])
            .await
            .expect("statuses"),
        vec![(sent[6].sid.clone(), MessageStatus::Accepted, None)]
    );
    let second = delivery::page(&db, &key(), &f, Some(Cursor::Older(id(4))), 3)
        .await
        .expect("page");
    assert_eq!(ids(&second), [id(3), id(2), id(1)]);
    assert_eq!((second.newer, second.older), (Some(id(3)), Some(id(1))));
    let last = delivery::page(&db, &key(), &f, Some(Cursor::Older(id(1))), 3)
        .await
        .expect("page");
    assert_eq!(ids(&last), [id(0)]);
    assert_eq!((last.newer, last.older), (Some(id(0)), None));

    // Back towards the newest: the three just newer than the page, then the rest.
    let back = delivery::page(&db, &key(), &f, Some(Cursor::Newer(id(3))), 3)
        .await
        .expect("page");
    assert_eq!(ids(&back), [id(6), id(5), id(4)]);
    assert_eq!((back.newer, back.older), (Some(id(6)), Some(id(4))));
    let newest = delivery::page(&db, &key(), &f, Some(Cursor::Newer(id(6))), 3)
        .await
        .expect("page");
    assert_eq!(ids(&newest), [late.id]);
    assert_eq!((newest.newer, newest.older), (None, Some(late.id)));
    let back = delivery::page(&db, &key(), &f, Some(Cursor::Newer(id(0))), 3)
        .await
        .expect("page");
    assert_eq!(ids(&back), [id(3), id(2), id(1)]);
    assert_eq!((back.newer, back.older), (Some(id(3)), Some(id(1))));

    // Through the text index the same: every other message says "Gate B", in its own case.
    let mut gate = Vec::new();
    for n in 0..5 {
        let body = if n % 2 == 0 {
            "Wait at GATE B"
        } else {
            "Wait at gate b"
        };
        gate.push(send(&db, &service(), &number(n), body, None, t0).await.id);
        send(&db, &service(), &number(n), "Wait at the dock", None, t0).await;
    }
    let g = Filter {
        text: Some("Gate B".to_owned()),
        ..Filter::default()
    };
    let first = delivery::page(&db, &key(), &g, None, 2)
        .await
        .expect("page");
    assert_eq!(ids(&first), [gate[4], gate[3]]);
    let second = delivery::page(&db, &key(), &g, Some(Cursor::Older(gate[3])), 2)
        .await
        .expect("page");
    assert_eq!(ids(&second), [gate[2], gate[1]]);
    assert_eq!((second.newer, second.older), (Some(gate[2]), Some(gate[1])));
    let back = delivery::page(&db, &key(), &g, Some(Cursor::Newer(gate[1])), 2)
        .await
        .expect("page");
    assert_eq!(ids(&back), [gate[3], gate[2]]);
    assert_eq!(
        delivery::count_newer(&db, &g, gate[1])
            .await
            .expect("count"),
        3
    );
    assert_eq!(
        delivery::counts(&db, &g).await.expect("counts"),
        vec![(MessageStatus::Accepted, 5)]
    );
    // The log counts a search by text up to a cap: exact under it, a floor over it, the
    // newest counted. Other filters are never capped.
    let under = delivery::log_counts_up_to(&db, &g, 5)
        .await
        .expect("counts");
    assert_eq!(
        (under.by_status, under.capped),
        (vec![(MessageStatus::Accepted, 5)], false)
    );
    let over = delivery::log_counts_up_to(&db, &g, 3)
        .await
        .expect("counts");
    assert_eq!(
        (over.by_status, over.capped),
        (vec![(MessageStatus::Accepted, 4)], true)
    );
    let everything = delivery::log_counts_up_to(&db, &Filter::default(), 3)
        .await
        .expect("counts");
    assert!(!everything.capped);
    assert_eq!(
        everything.by_status,
        delivery::counts(&db, &Filter::default())
            .await
            .expect("counts")
    );
}
on_both!(pages_walk_older_and_newer_without_gaps_or_repeats);

#[test]
fn a_filter_that_cannot_apply_names_its_field_and_what_to_write() {
    let bad = |pairs: &[(&str, &str)]| {
        Filter::parse(
            &LogQuery::from_pairs(pairs.iter().copied()),
            &key(),
            Some("US"),
        )
        .expect_err("refused")
    };
    let e = bad(&[("status", "lost")]);
    assert_eq!(e.field, "status");
    assert!(e.message.contains("problems"), "{}", e.message);
    assert_eq!(bad(&[("category", "marketing")]).field, "category");
    assert_eq!(bad(&[("source", "someone")]).field, "source");
    let e = bad(&[("to", "555 12")]);
    assert_eq!(e.field, "to");
    assert_eq!(bad(&[("error_code", "30003x")]).field, "error_code");
    let e = bad(&[("date_from", "yesterday")]);
    assert_eq!(e.field, "date_from");
    assert!(e.message.contains("YYYY-MM-DD"), "{}", e.message);
    assert_eq!(bad(&[("date_to", "2026-02-30")]).field, "date_to");
    // A day ends where the next begins; an instant is taken as given.
    let f = Filter::parse(
        &LogQuery::from_pairs([("date_from", "2026-11-30"), ("date_to", "2026-11-30")]),
        &key(),
        None,
    )
    .expect("valid");
    let start = 1_795_996_800 * SECOND;
    assert_eq!(
        (f.created_from, f.created_until),
        (Some(start), Some(start + DAY))
    );
    let f = Filter::parse(
        &LogQuery::from_pairs([("status", "problems"), ("date_to", "2026-11-30T08:00:00Z")]),
        &key(),
        None,
    )
    .expect("valid");
    assert_eq!(f.status, Some(StatusFilter::Problems));
    assert_eq!(f.created_until, Some(start + 8 * 3_600 * SECOND));
}

async fn a_failed_message_is_sent_again_and_a_waiting_one_canceled_both_audited(db: Db) {
    open(&db).await;
    let t0 = now_micros();
    let unreachable = send(&db, &service(), "+15005550002", "Try me twice", None, t0).await;
    let stopped = send(&db, &service(), "+15005550004", "To a STOP", None, t0).await;
    let fine = send(&db, &service(), &number(1), "Fine", None, t0).await;
    let worker = simulated(&db);
    worker.try_execute_task(t0).await.expect("step");
    let find = |sid: String| {
        let db = db.clone();
        async move {
            outbox::find(&db, &key(), &sid)
                .await
                .expect("db")
                .expect("found")
        }
    };
    assert_eq!(
        find(unreachable.sid.clone()).await.status,
        MessageStatus::Failed
    );
    let actor = audit::Actor::user(1, "dispatch@safeshipper.example");

    let t1 = t0 + 60 * SECOND;
    delivery::retry(&db, &unreachable.sid, &actor, t1)
        .await
        .expect("db")
        .expect("retried");
    let again = find(unreachable.sid.clone()).await;
    assert_eq!(
        (again.state, again.status, again.due_at, again.error_code),
        (MessageState::Waiting, MessageStatus::Accepted, t1, None)
    );
    let events = outbox::events(&db, again.id).await.expect("events");
    assert!(
        events.iter().any(|e| e.kind == "failed"),
        "the first attempt's failure stays in the history: {events:?}"
    );
    let last = events.last().expect("an event");
    assert_eq!((last.kind.as_str(), last.at), ("retry_requested", t1));
    assert!(last.detail.contains("dispatch@safeshipper.example"));
    // The worker sends it again (the simulator fails it again, as the number says).
    let step = worker.try_execute_task(t1).await.expect("step");
    assert_eq!(step.claimed, 1);
    assert_eq!(find(unreachable.sid.clone()).await.attempts, 2);

    // Not for a message that did not fail, nor for a recipient who opted out since.
    let refused = delivery::retry(&db, &fine.sid, &actor, t1)
        .await
        .expect("db");
    assert!(
        matches!(&refused, Err(ActionRefused::NotNow(why)) if why.contains("queued")),
        "{refused:?}"
    );
    let refused = delivery::retry(&db, &stopped.sid, &actor, t1)
        .await
        .expect("db");
    assert!(
        matches!(&refused, Err(ActionRefused::NotNow(why)) if why.contains("opted out")),
        "{refused:?}"
    );
    assert_eq!(
        delivery::retry(&db, "SMnope", &actor, t1)
            .await
            .expect("db"),
        Err(ActionRefused::NotFound("SMnope".to_owned()))
    );

    // Cancel: only while it waits.
    let later = send(&db, &service(), &number(2), "Not yet", None, t1).await;
    delivery::cancel(&db, &later.sid, &actor, t1)
        .await
        .expect("db")
        .expect("canceled");
    let canceled = find(later.sid.clone()).await;
    assert_eq!(
        (canceled.state, canceled.status),
        (MessageState::Done, MessageStatus::Canceled)
    );
    let step = worker.try_execute_task(t1 + SECOND).await.expect("step");
    assert_eq!(step.claimed, 0, "a canceled message is not sent");
    let refused = delivery::cancel(&db, &fine.sid, &actor, t1)
        .await
        .expect("db");
    assert!(
        matches!(refused, Err(ActionRefused::NotNow(_))),
        "{refused:?}"
    );

    let entries = audit::list(
        &db,
        &audit::Filter {
            action: Some("message.".to_owned()),
            ..Default::default()
        },
    )
    .await
    .expect("audit");
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("message.cancel", later.sid.as_str()),
            ("message.retry", unreachable.sid.as_str())
        ]
    );
}
on_both!(a_failed_message_is_sent_again_and_a_waiting_one_canceled_both_audited);

/// The stored body of a message (what a read would show is not enough: the text must be gone).
async fn stored_body(db: &Db, sid: &str) -> String {
    backend::on_db!(db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT body FROM messages WHERE sid = $1"
    )
    .bind(sid)
    .fetch_one(pool)
    .await
    .expect("db"))
}

async fn bodies_past_retention_are_removed_once_per_period_and_audited(db: Db) {
    use backend::retention::{self, Redacted};
    open(&db).await;
    let worker = simulated(&db);
    let now = now_micros();
    let old = now - 100 * DAY;

    // An old message that went out, an old one still waiting, an old reply, a recent message.
    let gone = send(&db, &service(), &number(1), "Gate code 4411", None, old).await;
    // The simulator's +15005550002 fails (21612).
    let failed = send(&db, &service(), "+15005550002", "Gate code 4412", None, old).await;
    worker.try_execute_task(old).await.expect("sent");
    let waiting = send(
        &db,
        &service(),
        &number(2),
        "Dock 7 at noon",
        None,
        old + SECOND,
    )
    .await;
    let reply = backend::consent::Inbound {
        sid: "SM00000000000000000000000000000001",
        from: &number(3),
        to: "+15005550006",
        body: "Running late, 20 min",
        keyword: domain::keywords::Keyword::Other,
    };
    backend::consent::receive(&db, &key(), &reply, "+1415555****", old)
        .await
        .expect("received");
    let recent = send(
        &db,
        &service(),
        &number(4),
        "Dock 9 at one",
        None,
        now - DAY,
    )
    .await;

    let first = retention::run(&db, 90, now).await.expect("db");
    assert_eq!(
        first,
        Some(Redacted {
            messages: 2,
            inbound: 1
        }),
        "the waiting message keeps its body until it has gone out"
    );
    let view = outbox::find(&db, &key(), &gone.sid)
        .await
        .expect("db")
        .expect("kept");
    assert_eq!(view.body.as_deref(), Some(""));
    assert_eq!(view.redacted_at, Some(now));
    assert_eq!(
        view.status,
        MessageStatus::Queued,
        "the rest of the record stays"
    );
    assert_eq!(stored_body(&db, &waiting.sid).await, "Dock 7 at noon");
    // Another instance asking in the same period does nothing.
    assert_eq!(
        retention::run(&db, 90, now + SECOND).await.expect("db"),
        None
    );

    // The waiting one goes out; the next period removes its body, never the recent one's.
    worker.try_execute_task(now).await.expect("sent");
    let later = now + retention::PERIOD;
    assert_eq!(
        retention::run(&db, 90, later).await.expect("db"),
        Some(Redacted {
            messages: 1,
            inbound: 0
        })
    );
    assert_eq!(stored_body(&db, &waiting.sid).await, "");
    assert_eq!(stored_body(&db, &recent.sid).await, "Dock 9 at one");
    // A removed text is not found by its words either (it left the text index with the body).
    assert_eq!(
        sids(&db, &parse(&[("text", "DOCK")])).await,
        vec![recent.sid.clone()]
    );
    // A removed text cannot be sent again.
    let refused = delivery::retry(&db, &failed.sid, &audit::Actor::system(), later)
        .await
        .expect("db");
    assert!(
        matches!(&refused, Err(ActionRefused::NotNow(why)) if why.contains("text was removed")),
        "{refused:?}"
    );
    let audits = audit::list(
        &db,
        &audit::Filter {
            action: Some("retention.".to_owned()),
            ..Default::default()
        },
    )
    .await
    .expect("audit");
    let mut removed: Vec<(i64, i64, i64)> = audits
        .iter()
        .map(|a| {
            let after: serde_json::Value =
                serde_json::from_str(a.after_json.as_deref().expect("after")).expect("json");
            (
                after["messages"].as_i64().expect("messages"),
                after["inbound_messages"].as_i64().expect("inbound"),
                after["retention_days"].as_i64().expect("days"),
            )
        })
        .collect();
    removed.sort_unstable();
    assert_eq!(
        removed,
        [(1, 0, 90), (2, 1, 90)],
        "one entry per run that removed something"
    );
    // A shorter period reaches the recent message too.
    assert_eq!(
        retention::run(&db, 1, later + retention::PERIOD)
            .await
            .expect("db")
            .map(|r| r.messages),
        Some(1)
    );
    assert_eq!(stored_body(&db, &recent.sid).await, "");
}
on_both!(bodies_past_retention_are_removed_once_per_period_and_audited);

async fn a_two_factor_code_is_removed_as_soon_as_it_has_left(db: Db) {
    open(&db).await;
    let now = now_micros();
    let code = send(
        &db,
        &service(),
        &number(5),
        "Your SafeShipper code is 482913",
        Some(Category::TwoFactor),
        now,
    )
    .await;
    let other = send(&db, &service(), &number(6), "Dock 7 at noon", None, now).await;
    assert_eq!(
        stored_body(&db, &code.sid).await,
        "Your SafeShipper code is 482913",
        "kept while it waits to be sent"
    );
    simulated(&db).try_execute_task(now).await.expect("sent");
    assert_eq!(stored_body(&db, &code.sid).await, "");
    let view = outbox::find(&db, &key(), &code.sid)
        .await
        .expect("db")
        .expect("kept");
    assert_eq!(view.redacted_at, Some(now));
    assert_eq!(stored_body(&db, &other.sid).await, "Dock 7 at noon");

    // A canceled code goes too.
    let canceled = send(
        &db,
        &service(),
        &number(7),
        "Your SafeShipper code is 100200",
        Some(Category::TwoFactor),
        now + SECOND,
    )
    .await;
    delivery::cancel(&db, &canceled.sid, &audit::Actor::system(), now + SECOND)
        .await
        .expect("db")
        .expect("canceled");
    assert_eq!(stored_body(&db, &canceled.sid).await, "");

    // One that fails for good (the simulator's +15005550002: 21612), and one whose ten minutes
    // ran out while it waited, go too.
    let later = now + 2 * SECOND;
    let failed = send(
        &db,
        &service(),
        "+15005550002",
        "Your SafeShipper code is 300400",
        Some(Category::TwoFactor),
        later,
    )
    .await;
    simulated(&db).try_execute_task(later).await.expect("tried");
    let view = outbox::find(&db, &key(), &failed.sid)
        .await
        .expect("db")
        .expect("kept");
    assert_eq!(view.status, MessageStatus::Failed);
    assert_eq!(stored_body(&db, &failed.sid).await, "");
    let stale = send(
        &db,
        &service(),
        &number(11),
        "Your SafeShipper code is 500600",
        Some(Category::TwoFactor),
        later,
    )
    .await;
    let step = simulated(&db)
        .try_execute_task(later + 601 * SECOND)
        .await
        .expect("step");
    assert_eq!(step.expired, 1);
    assert_eq!(stored_body(&db, &stale.sid).await, "");
}
on_both!(a_two_factor_code_is_removed_as_soon_as_it_has_left);

async fn receive_reply(db: &Db, sid: &str, from: &str, body: &str, at: i64) {
    let m = backend::consent::Inbound {
        sid,
        from,
        to: "+15005550006",
        body,
        keyword: domain::keywords::classify(body).keyword(),
    };
    backend::consent::receive(db, &key(), &m, "+1415555****", at)
        .await
        .expect("received");
}

async fn replies_are_threaded_with_the_last_message_sent_and_read_or_unread(db: Db) {
    use backend::inbox::{self, Filter};
    open(&db).await;
    let t0 = now_micros();
    let first = send(&db, &service(), &number(8), "Pickup at 9", None, t0).await;
    let second = send(
        &db,
        &service(),
        &number(8),
        "Next delivery: SS-1042",
        None,
        t0 + 10 * SECOND,
    )
    .await;
    send(
        &db,
        &service(),
        &number(9),
        "Dock 4",
        None,
        t0 + 20 * SECOND,
    )
    .await;

    receive_reply(
        &db,
        "SMd0000000000000000000000000000001",
        &number(8),
        "On my way",
        t0 + 15 * SECOND,
    )
    .await;
    // Came in between the two messages (Twilio posts late sometimes): threaded with the first.
    receive_reply(
        &db,
        "SMd0000000000000000000000000000002",
        &number(8),
        "ok",
        t0 + 5 * SECOND,
    )
    .await;
    receive_reply(
        &db,
        "SMd0000000000000000000000000000003",
        &number(10),
        "Who is this?",
        t0 + 30 * SECOND,
    )
    .await;
    // Keywords belong to the consent ledger, not the inbox.
    receive_reply(
        &db,
        "SMd0000000000000000000000000000004",
        &number(9),
        "STOP",
        t0 + 31 * SECOND,
    )
    .await;

    let all = inbox::list(&db, &key(), Filter::default(), None, 50)
        .await
        .expect("listed");
    let seen: Vec<(&str, &str, Option<&str>)> = all
        .iter()
        .map(|r| {
            (
                r.body.as_str(),
                r.from.as_str(),
                r.in_reply_to.as_ref().map(|m| m.sid.as_str()),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("Who is this?", number(10).as_str(), None),
            ("ok", number(8).as_str(), Some(first.sid.as_str())),
            ("On my way", number(8).as_str(), Some(second.sid.as_str())),
        ]
    );
    assert!(all.iter().all(|r| r.from_masked.contains('*')));
    assert_eq!(inbox::unread(&db).await.expect("db"), 3);

    // Read, then read again (the first time stays), then unread again.
    let ok = all[1].id;
    assert!(
        inbox::mark(&db, ok, true, t0 + 40 * SECOND)
            .await
            .expect("db")
    );
    assert!(
        inbox::mark(&db, ok, true, t0 + 50 * SECOND)
            .await
            .expect("db")
    );
    let unread_only = Filter { unread_only: true };
    let unread = inbox::list(&db, &key(), unread_only, None, 50)
        .await
        .expect("listed");
    assert_eq!(
        unread.iter().map(|r| r.body.as_str()).collect::<Vec<_>>(),
        ["Who is this?", "On my way"]
    );
    assert_eq!(inbox::unread(&db).await.expect("db"), 2);
    let read = inbox::list(&db, &key(), Filter::default(), None, 50)
        .await
        .expect("listed");
    assert_eq!(read[1].read_at, Some(t0 + 40 * SECOND));
    assert!(
        inbox::mark(&db, ok, false, t0 + 60 * SECOND)
            .await
            .expect("db")
    );
    assert_eq!(inbox::unread(&db).await.expect("db"), 3);
    assert!(
        !inbox::mark(&db, 999_999, true, t0).await.expect("db"),
        "no such reply"
    );

    // Pages: older ones after the last id shown.
    let page = inbox::list(&db, &key(), Filter::default(), None, 2)
        .await
        .expect("listed");
    assert_eq!(page.len(), 2);
    let rest = inbox::list(&db, &key(), Filter::default(), Some(page[1].id), 2)
        .await
        .expect("listed");
    assert_eq!(
        rest.iter().map(|r| r.body.as_str()).collect::<Vec<_>>(),
        ["On my way"]
    );
}
on_both!(replies_are_threaded_with_the_last_message_sent_and_read_or_unread);

/// What the messages say, read one by one: the oracle for the totals (the filter's own status
/// choice left out, as counts leave it out).
async fn tallied(db: &Db, filter: &Filter) -> Vec<(MessageStatus, i64)> {
    let filter = Filter {
        status: None,
        ..filter.clone()
    };
    let all = delivery::list(db, &key(), &filter, None, 10_000)
        .await
        .expect("listed");
    MessageStatus::ALL
        .iter()
        .map(|s| (*s, all.iter().filter(|m| m.status == *s).count() as i64))
        .filter(|(_, n)| *n > 0)
        .collect()
}

async fn the_daily_totals_count_what_the_messages_say_folded_or_not(db: Db) {
    open(&db).await;
    let t0 = now_micros();
    let yesterday = t0 - DAY;
    // Many rows in a few statements (each statement's rows are totalled together), over days.
    backend::seed::messages(
        &db,
        &key(),
        &backend::seed::Spec {
            count: 400,
            days: 3,
            now: t0,
            seed: 11,
        },
        |_| {},
    )
    .await
    .expect("seeded");
    send(&db, &service(), &number(1), "Yesterday's", None, yesterday).await;
    send(
        &db,
        &alice(),
        &number(2),
        "Leaving",
        Some(Category::Driver),
        t0,
    )
    .await;
    let unreachable = send(&db, &service(), "+15005550002", "Twice", None, t0).await;
    send(&db, &alice(), "+15005550004", "To a STOP", None, t0).await;
    let waiting = send(&db, &service(), &number(3), "Later", None, t0).await;
    let filters = [
        Filter::default(),
        parse(&[("status", "failed")]),
        parse(&[("category", "driver")]),
        parse(&[("source", "alice@safeshipper.example")]),
        parse(&[("template", "driver_route_change")]),
        parse(&[("error_code", "30005")]),
        parse(&[("date_from", &day(yesterday)), ("date_to", &day(yesterday))]),
        parse(&[("date_from", &day(t0)), ("source", &service().to_string())]),
        parse(&[("category", "two_factor"), ("date_to", &day(yesterday))]),
    ];
    let check = |when: &'static str| {
        let db = db.clone();
        let filters = filters.clone();
        async move {
            for filter in &filters {
                let totals = filter.as_totals().expect("the totals answer this filter");
                let counted = backend::totals::by_status(&db, &totals)
                    .await
                    .expect("totals");
                assert_eq!(counted, tallied(&db, filter).await, "{when}: {filter:?}");
                assert_eq!(
                    delivery::counts(&db, filter).await.expect("counts"),
                    counted
                );
            }
        }
    };
    check("as written").await;
    assert!(backend::totals::fold(&db).await.expect("folded") > 0);
    check("folded").await;
    assert_eq!(backend::totals::fold(&db).await.expect("folded"), 0);

    // The worker changes statuses (sent, failed with codes); retried and canceled messages
    // move again.
    let worker = simulated(&db);
    worker.try_execute_task(t0).await.expect("step");
    check("sent, not folded").await;
    let actor = audit::Actor::user(1, "dispatch@safeshipper.example");
    delivery::retry(&db, &unreachable.sid, &actor, t0 + SECOND)
        .await
        .expect("db")
        .expect("retried");
    let later = send(&db, &service(), &number(4), "Not yet", None, t0 + DAY).await;
    delivery::cancel(&db, &later.sid, &actor, t0 + SECOND)
        .await
        .expect("db")
        .expect("canceled");
    check("retried and canceled").await;
    backend::totals::fold(&db).await.expect("folded");
    check("folded again").await;
    assert!(!waiting.sid.is_empty());

    // A recipient, a sender, text, sending times and bounds within a day are the messages' own:
    // counted from them.
    for pairs in [
        vec![("to", "(415) 555-2002")],
        vec![("text", "depot")],
        vec![("date_from", "2026-11-30T08:00:00Z")],
    ] {
        assert_eq!(parse(&pairs).as_totals(), None, "{pairs:?}");
    }
}
on_both!(the_daily_totals_count_what_the_messages_say_folded_or_not);
