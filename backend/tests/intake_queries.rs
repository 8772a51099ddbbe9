//! A batch costs a fixed number of queries, whatever its size: the count of statements sqlx
//! runs (its `sqlx::query` log events, counted by a subscriber for this whole test binary) is the
//! same for 10 messages as for 1,000, on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use backend::crypto::DataKey;
use backend::db::{Db, now_micros};
use backend::intake::{Content, Intake, Submission};
use backend::outbox::Source;
use backend::testing::TestDb;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Counts the statements sqlx runs, and keeps their summaries for the failure message.
struct Statements(Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Statements {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        // A connection the pool happens to open meanwhile sets itself up with PRAGMAs: that is
        // the pool's doing, not the batch's.
        let mut summary = Summary(String::new());
        event.record(&mut summary);
        if !summary
            .0
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("pragma")
        {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1.lock().expect("log").push(summary.0);
        }
    }
}

/// The `summary` field of sqlx's log event (the statement's first words).
struct Summary(String);

impl tracing::field::Visit for Summary {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.0 = value.to_owned();
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = format!("{value:?}");
        }
    }
}

fn template_batch(n: u32) -> Vec<Submission> {
    (0..n)
        .map(|i| Submission {
            to: format!("+1415555{:04}", 2000 + i),
            content: Content::Template {
                key: "shipment_delivered".into(),
                variables: [
                    ("tracking_number".to_owned(), format!("SS-{i}")),
                    ("recipient_name".to_owned(), "Ada".to_owned()),
                ]
                .into(),
            },
            category: None,
            sender: None,
            validity_seconds: None,
        })
        .collect()
}

/// Statements run to check and write a batch of `n` (settings read beforehand, as the server
/// caches them).
async fn statements_for(db: &Db, counter: &AtomicUsize, n: u32) -> usize {
    let settings = backend::settings::sending(db).await.expect("settings");
    let intake = Intake::new(
        db.clone(),
        DataKey::new(&[7u8; 32]),
        Arc::new(tokio::sync::Notify::new()),
    );
    let source = Source::ApiKey("SKqueries".into());
    let before = counter.load(Ordering::SeqCst);
    let results = intake
        .submit(&settings, &source, template_batch(n), now_micros())
        .await
        .expect("written");
    let after = counter.load(Ordering::SeqCst);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), n as usize);
    after - before
}

async fn measure(db: &Db, counter: &AtomicUsize) -> (usize, usize) {
    backend::templates::seed_defaults(db).await.expect("seeded");
    // A first batch warms the pool's connections up.
    statements_for(db, counter, 10).await;
    let small = statements_for(db, counter, 10).await;
    let large = statements_for(db, counter, 1_000).await;
    (small, large)
}

// One test in this binary, both backends in turn: the counter is process-wide.
#[tokio::test]
async fn a_batch_costs_the_same_few_queries_whatever_its_size() {
    let counter = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    tracing_subscriber::registry()
        .with(Statements(counter.clone(), log.clone()))
        .init();
    for t in [TestDb::sqlite().await, TestDb::postgres().await] {
        log.lock().expect("log").clear();
        let (small, large) = measure(&t.db, &counter).await;
        let seen = log.lock().expect("log").join(" | ");
        // Consent, the template, the budgets, the messages, their events, the reservation per
        // category (PostgreSQL's driver also logs the transaction's BEGIN).
        assert_eq!(
            small, large,
            "10 messages: {small}, 1,000: {large}; all: {seen}"
        );
        assert!(large <= 7, "{large} statements for 1,000 messages");
        t.cleanup().await;
    }
}
