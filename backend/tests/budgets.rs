//! Budgets against a real database: a hard stop holds under concurrent sends (and, on
//! PostgreSQL, across two instances), each warning level raises one alert per period, a
//! canceled message gives its reservation back, emergencies pass when exempt.

mod common;

use std::sync::Arc;

use backend::audit::{self, Actor};
use backend::budgets;
use backend::crypto::DataKey;
use backend::db::{Db, now_micros};
use backend::intake::{Content, Intake, Refusal, RefusalCode, Submission};
use backend::on_db;
use backend::outbox::{MessageView, Source};
use backend::settings;
use domain::budget::{Budget, Period};
use domain::template::Category;

/// The US starting price of one segment, µ$.
const US_SEGMENT: i64 = 8_300;

fn key() -> DataKey {
    DataKey::new(&[7u8; 32])
}

fn intake(db: &Db) -> Intake {
    Intake::new(db.clone(), key(), Arc::new(tokio::sync::Notify::new()))
}

fn dispatcher() -> Source {
    Source::User("dispatch@safeshipper.example".to_owned())
}

fn message(n: usize, category: Option<Category>) -> Submission {
    Submission {
        to: format!("+1415555{:04}", 2000 + n),
        content: Content::Body("Shipment 4411 is at the depot".to_owned()),
        category,
        sender: None,
        validity_seconds: None,
    }
}

fn budget(
    period: Period,
    category: Option<Category>,
    dollars_micros: i64,
    hard_stop: bool,
) -> Budget {
    Budget {
        period,
        category,
        amount_micros: dollars_micros,
        warn_percents: vec![50, 80, 100],
        hard_stop,
    }
}

async fn set(db: &Db, b: &Budget) {
    budgets::set(db, &Actor::cli(), b, now_micros())
        .await
        .expect("db")
        .expect("a valid budget");
}

async fn send(intake: &Intake, db: &Db, submission: Submission) -> Result<MessageView, Refusal> {
    let s = settings::sending(db).await.expect("settings");
    intake
        .submit(&s, &dispatcher(), vec![submission], now_micros())
        .await
        .expect("db")
        .pop()
        .expect("one")
}

async fn reserved_today(db: &Db) -> i64 {
    let day = Period::Day.start(now_micros());
    on_db!(db, |pool| sqlx::query_scalar::<_, Option<i64>>(
        "SELECT CAST(SUM(micros) AS BIGINT) FROM budget_spend WHERE day = $1"
    )
    .bind(day)
    .fetch_one(pool)
    .await
    .expect("spend"))
    .unwrap_or(0)
}

async fn stored_messages(db: &Db) -> i64 {
    on_db!(db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM messages"
    )
    .fetch_one(pool)
    .await
    .expect("count"))
}

/// 30 sends at once, through three intakes (each its own group-commit writer), against a daily
/// hard stop of $0.10: twelve US segments fit, never a thirteenth.
async fn a_hard_stop_holds_under_30_concurrent_sends(db: Db) {
    set(&db, &budget(Period::Day, None, 100_000, true)).await;
    let intakes = [intake(&db), intake(&db), intake(&db)];
    let sends = (0..30).map(|n| {
        let (intake, db) = (intakes[n % 3].clone(), db.clone());
        tokio::spawn(async move { send(&intake, &db, message(n, None)).await })
    });
    let outcomes: Vec<Result<MessageView, Refusal>> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|joined| joined.expect("task"))
        .collect();
    let accepted = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(accepted, 12, "{outcomes:?}");
    for refusal in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert_eq!(refusal.code, RefusalCode::BudgetExceeded);
        assert_eq!(refusal.twilio_code, Some(30010));
        assert!(
            refusal.message.contains("daily budget") && refusal.message.contains("resets at"),
            "{}",
            refusal.message
        );
    }
    assert_eq!(stored_messages(&db).await, 12);
    assert_eq!(reserved_today(&db).await, 12 * US_SEGMENT);
    let standing = budgets::standings(&db, now_micros()).await.expect("db");
    assert_eq!(standing[0].spent_micros, 12 * US_SEGMENT);
    assert_eq!(standing[0].raised, vec![50, 80], "99.6 % reached 50 and 80");
}
on_both!(a_hard_stop_holds_under_30_concurrent_sends);

/// Two instances (two pools, two intakes) on one PostgreSQL database, 30 sends at once against
/// a monthly shipment hard stop: never over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hard_stop_holds_across_two_instances_on_postgres() {
    let t = backend::testing::TestDb::postgres().await;
    let second = Db::connect(&t.url()).await.expect("second instance");
    set(
        &t.db,
        &budget(Period::Month, Some(Category::Shipment), 50_000, true),
    )
    .await;
    let instances = [
        (t.db.clone(), intake(&t.db)),
        (second.clone(), intake(&second)),
    ];
    let sends = (0..30).map(|n| {
        let (db, intake) = instances[n % 2].clone();
        tokio::spawn(async move { send(&intake, &db, message(n, Some(Category::Shipment))).await })
    });
    let outcomes: Vec<_> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|joined| joined.expect("task"))
        .collect();
    // $0.05 holds six segments of $0.0083.
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 6);
    assert_eq!(stored_messages(&t.db).await, 6);
    assert_eq!(reserved_today(&t.db).await, 6 * US_SEGMENT);
    // Other categories are not this budget's.
    assert!(
        send(
            &intake(&second),
            &second,
            message(99, Some(Category::Driver))
        )
        .await
        .is_ok()
    );
    second.close().await;
    t.cleanup().await;
}

