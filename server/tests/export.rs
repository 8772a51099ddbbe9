//! The delivery log's CSV export over HTTP, on SQLite and PostgreSQL: streamed across several
//! batches with every row once, formulas neutralised, numbers whole only for roles that send,
//! its progress readable by the page that started it, and refused without a session or with a
//! filter that cannot apply.

mod common;

use backend::audit::Actor;
use backend::export::BATCH;
use backend::testing::Backend;
use common::{TestApp, spawn_app};
use domain::access::Role;
use serde_json::{Value, json};

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// Writes `n` messages through the JSON API (batches of up to 1,000), the first two with bodies
/// a spreadsheet would take for formulas.
async fn write_messages(app: &TestApp, n: usize) {
    let created = backend::api_keys::create(&app.db, &Actor::cli(), "export test")
        .await
        .expect("key");
    let secret = backend::api_keys::reveal(&created.secret).to_owned();
    let bodies: Vec<String> = (0..n)
        .map(|i| match i {
            0 => "=HYPERLINK(\"http://evil.example\",\"click\")".to_owned(),
            1 => "@SUM(1+1)".to_owned(),
            _ => format!("Load {i}, \"dock\" 4\nsecond line"),
        })
        .collect();
    for chunk in bodies.chunks(1_000) {
        let messages: Vec<Value> = chunk
            .iter()
            .map(|b| json!({ "to": "+14155552671", "body": b }))
            .collect();
        let response = reqwest::Client::new()
            .post(app.url("/api/v1/messages/batch"))
            .basic_auth(&created.key.id, Some(&secret))
            .json(&json!({ "messages": messages }))
            .send()
            .await
            .expect("batch");
        let status = response.status();
        let answer = response.text().await.expect("answer");
        assert_eq!(status, 202, "{answer}");
    }
}

fn records(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.expect("valid CSV").iter().map(str::to_owned).collect())
        .collect()
}

