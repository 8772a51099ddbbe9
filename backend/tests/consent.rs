//! The consent ledger as the consent page reads it, on SQLite and PostgreSQL: a number's
//! history newest first with its evidence, the latest entries, and changes made by hand (noted,
//! audited, chained like every entry), never showing a whole number.

mod common;

use backend::audit;
use backend::consent::{self, Action};
use backend::crypto::DataKey;
use backend::db::{Db, now_micros};

fn key() -> DataKey {
    DataKey::new(&[7u8; 32])
}

async fn a_numbers_history_and_a_change_by_hand(db: Db) {
    let t0 = now_micros();
    let number = "+14155552671";
    let mut tx = db.begin().await.expect("tx");
    consent::record(
        &mut tx,
        &key(),
        number,
        Action::OptOut,
        "inbound:SM1",
        "STOP",
        t0,
    )
    .await
    .expect("recorded");
    consent::record(
        &mut tx,
        &key(),
        "+14155552672",
        Action::OptOut,
        "twilio_callback",
        "21610",
        t0 + 1,
    )
    .await
    .expect("recorded");
    tx.commit().await.expect("commit");
    let hash = key().lookup_hash(number);
    assert_eq!(
        consent::opted_out_among(&db, &[&hash])
            .await
            .expect("db")
            .len(),
        1
    );

    let actor = audit::Actor::user(1, "compliance@safeshipper.example");
    consent::record_by_hand(
        &db,
        &key(),
        number,
        Action::OptIn,
        "Customer called from +1 415 555 2671, ticket 4411",
        &actor,
        t0 + 2,
    )
    .await
    .expect("recorded");
    // Intake may send to it again.
    assert!(
        consent::opted_out_among(&db, &[&hash])
            .await
            .expect("db")
            .is_empty()
    );

    let history = consent::history(&db, &key(), number)
        .await
        .expect("history");
    assert_eq!(
        history.iter().map(|e| (e.action, e.at)).collect::<Vec<_>>(),
        [(Action::OptIn, t0 + 2), (Action::OptOut, t0)]
    );
    assert_eq!(history[0].source, "console:compliance@safeshipper.example");
    assert!(history[0].evidence.starts_with("Customer called from +"));
    assert!(history[0].evidence.ends_with(", ticket 4411"));
    for e in &history {
        assert!(
            !e.number.contains("5552671") && !e.evidence.contains("5552671"),
            "{e:?}"
        );
    }
    let recent = consent::recent(&db, &key(), 2).await.expect("recent");
    assert_eq!(
        recent.iter().map(|e| e.at).collect::<Vec<_>>(),
        [t0 + 2, t0 + 1]
    );
    // Chained like every entry.
    assert_eq!(consent::verify(&db).await.expect("db"), Ok(3));
    let entries = audit::list(
        &db,
        &audit::Filter {
            action: Some("consent.".to_owned()),
            ..Default::default()
        },
    )
    .await
    .expect("audit");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, "consent.opt_in");
    assert!(!entries[0].target.contains("5552671"));
    assert!(
        !entries[0]
            .after_json
            .as_deref()
            .unwrap_or_default()
            .contains("5552671")
    );
}
on_both!(a_numbers_history_and_a_change_by_hand);

async fn the_ledger_reads_by_kind_source_and_time_and_counts_per_day(db: Db) {
    use backend::consent::{DayCount, LedgerFilter};
    const DAY: i64 = 86_400_000_000;
    let now = now_micros();
    let today = now - now.rem_euclid(DAY);
    let mut tx = db.begin().await.expect("tx");
    for (i, (action, source, at)) in [
        (Action::OptOut, "inbound:SM1", today - 2 * DAY),
        (Action::OptOut, "twilio_callback", today - 2 * DAY + 1),
        (Action::OptIn, "inbound:SM2", today - DAY),
        (Action::OptOut, "inbound:SM3", today),
    ]
    .into_iter()
    .enumerate()
    {
        let number = format!("+1415555260{i}");
        consent::record(&mut tx, &key(), &number, action, source, "STOP", at)
            .await
            .expect("recorded");
    }
    tx.commit().await.expect("commit");

    let read = |filter: LedgerFilter| {
        let db = db.clone();
        async move {
            consent::entries(&db, &key(), &filter, None, 50)
                .await
                .expect("read")
                .into_iter()
                .map(|e| e.source)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        read(LedgerFilter {
            action: Some(Action::OptOut),
            source: Some("inbound"),
            from: Some(today - 2 * DAY),
            until: Some(today + DAY),
        })
        .await,
        ["inbound:SM3", "inbound:SM1"]
    );
    assert_eq!(
        read(LedgerFilter {
            source: Some("twilio_callback"),
            ..Default::default()
        })
        .await,
        ["twilio_callback"]
    );
    assert_eq!(
        read(LedgerFilter {
            until: Some(today - DAY),
            ..Default::default()
        })
        .await,
        ["twilio_callback", "inbound:SM1"]
    );
    let page = consent::entries(&db, &key(), &LedgerFilter::default(), None, 2)
        .await
        .expect("read");
    let rest = consent::entries(&db, &key(), &LedgerFilter::default(), Some(page[1].id), 2)
        .await
        .expect("read");
    assert_eq!(rest.len(), 2, "the older page goes on from the last id");

    let days = consent::per_day(&db, now, 3).await.expect("counted");
    assert_eq!(
        days,
        [
            DayCount {
                day: today - 2 * DAY,
                opt_outs: 2,
                opt_ins: 0
            },
            DayCount {
                day: today - DAY,
                opt_outs: 0,
                opt_ins: 1
            },
            DayCount {
                day: today,
                opt_outs: 1,
                opt_ins: 0
            },
        ]
    );
}
on_both!(the_ledger_reads_by_kind_source_and_time_and_counts_per_day);
