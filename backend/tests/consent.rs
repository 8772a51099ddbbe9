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