/// Each level is raised once per period however many sends pass it, with an audit entry.
async fn each_warning_level_raises_one_alert(db: Db) {
    // $0.05 without a hard stop: 3 segments are 49.8 %, the 4th 66.4 %, the 5th 83 %, the 7th
    // 116 %.
    set(&db, &budget(Period::Day, None, 50_000, false)).await;
    let intake = intake(&db);
    for n in 0..10 {
        send(&intake, &db, message(n, None))
            .await
            .expect("no hard stop");
    }
    let alerts = budgets::current_alerts(&db, now_micros())
        .await
        .expect("db");
    assert_eq!(
        alerts.len(),
        1,
        "the banner shows the highest level per budget"
    );
    assert_eq!(alerts[0].level, 100);
    assert_eq!(
        alerts[0].spent_micros,
        7 * US_SEGMENT,
        "raised by the send that crossed it"
    );
    let standing = budgets::standings(&db, now_micros()).await.expect("db");
    assert_eq!(standing[0].raised, vec![50, 80, 100]);
    let entries = audit::list(
        &db,
        &audit::Filter {
            action: Some("budget.alert".to_owned()),
            ..Default::default()
        },
    )
    .await
    .expect("audit");
    assert_eq!(entries.len(), 3);
    // Each waits for the webhook once.
    let waiting = budgets::unnotified(&db).await.expect("db");
    assert_eq!(waiting.len(), 3);
    assert!(
        budgets::mark_notified(&db, &waiting[0], now_micros())
            .await
            .expect("db")
    );
    assert!(
        !budgets::mark_notified(&db, &waiting[0], now_micros())
            .await
            .expect("db")
    );
    assert_eq!(budgets::unnotified(&db).await.expect("db").len(), 2);
}
on_both!(each_warning_level_raises_one_alert);

/// A message canceled before it was sent gives its reservation back, so the next one fits.
async fn a_canceled_message_gives_its_reservation_back(db: Db) {
    set(&db, &budget(Period::Day, None, 2 * US_SEGMENT, true)).await;
    let intake = intake(&db);
    let first = send(&intake, &db, message(1, None)).await.expect("fits");
    send(&intake, &db, message(2, None)).await.expect("fits");
    let third = send(&intake, &db, message(3, None))
        .await
        .expect_err("over");
    assert_eq!(third.code, RefusalCode::BudgetExceeded);
    backend::delivery::cancel(&db, &first.sid, &Actor::cli(), now_micros())
        .await
        .expect("db")
        .expect("canceled");
    assert_eq!(reserved_today(&db).await, US_SEGMENT);
    send(&intake, &db, message(3, None))
        .await
        .expect("fits again");
}
on_both!(a_canceled_message_gives_its_reservation_back);

/// Emergencies pass a spent hard stop while the setting exempts them, and still count.
async fn emergencies_pass_a_hard_stop_when_exempt(db: Db) {
    set(&db, &budget(Period::Day, None, US_SEGMENT, true)).await;
    let intake = intake(&db);
    send(&intake, &db, message(1, None)).await.expect("fits");
    send(&intake, &db, message(2, Some(Category::Emergency)))
        .await
        .expect("exempt by default");
    assert_eq!(reserved_today(&db).await, 2 * US_SEGMENT, "it counts");
    let mut s = settings::sending(&db).await.expect("settings");
    s.budgets.exempt_emergency = false;
    settings::save_sending(&db, &Actor::system(), &s)
        .await
        .expect("saved");
    let refused = send(&intake, &db, message(3, Some(Category::Emergency)))
        .await
        .expect_err("no longer exempt");
    assert_eq!(refused.code, RefusalCode::BudgetExceeded);
}
on_both!(emergencies_pass_a_hard_stop_when_exempt);

/// Budgets are set, replaced, listed and removed, each audited; bad ones are refused with why.
async fn budgets_are_set_replaced_and_removed(db: Db) {
    set(
        &db,
        &budget(Period::Month, Some(Category::Driver), 1_000_000, false),
    )
    .await;
    set(
        &db,
        &budget(Period::Month, Some(Category::Driver), 2_000_000, true),
    )
    .await;
    let all = budgets::list(&db).await.expect("db");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].budget.amount_micros, 2_000_000);
    assert!(all[0].budget.hard_stop);
    let bad = budgets::set(
        &db,
        &Actor::cli(),
        &budget(Period::Day, None, 0, true),
        now_micros(),
    )
    .await
    .expect("db");
    assert!(bad.expect_err("zero").contains("more than $0"));
    assert!(
        budgets::remove(&db, &Actor::cli(), Period::Month, Some(Category::Driver))
            .await
            .expect("db")
    );
    assert!(
        !budgets::remove(&db, &Actor::cli(), Period::Month, Some(Category::Driver))
            .await
            .expect("db")
    );
    let entries = audit::list(
        &db,
        &audit::Filter {
            action: Some("budget.".to_owned()),
            ..Default::default()
        },
    )
    .await
    .expect("audit");
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["budget.remove", "budget.set", "budget.set"]);
    assert!(
        entries[1]
            .before_json
            .as_deref()
            .unwrap_or("")
            .contains("1000000")
    );
}
on_both!(budgets_are_set_replaced_and_removed);
