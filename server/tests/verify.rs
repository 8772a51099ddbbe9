//! The Verify-compatible API driven by Twilio's official Python library (every step and error
//! code), and the simulator's inbox: who may read it, and that it exists only while simulating.

mod common;

use backend::audit::Actor;
use backend::testing::Backend;
use common::{TestApp, spawn_app, spawn_app_with};
use domain::access::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

struct Key {
    id: String,
    secret: String,
}

async fn api_key(app: &TestApp) -> Key {
    let created = backend::api_keys::create(&app.db, &Actor::cli(), "sign-in service")
        .await
        .expect("key");
    Key {
        id: created.key.id,
        secret: backend::api_keys::reveal(&created.secret).to_owned(),
    }
}

/// Limits that let a test's handful of codes go out at once.
async fn open_limits(app: &TestApp) {
    let mut s = backend::settings::SendingSettings::default();
    s.limits.per_second = 10_000;
    s.limits.per_minute = 100_000;
    s.limits.per_hour = 1_000_000;
    s.limits.per_recipient_per_hour = 100;
    s.limits.per_recipient_per_day = 100;
    s.pace.long_code = 10_000;
    backend::settings::save_sending(&app.db, &Actor::system(), &s)
        .await
        .expect("settings");
}

async fn twilio_python_runs_the_whole_verify_flow(backend: Backend) {
    let app = spawn_app(backend).await;
    open_limits(&app).await;
    let key = api_key(&app).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("tools/bench/.venv/bin/python");
    assert!(
        python.exists(),
        "twilio-python is not installed: run `bash scripts/tools.sh test` (make test does)"
    );
    let numbers: Vec<String> = (0..6).map(|i| format!("+1415555{:04}", 2700 + i)).collect();
    let mut child = tokio::process::Command::new(python)
        .arg(root.join("server/tests/clients/twilio_python_verify.py"))
        .env("SMSDESK_URL", app.url(""))
        .env("ACCOUNT_SID", &app.sending.installation.account_sid)
        .env("API_KEY_ID", &key.id)
        .env("API_KEY_SECRET", &key.secret)
        .env("NUMBERS", numbers.join(","))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut steps: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    while let Some(line) = lines.next_line().await.expect("stdout") {
        let v: Value = serde_json::from_str(&line).expect("JSON line");
        let step = v["step"].as_str().expect("step").to_owned();
        if step == "deliver" {
            // The worker's step hands the waiting codes to the simulator.
            app.sending
                .worker(None)
                .try_execute_task(backend::db::now_micros())
                .await
                .expect("worker step");
            stdin.write_all(b"\n").await.expect("stdin");
            stdin.flush().await.expect("stdin");
        } else {
            steps.insert(step, v);
        }
    }
    let output = child.wait_with_output().await.expect("python ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let service = &steps["service"];
    assert!(service["sid"].as_str().unwrap().starts_with("VA"));
    assert_eq!(
        (&service["friendly_name"], &service["code_length"]),
        (&json!("SafeShipper"), &json!(6))
    );
    // Dates parse as datetimes in the client (it leaves other formats strings).
    assert!(
        steps["service_fetch"]["date_created"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );
    let start = &steps["start"];
    assert_eq!(
        (
            &start["status"],
            &start["valid"],
            &start["to"],
            &start["channel"]
        ),
        (
            &json!("pending"),
            &json!(false),
            &json!(numbers[0]),
            &json!("sms")
        )
    );
    assert_eq!(
        (&start["attempts"], &start["lookup"]),
        (&json!(1), &json!({}))
    );
    assert!(start["date_created"].as_str().unwrap().ends_with("+00:00"));
    let again = &steps["again"];
    assert_eq!(
        again["sid"], start["sid"],
        "a new start within the life is the same verification"
    );
    assert_eq!(
        (&again["attempts"], &again["codes"], &again["same"]),
        (&json!(2), &json!(2), &json!(true)),
        "and sends the same code again"
    );
    assert_eq!(
        (&steps["wrong"]["status"], &steps["wrong"]["valid"]),
        (&json!("pending"), &json!(false))
    );
    assert_eq!(
        (&steps["approved"]["status"], &steps["approved"]["valid"]),
        (&json!("approved"), &json!(true))
    );
    assert_eq!(steps["approved"]["to"], json!(numbers[0]));
    assert_eq!(steps["by_sid"]["status"], json!("approved"));
    assert_eq!(steps["fetch_pending"]["status"], json!("pending"));
    assert_eq!(steps["canceled"]["status"], json!("canceled"));
    assert_eq!(steps["approved_by_update"]["status"], json!("approved"));
    assert_eq!(
        steps["five_wrong"]["statuses"],
        json!(["pending", "pending", "pending", "pending", "pending"])
    );
    let errors = [
        ("fetch_after", 404, 20404),
        ("check_after", 404, 20404),
        ("fetch_canceled", 404, 20404),
        ("sixth_check", 429, 60202),
        ("after_max_checks", 404, 20404),
        ("sixth_send", 429, 60203),
        ("bad_to", 400, 60200),
        ("bad_channel", 400, 60200),
        ("long_name", 400, 60200),
        ("code_length", 400, 60200),
        ("no_target", 400, 60221),
        ("short_code", 400, 60200),
        ("bad_status", 400, 60200),
        ("unknown_service", 404, 20404),
        ("unknown_service_start", 404, 20404),
        ("unauthorized", 401, 20003),
    ];
    for (step, status, code) in errors {
        assert_eq!(
            (&steps[step]["status"], &steps[step]["code"]),
            (&json!(status), &json!(code)),
            "{step}: {}",
            steps[step]
        );
    }
    for (step, names) in [
        ("bad_to", "To"),
        ("bad_channel", "Channel"),
        ("long_name", "FriendlyName"),
        ("code_length", "CodeLength"),
        ("short_code", "Code"),
        ("bad_status", "Status"),
    ] {
        // The client puts "Unable to create record: " (or the like) before Twilio's message.
        let message = steps[step]["message"].as_str().unwrap_or_default();
        assert!(
            message.ends_with(&format!(": Invalid parameter: {names}")),
            "{step}: {message}"
        );
    }
    // Every code went through intake as a two-factor message; none is readable through the
    // message APIs once sent.
    let listed = reqwest::Client::new()
        .get(app.url("/api/v1/messages?category=two_factor"))
        .basic_auth(&key.id, Some(&key.secret))
        .send()
        .await
        .expect("list")
        .json::<Value>()
        .await
        .expect("JSON");
    let messages = listed["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 11, "{listed}");
    for m in messages {
        assert_eq!(m["body"], Value::Null, "{m}");
    }
}
on_both!(twilio_python_runs_the_whole_verify_flow);

async fn the_simulator_inbox_is_for_api_keys_and_admins(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let path = "/simulator/inbox?to=%2B14155552671";
    let anonymous = app.client().get(path).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
    let dispatcher = app.signed_in(Role::Dispatcher).await.get(path).await;
    assert_eq!(dispatcher.status, 403, "{}", dispatcher.text);
    let admin = app.signed_in(Role::Admin).await.get(path).await;
    assert_eq!(admin.status, 200, "{}", admin.text);
    assert_eq!(
        admin.json(),
        json!({ "to": "+14155552671", "messages": [] })
    );
    let with_key = reqwest::Client::new()
        .get(app.url(path))
        .basic_auth(&key.id, Some(&key.secret))
        .send()
        .await
        .expect("GET");
    assert_eq!(with_key.status(), 200);
    let wrong_key = reqwest::Client::new()
        .get(app.url(path))
        .basic_auth(&key.id, Some("wrong"))
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong_key.status(), 401);
    let bad = reqwest::Client::new()
        .get(app.url("/simulator/inbox?to=12"))
        .basic_auth(&key.id, Some(&key.secret))
        .send()
        .await
        .expect("GET");
    assert_eq!(bad.status(), 400);
}
on_both!(the_simulator_inbox_is_for_api_keys_and_admins);

async fn there_is_no_simulator_inbox_when_sending_for_real(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.twilio = Some(common::twilio_account(
            common::TWILIO_ACCOUNT,
            common::TWILIO_TOKEN,
            "+15005550006",
            "http://127.0.0.1:9".to_owned(),
        ));
    })
    .await;
    let key = api_key(&app).await;
    let answer = reqwest::Client::new()
        .get(app.url("/simulator/inbox?to=%2B14155552671"))
        .basic_auth(&key.id, Some(&key.secret))
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), 404);
}
on_both!(there_is_no_simulator_inbox_when_sending_for_real);
