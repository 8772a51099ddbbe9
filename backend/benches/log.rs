//! The delivery log at size: seeds `SMSDESK_LOG_MESSAGES` messages (1,000,000 unless set) into a
//! fresh SQLite file and a fresh PostgreSQL database (`SMSDESK_TEST_POSTGRES_URL`), then times
//! every filter of the log: the first page (50 rows, one query) and the counts per status as the
//! page asks for them (a search by text counted up to `delivery::TEXT_COUNT_CAP`), each
//! asked 20 times, p50 and p95 in milliseconds (the target: p95 < 50 ms for each); then
//! the whole log exported as CSV the way the server streams it, with its time and peak memory.
//! `make bench` runs it.

use std::time::{Duration, Instant};

use backend::crypto::DataKey;
use backend::db::{Db, now_micros};
use backend::delivery::{self, Cursor, Filter};
use backend::export;
use backend::seed::{self, Spec};
use backend::testing::{Backend, TestDb};
use domain::delivery::LogQuery;

const RUNS: usize = 20;
const DAY: i64 = 86_400_000_000;

fn percentile(times: &mut [Duration], p: f64) -> f64 {
    times.sort_unstable();
    let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
    times[i].as_secs_f64() * 1_000.0
}

async fn time<F, Fut, T>(mut f: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        std::hint::black_box(f().await);
        times.push(started.elapsed());
    }
    (percentile(&mut times, 0.5), percentile(&mut times, 0.95))
}

async fn measure(name: &str, db: &Db, key: &DataKey, count: u64) {
    let now = now_micros();
    let started = Instant::now();
    seed::messages(
        db,
        key,
        &Spec {
            count,
            days: 30,
            now,
            seed: 7,
        },
        |_| {},
    )
    .await
    .expect("seeded");
    let seeded = started.elapsed();
    match db {
        Db::Sqlite(pool, _) => {
            sqlx::query("ANALYZE").execute(pool).await.expect("analyze");
        }
        Db::Postgres(pool) => {
            sqlx::query("VACUUM ANALYZE messages")
                .execute(pool)
                .await
                .expect("analyze");
        }
    }
    println!(
        "{name}: {count} messages seeded in {:.1} s ({:.0} rows/s)",
        seeded.as_secs_f64(),
        count as f64 / seeded.as_secs_f64()
    );
    let day = |micros: i64| {
        chrono::DateTime::from_timestamp_micros(micros)
            .expect("a time")
            .format("%Y-%m-%d")
            .to_string()
    };
    let yesterday = day(now - DAY);
    let week_ago = day(now - 7 * DAY);
    let one_recipient = seed::recipient(4_242);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("everything", vec![]),
        ("status=problems", vec![("status", "problems")]),
        ("status=delivered", vec![("status", "delivered")]),
        ("template", vec![("template", "driver_route_change")]),
        ("category=emergency", vec![("category", "emergency")]),
        (
            "source (a user)",
            vec![("source", "alice@safeshipper.example")],
        ),
        ("recipient", vec![("to", one_recipient.as_str())]),
        ("error_code=30005", vec![("error_code", "30005")]),
        ("text (rare)", vec![("text", "SS0000042")]),
        ("text (common)", vec![("text", "gate b")]),
        (
            "one day",
            vec![
                ("date_from", yesterday.as_str()),
                ("date_to", yesterday.as_str()),
            ],
        ),
        (
            "failed + template + week",
            vec![
                ("status", "failed"),
                ("template", "shipment_delayed"),
                ("date_from", week_ago.as_str()),
            ],
        ),
    ];
    println!(
        "{:<26} {:>10} {:>10} {:>12} {:>12}",
        "filter", "page p50", "page p95", "counts p50", "counts p95"
    );
    let mut worst: f64 = 0.0;
    for (label, pairs) in &cases {
        let filter = Filter::parse(
            &LogQuery::from_pairs(pairs.iter().copied()),
            key,
            Some("US"),
        )
        .expect("a valid filter");
        let page = time(|| delivery::page(db, key, &filter, None, 50)).await;
        let counts = time(|| delivery::log_counts(db, &filter)).await;
        worst = worst.max(page.1).max(counts.1);
        println!(
            "{label:<26} {:>8.2}ms {:>8.2}ms {:>10.2}ms {:>10.2}ms",
            page.0, page.1, counts.0, counts.1
        );
    }
    // A page deep in the log costs what the first does (keyset).
    let middle = (count / 2) as i64;
    let everything = Filter::default();
    let deep = time(|| delivery::page(db, key, &everything, Some(Cursor::Older(middle)), 50)).await;
    worst = worst.max(deep.1);
    println!(
        "{:<26} {:>8.2}ms {:>8.2}ms",
        "page half-way down", deep.0, deep.1
    );
    println!("{name}: worst p95 {worst:.2} ms (target < 50 ms)");
    // The spend page's charts (issue 11: each under 100 ms): the query and the SVG together.
    use backend::spend::{self, Group};
    let (from, until) = (
        now.div_euclid(DAY) * DAY - 29 * DAY,
        now.div_euclid(DAY) * DAY + DAY,
    );
    let mut chart_worst: f64 = 0.0;
    for (label, group, per_day) in [
        ("per day by category", Group::Category, true),
        ("by template", Group::Template, false),
        ("by country", Group::Country, false),
    ] {
        let timed = time(|| async {
            let rows = spend::report(db, group, per_day, from, until)
                .await
                .expect("report");
            if per_day {
                spend::draw_per_day(&rows, from, 30, Some(100_000_000)).expect("drawn")
            } else {
                spend::draw_bars(&rows).expect("drawn")
            }
        })
        .await;
        chart_worst = chart_worst.max(timed.1);
        println!(
            "{:<26} {:>8.2}ms {:>8.2}ms",
            format!("chart {label}"),
            timed.0,
            timed.1
        );
    }
    let unpriced = time(|| spend::unpriced(db, from, now, 50)).await;
    println!(
        "{:<26} {:>8.2}ms {:>8.2}ms",
        "unpriced after a day", unpriced.0, unpriced.1
    );
    println!("{name}: worst chart p95 {chart_worst:.2} ms (target < 100 ms)");
    // The CSV export as the server streams it: a batch read, written, sent on (here: counted
    // and dropped), the next batch; time and the process's peak memory.
    let before = peak_memory_kib();
    let started = Instant::now();
    let (mut cursor, mut rows, mut bytes) = (None, 0u64, 0u64);
    loop {
        let batch = delivery::list(db, key, &everything, cursor, export::BATCH)
            .await
            .expect("a batch");
        rows += batch.len() as u64;
        bytes += export::rows(&batch, true).len() as u64;
        match batch.last() {
            Some(last) if batch.len() == export::BATCH as usize => {
                cursor = Some(Cursor::Older(last.id))
            }
            _ => break,
        }
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "{name}: CSV export of {rows} rows ({:.0} MB) in {took:.1} s ({:.0} rows/s); peak memory {} MiB before, {} MiB after\n",
        bytes as f64 / 1e6,
        rows as f64 / took,
        before / 1024,
        peak_memory_kib() / 1024
    );
}

/// The process's peak resident memory so far (Linux `VmHWM`), KiB.
fn peak_memory_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let count: u64 = std::env::var("SMSDESK_LOG_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let key = DataKey::new(&[7u8; 32]);
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let t = TestDb::new(backend).await;
            let name = match backend {
                Backend::Sqlite => "SQLite",
                Backend::Postgres => "PostgreSQL",
            };
            measure(name, &t.db, &key, count).await;
            t.cleanup().await;
        }
    });
}
