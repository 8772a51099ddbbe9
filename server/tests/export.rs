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
        assert_eq!(response.status(), 202);
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