async fn the_log_exports_as_csv_streamed_and_safe(backend: Backend) {
    let app = spawn_app(backend).await;
    let n = 2 * BATCH as usize + 3;
    write_messages(&app, n).await;

    let dispatcher = app.signed_in(Role::Dispatcher).await;
    let answer = dispatcher
        .get(&format!("/messages/export.csv?progress={TOKEN}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.header("content-type"), "text/csv; charset=utf-8");
    assert!(
        answer
            .header("content-disposition")
            .starts_with("attachment; filename=\"smsdesk-messages-")
    );
    let rows = records(&answer.text);
    assert_eq!(rows.len(), n + 1, "a header and every message once");
    assert_eq!(rows[0][0], "sid");
    let column = |name: &str| rows[0].iter().position(|c| c == name).expect(name);
    let (to, body, sid) = (column("to"), column("body"), column("sid"));
    let mut sids: Vec<&str> = rows[1..].iter().map(|r| r[sid].as_str()).collect();
    sids.sort_unstable();
    sids.dedup();
    assert_eq!(sids.len(), n, "no row twice across the batches");
    // Newest first: the two formula bodies were written first, so they come last.
    assert_eq!(
        rows[n][body],
        "'=HYPERLINK(\"http://evil.example\",\"click\")"
    );
    assert_eq!(rows[n - 1][body], "'@SUM(1+1)");
    assert_eq!(
        rows[1][body],
        format!("Load {}, \"dock\" 4\nsecond line", n - 1)
    );
    // A whole number begins with + too: written as text.
    assert_eq!(rows[1][to], "'+14155552671");

    // The page that started it reads how far it got.
    let progress = dispatcher
        .call("export_progress", &[("token", TOKEN)])
        .await;
    assert_eq!(progress.status, 200, "{}", progress.text);
    assert_eq!(
        progress.json(),
        json!({ "rows": n, "done": true, "failed": false })
    );

    // Finance reads the same log with the numbers masked; a filter narrows it.
    let finance = app.signed_in(Role::Finance).await;
    let answer = finance.get("/messages/export.csv?text=SUM").await;
    assert_eq!(answer.status, 200);
    let rows = records(&answer.text);
    assert_eq!(rows.len(), 2);
    assert!(!rows[1][to].contains("5552671"), "{}", rows[1][to]);

    // A filter that cannot apply says why; without a session there is nothing.
    let answer = finance.get("/messages/export.csv?status=lost").await;
    assert_eq!(answer.status, 400);
    assert!(answer.text.contains("problems"), "{}", answer.text);
    let answer = app.client().get("/messages/export.csv").await;
    assert_eq!(answer.status, 401);
    assert!(!answer.text.contains("HYPERLINK"));
}
on_both!(the_log_exports_as_csv_streamed_and_safe);

/// The consent ledger's downloads: one number's history with the whole number, a range of days
/// streamed across batches (every entry once), filters, the chart, and the roles.
async fn the_consent_ledger_exports_as_csv_and_draws_its_chart(backend: Backend) {
    use backend::consent::{self, Action};
    let app = spawn_app(backend).await;
    let now = backend::db::now_micros();
    let officer = Actor::user(1, "compliance@safeshipper.example");
    for number in ["+14155552671", "+14155552672"] {
        consent::record_by_hand(
            &app.db,
            &app.sending.key,
            number,
            Action::OptOut,
            "=called in",
            &officer,
            now,
        )
        .await
        .expect("recorded");
    }
    // 1,001 earlier records, more than one batch of the export; imported twice, kept once.
    let mut csv = "number,action,at,evidence\n".to_owned();
    for i in 0..1_001 {
        csv.push_str(&format!(
            "+1415556{i:04},opt_out,2025-06-30,Signed form {i}\n"
        ));
    }
    for expected in [1_001, 0] {
        let report = consent::import::import(&app.db, &app.sending.key, &csv, "US", &officer, now)
            .await
            .expect("db")
            .expect("imported");
        assert_eq!(report.imported, expected);
        assert_eq!(report.skipped.len(), 1_001 - expected);
    }
    assert_eq!(
        consent::verify(&app.db).await.expect("db"),
        Ok(1_003),
        "chained like every entry"
    );

    let compliance = app.signed_in(Role::Compliance).await;
    let one = compliance
        .get("/consent/export.csv?number=(415)%20555-2671")
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert!(one.header("content-type").starts_with("text/csv"));
    let rows = records(&one.text);
    assert_eq!(
        rows[0],
        [
            "entry",
            "at_utc",
            "number",
            "action",
            "source",
            "evidence",
            "entry_hash"
        ]
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][2], "'+14155552671", "the number looked up, whole");
    assert_eq!(rows[1][3], "opt_out");
    assert_eq!(rows[1][5], "'=called in", "formulas neutralised");
    assert_eq!(rows[1][6].len(), 64, "its link in the chain");

    let range = compliance
        .get("/consent/export.csv?from=2025-06-01&to=2025-06-30")
        .await;
    assert_eq!(range.status, 200);
    let rows = records(&range.text);
    assert_eq!(rows.len(), 1 + 1_001);
    let mut evidence: Vec<&str> = rows[1..].iter().map(|r| r[5].as_str()).collect();
    evidence.sort_unstable();
    evidence.dedup();
    assert_eq!(evidence.len(), 1_001, "every entry once");
    assert!(
        rows[1..].iter().all(|r| r[2].contains('*')),
        "numbers masked"
    );

    let by_hand = compliance
        .get("/consent/export.csv?source=console&action=opt_out")
        .await;
    assert_eq!(records(&by_hand.text).len(), 1 + 2);
    let bad = compliance.get("/consent/export.csv?from=30/06/2025").await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.starts_with("from:"), "{}", bad.text);

    let chart = compliance.get("/consent/opt-outs.svg?days=30").await;
    assert_eq!(chart.status, 200);
    assert_eq!(chart.header("content-type"), "image/svg+xml");
    assert!(chart.text.starts_with("<svg"));

    let finance = app.signed_in(Role::Finance).await;
    assert_eq!(
        finance
            .get("/consent/export.csv?number=%2B14155552671")
            .await
            .status,
        403
    );
    assert_eq!(finance.get("/consent/opt-outs.svg").await.status, 403);
    assert_eq!(
        app.client()
            .get("/consent/export.csv?from=2025-06-01")
            .await
            .status,
        401
    );
}
on_both!(the_consent_ledger_exports_as_csv_and_draws_its_chart);
