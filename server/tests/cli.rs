//! The `smsdesk` command line, run as a script would run it: bytes in, JSON out.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn smsdesk(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsdesk"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("smsdesk starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    child.wait_with_output().expect("smsdesk ran")
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn segments_counts_a_body_read_exactly_from_stdin() {
    let out = smsdesk(&["segments"], "Hi “there” 😜\n".as_bytes());
    assert!(out.status.success());
    assert_eq!(
        json_lines(&out),
        vec![json!({
            "encoding": "UCS-2",
            "segments": 1,
            "characters": 13,
            "unicode_scalars": 13,
            "non_gsm": ["“", "”", "😜"],
            "smart_text": "Hi “there” 😜\n",
        })]
    );
}

#[test]
fn segments_smart_sends_look_alikes_as_gsm7() {
    let out = smsdesk(&["segments", "--smart"], "Hi “there” – ok".as_bytes());
    let answer = &json_lines(&out)[0];
    assert_eq!(answer["encoding"], "GSM-7");
    assert_eq!(answer["smart_text"], "Hi \"there\" - ok");
    assert_eq!(answer["non_gsm"], json!([]));
}

#[test]
fn segments_jsonl_answers_every_line_even_after_a_bad_one() {
    let long = "a".repeat(1_601);
    let input = format!(
        "{}\nnot json\n{}\n\n{}\n",
        json!({"text": "{".repeat(81), "smart": false}),
        json!({"text": long}),
        json!({"text": "“x”", "smart": true}),
    );
    let out = smsdesk(&["segments", "--jsonl"], input.as_bytes());
    assert!(out.status.success());
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4);
    assert_eq!(
        (lines[0]["characters"].clone(), lines[0]["segments"].clone()),
        (json!(162), json!(2))
    );
    assert!(lines[1]["error"].as_str().unwrap().contains("line 2"));
    assert!(
        lines[2]["error"]
            .as_str()
            .unwrap()
            .contains("1601 characters")
    );
    assert_eq!(lines[3]["smart_text"], "\"x\"");
}

#[test]
fn segments_rejects_a_body_over_the_limit_with_an_error_object() {
    let out = smsdesk(&["segments"], "a".repeat(1_601).as_bytes());
    assert!(!out.status.success());
    assert!(
        json_lines(&out)[0]["error"]
            .as_str()
            .unwrap()
            .contains("at most 1600")
    );
}

#[test]
fn segments_says_what_is_wrong_with_input_that_is_not_utf8() {
    let out = smsdesk(&["segments"], b"abc\xff");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not UTF-8"));
}

#[test]
fn phone_parses_a_national_number_with_the_default_region() {
    let out = smsdesk(&["phone", "--region", "US"], b"(415) 555-2671\n");
    assert!(out.status.success());
    let answer = &json_lines(&out)[0];
    assert_eq!(answer["valid"], true);
    assert_eq!(answer["e164"], "+14155552671");
    assert_eq!(answer["region"], "US");
}

#[test]
fn phone_jsonl_reports_invalid_numbers_with_a_reason() {
    let input = format!(
        "{}\n{}\n",
        json!({"input": "+61 412 345 678"}),
        json!({"input": "not a number", "region": "US"}),
    );
    let lines = json_lines(&smsdesk(&["phone", "--jsonl"], input.as_bytes()));
    assert_eq!(lines[0]["e164"], "+61412345678");
    assert_eq!(lines[0]["region"], "AU");
    assert_eq!(lines[0]["type"], "mobile");
    assert_eq!(lines[1]["valid"], false);
    assert!(!lines[1]["error"].as_str().unwrap().is_empty());
}

#[test]
fn api_key_create_prints_one_json_object_and_keeps_the_account_sid() {
    let dir = std::env::temp_dir().join(format!("smsdesk_cli_key_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/smsdesk.db", dir.display());
    let create = |name: &str| {
        let out = smsdesk(
            &["api-key", "create", "--name", name, "--database-url", &url],
            b"",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json_lines(&out).remove(0)
    };
    let first = create("dispatch service");
    let second = create("tracking service");
    let id = first["id"].as_str().expect("id");
    assert!(id.starts_with("SK") && id.len() == 34, "{id}");
    assert!(first["secret"].as_str().expect("secret").len() >= 40);
    let account = first["account_sid"].as_str().expect("account sid");
    assert!(
        account.starts_with("AC") && account.len() == 34,
        "{account}"
    );
    assert_eq!(
        second["account_sid"], first["account_sid"],
        "generated once, kept"
    );
    assert_ne!(second["id"], first["id"]);
    let missing = smsdesk(
        &["api-key", "create", "--name", " ", "--database-url", &url],
        b"",
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("name"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn settings_round_trip_as_json_and_a_bad_document_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("smsdesk_cli_settings_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/smsdesk.db", dir.display());
    let export = || {
        let out = smsdesk(&["settings", "export", "--database-url", &url], b"");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("one JSON document")
    };
    let mut settings = export();
    assert_eq!(settings["limits"]["per_second"], 10);
    settings["limits"]["per_second"] = json!(4);
    settings["allowed_countries"] = json!(["US", "AU"]);

    let check = smsdesk(
        &["settings", "import", "-", "--check", "--database-url", &url],
        settings.to_string().as_bytes(),
    );
    assert_eq!(
        json_lines(&check)[0],
        json!({ "applied": false, "changed": ["allowed_countries", "limits.per_second"] })
    );
    assert_eq!(
        export()["limits"]["per_second"],
        10,
        "--check applies nothing"
    );

    let file = dir.join("settings.json");
    std::fs::write(&file, settings.to_string()).expect("written");
    let applied = smsdesk(
        &[
            "settings",
            "import",
            file.to_str().expect("path"),
            "--database-url",
            &url,
        ],
        b"",
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert_eq!(json_lines(&applied)[0]["applied"], true);
    assert_eq!(export(), settings);

    let mut typo = settings.clone();
    typo["limits"]["per_secnd"] = json!(1);
    let refused = smsdesk(
        &["settings", "import", "-", "--database-url", &url],
        typo.to_string().as_bytes(),
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("limits.per_secnd"));
    let mut out_of_range = settings.clone();
    out_of_range["limits"]["per_second"] = json!(0);
    let refused = smsdesk(
        &["settings", "import", "-", "--database-url", &url],
        out_of_range.to_string().as_bytes(),
    );
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(export(), settings, "nothing changed");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn consent_verify_seals_earlier_entries_then_names_a_changed_one() {
    let dir = std::env::temp_dir().join(format!("smsdesk_cli_consent_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/smsdesk.db", dir.display());
    let sql = |statement: &'static str| {
        let url = url.clone();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                let db = backend::db::Db::connect(&url).await.expect("db");
                db.migrate().await.expect("migrated");
                backend::on_db!(&db, |pool| sqlx::query(statement)
                    .execute(pool)
                    .await
                    .expect("statement")
                    .rows_affected());
                db.close().await;
            });
    };
    // Two entries written before the ledger was chained.
    sql(
        "INSERT INTO consent_events (phone_hash, phone_encrypted, action, source, evidence, at)
         VALUES ('h1', 'x', 'opt_out', 'twilio:21610', 'error 21610', 1),
                ('h1', 'x', 'opt_in', 'user:admin@safeshipper.test', 'asked by phone', 2)",
    );
    let verify = || smsdesk(&["consent", "verify", "--database-url", &url], b"");
    let out = verify();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&out), vec![json!({ "ok": true, "entries": 2 })]);
    sql("UPDATE consent_events SET evidence = 'asked by e-mail' WHERE id = 2");
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    let verdict = json_lines(&out).remove(0);
    assert_eq!(
        (&verdict["ok"], &verdict["entry"]),
        (&json!(false), &json!(2))
    );
    assert!(
        verdict["problem"]
            .as_str()
            .expect("problem")
            .contains("changed"),
        "{verdict}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn seed_messages_fills_an_empty_outbox_and_refuses_one_in_use() {
    let dir = std::env::temp_dir().join(format!("smsdesk_cli_seed_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/smsdesk.db", dir.display());
    let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let seed = |extra: &[&str]| {
        let mut args = vec![
            "seed",
            "messages",
            "--count",
            "12000",
            "--days",
            "3",
            "--database-url",
            &url,
            "--data-key",
            key,
        ];
        args.extend_from_slice(extra);
        smsdesk(&args, b"")
    };
    let out = seed(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_lines(&out)[0]["written"], 12_000);
    // Fake history is not added to an outbox in use unless asked.
    let out = seed(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--into-existing"));
    let out = seed(&["--into-existing"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The log reads them: newest first, every status of the mix, the keys they name.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let db = backend::db::Db::connect(&url).await.expect("db");
        let data_key = backend::crypto::DataKey::new(&[0u8; 32]);
        let counts = backend::delivery::counts(&db, &backend::delivery::Filter::default())
            .await
            .expect("counts");
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 24_000);
        assert!(counts.len() >= 5, "{counts:?}");
        let page = backend::delivery::page(&db, &data_key, &Default::default(), None, 50)
            .await
            .expect("page");
        assert_eq!(page.messages.len(), 50);
        assert!(page.messages[0].to.starts_with("+1415"));
        db.close().await;
    });
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn reset_second_factor_removes_a_users_phone_and_names_an_unknown_user() {
    let dir = std::env::temp_dir().join(format!("smsdesk_cli_2fa_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}/smsdesk.db", dir.display());
    let created = smsdesk(
        &[
            "user",
            "create",
            "--email",
            "ops@safeshipper.test",
            "--role",
            "dispatcher",
            "--password-stdin",
            "--database-url",
            &url,
        ],
        b"a long enough password\n",
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let id = json_lines(&created)[0]["id"].as_i64().expect("id");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let db = backend::db::Db::connect(&url).await.expect("database");
        let key = backend::crypto::DataKey::new(&[1u8; 32]);
        let actor = backend::audit::Actor::cli();
        backend::second_factor::enrol(&db, &key, &actor, id, "+61412345678", 1)
            .await
            .expect("enrolled");
        db.close().await;
    });
    let reset = |email: &str| {
        smsdesk(
            &[
                "user",
                "reset-second-factor",
                "--email",
                email,
                "--database-url",
                &url,
            ],
            b"",
        )
    };
    let first = reset("OPS@safeshipper.test");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        json_lines(&first)[0],
        json!({ "email": "ops@safeshipper.test", "removed": true })
    );
    assert_eq!(
        json_lines(&reset("ops@safeshipper.test"))[0]["removed"],
        false
    );
    let unknown = reset("nobody@safeshipper.test");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user nobody@safeshipper.test"));
    std::fs::remove_dir_all(&dir).ok();
}
