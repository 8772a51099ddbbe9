//! Sending through the running server over HTTP, on SQLite and PostgreSQL: API keys, the JSON
//! API (checks, idempotency, batches), the status webhook's signatures, the whole pipeline with
//! the simulator posting signed callbacks to the server's own webhook, and the Twilio-compatible
//! endpoint driven by Twilio's own Python library. The worker and the simulator's clock are
//! driven by hand: nothing sleeps to wait for work.

mod common;

use backend::audit::Actor;
use backend::testing::Backend;
use common::{AUTH_TOKEN, TestApp, spawn_app, spawn_app_with};
use domain::signature::AuthToken;
use futures::StreamExt;
use serde_json::{Value, json};

struct Key {
    id: String,
    secret: String,
}

async fn api_key(app: &TestApp) -> Key {
    let created = backend::api_keys::create(&app.db, &Actor::cli(), "dispatch service")
        .await
        .expect("key");
    Key {
        id: created.key.id,
        secret: backend::api_keys::reveal(&created.secret).to_owned(),
    }
}

async fn open_limits(app: &TestApp) {
    let mut s = backend::settings::SendingSettings::default();
    s.limits.per_second = 10_000;
    s.limits.per_minute = 100_000;
    s.limits.per_hour = 1_000_000;
    s.pace.long_code = 10_000;
    s.simulator.delivered_percent = 100;
    backend::settings::save_sending(&app.db, &Actor::system(), &s)
        .await
        .expect("settings");
}

struct Reply {
    status: u16,
    body: Value,
}

async fn send(app: &TestApp, key: &Key, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = reqwest::Client::new()
        .post(app.url(path))
        .basic_auth(&key.id, Some(&key.secret))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    Reply {
        status,
        body: serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text })),
    }
}

async fn get(app: &TestApp, key: &Key, path: &str) -> Reply {
    let response = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(&key.secret)
        .send()
        .await
        .expect("GET");
    Reply {
        status: response.status().as_u16(),
        body: response.json().await.unwrap_or(Value::Null),
    }
}

async fn message_count(app: &TestApp) -> i64 {
    backend::on_db!(&app.db, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM messages"
    )
    .fetch_one(pool)
    .await
    .expect("count"))
}

async fn the_api_needs_a_live_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let body = r#"{"to": "+14155552671", "body": "hi"}"#;
    let anonymous = reqwest::Client::new()
        .post(app.url("/api/v1/messages"))
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(anonymous.status().as_u16(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let wrong = Key {
        id: key.id.clone(),
        secret: "wrong".into(),
    };
    let r = send(&app, &wrong, "/api/v1/messages", body, &[]).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(
        send(&app, &key, "/api/v1/messages", body, &[]).await.status,
        202
    );
    // Revoked from the console of the instance that just took it: refused at the next request
    // (the key was checked a moment ago and would otherwise be trusted for a second).
    let admin = app.signed_in(domain::access::Role::Admin).await;
    assert_eq!(
        admin
            .call("revoke_api_key", &[("id", &key.id)])
            .await
            .status,
        200
    );
    assert_eq!(
        send(&app, &key, "/api/v1/messages", body, &[]).await.status,
        401
    );
    assert_eq!(message_count(&app).await, 1);
}
on_both!(the_api_needs_a_live_key);

async fn api_credentials_follow_http_rules_and_bad_ones_are_explained(backend: Backend) {
    use base64::Engine;
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    // An unknown message is 404 once the key is accepted, 401 before.
    let ask = |authorization: Option<String>| {
        let url = app.url("/api/v1/messages/SMnope");
        async move {
            let mut request = reqwest::Client::new().get(url);
            if let Some(a) = authorization {
                request = request.header("authorization", a);
            }
            let response = request.send().await.expect("GET");
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().expect("ascii").to_owned());
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().map(str::to_owned);
            (status, challenge, message)
        }
    };
    let accepted = [
        format!("Bearer {}", key.secret),
        // The scheme is case-insensitive in HTTP; spaces before the credentials are skipped.
        format!("bearer {}", key.secret),
        format!("BEARER    {}", key.secret),
        format!("basic {}", b64(&format!("{}:{}", key.id, key.secret))),
        format!("Basic   {}", b64(&format!("{}:{}", key.id, key.secret))),
    ];
    for authorization in accepted {
        let (status, ..) = ask(Some(authorization.clone())).await;
        assert_eq!(status, 404, "{authorization}");
    }
    let refused = [
        (None, "send an API key"),
        // HTTP drops trailing spaces: this arrives as `Bearer`.
        (Some("Bearer ".to_owned()), "the Bearer token is empty"),
        (Some("Bearer".to_owned()), "the Bearer token is empty"),
        (
            Some(format!("Basic {}", b64(&key.secret))),
            "the Basic credentials are not base64 of id:secret",
        ),
        (
            Some("Basic not-base64!".to_owned()),
            "the Basic credentials are not base64 of id:secret",
        ),
        (
            Some(format!("Digest {}", key.secret)),
            "use Basic or Bearer authorization",
        ),
        (
            Some(format!("Bearer {}x", key.secret)),
            "the API key is unknown, revoked, or its secret is wrong",
        ),
    ];
    for (authorization, expected) in refused {
        let (status, challenge, message) = ask(authorization.clone()).await;
        assert_eq!(status, 401, "{authorization:?}");
        assert_eq!(
            challenge.as_deref(),
            Some("Basic realm=\"smsdesk API\""),
            "{authorization:?}"
        );
        let message = message.expect("a message");
        assert!(
            message.starts_with(expected),
            "{authorization:?}: {message}"
        );
    }
}
on_both!(api_credentials_follow_http_rules_and_bad_ones_are_explained);

async fn the_json_api_accepts_checks_and_reports(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let r = send(
        &app,
        &key,
        "/api/v1/messages",
        r#"{"to": "(415) 555-2671", "body": "Shipment SS-1 picked up", "category": "shipment"}"#,
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["status"], "accepted");
    assert_eq!(r.body["to"], "+14155552671");
    assert_eq!(
        (r.body["segments"].as_i64(), r.body["priority"].as_str()),
        (Some(1), Some("normal"))
    );
    let id = r.body["id"].as_str().expect("id").to_owned();
    let fetched = get(&app, &key, &format!("/api/v1/messages/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["events"][0]["kind"], "accepted");
    assert_eq!(get(&app, &key, "/api/v1/messages/SMnope").await.status, 404);

    for (body, status, code, field) in [
        (
            r#"{"to": "+1 415 55", "body": "x"}"#,
            422,
            "invalid_number",
            Some("to"),
        ),
        (
            r#"{"to": "+44 7400 123456", "body": "x"}"#,
            422,
            "country_not_allowed",
            Some("to"),
        ),
        (
            r#"{"to": "+14155552671", "body": "x", "bdy": 1}"#,
            400,
            "invalid_request",
            None,
        ),
        (
            r#"{"to": "+14155552671", "body": "x", "template": "t"}"#,
            400,
            "invalid_request",
            None,
        ),
        (
            r#"{"to": "+14155552671", "template": "shipment_created", "variables": {"nope": "1"}}"#,
            422,
            "unknown_variable",
            Some("variables"),
        ),
        (
            r#"{"to": "+14155552671", "body": "x", "category": "urgent"}"#,
            400,
            "invalid_request",
            Some("category"),
        ),
        ("not json", 400, "invalid_request", None),
    ] {
        let r = send(&app, &key, "/api/v1/messages", body, &[]).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["code"], code, "{body}");
        assert_eq!(r.body["error"]["field"].as_str(), field, "{body}");
        assert!(
            !r.body["error"]["message"]
                .as_str()
                .expect("message")
                .is_empty()
        );
    }
    assert_eq!(message_count(&app).await, 1, "nothing refused was stored");
    let spec = reqwest::get(app.url("/api/v1/openapi.json"))
        .await
        .expect("GET")
        .json::<Value>()
        .await
        .expect("JSON");
    assert!(spec["paths"]["/api/v1/messages"]["post"].is_object());
}
on_both!(the_json_api_accepts_checks_and_reports);

async fn a_retried_request_with_an_idempotency_key_sends_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let body = r#"{"to": "+14155552671", "body": "Your code is 123456", "category": "two_factor"}"#;
    let first = send(
        &app,
        &key,
        "/api/v1/messages",
        body,
        &[("idempotency-key", "req-1")],
    )
    .await;
    let again = send(
        &app,
        &key,
        "/api/v1/messages",
        body,
        &[("idempotency-key", "req-1")],
    )
    .await;
    assert_eq!(first.status, 202);
    assert_eq!((again.status, &again.body), (202, &first.body));
    assert_eq!(message_count(&app).await, 1);
    let other = send(
        &app,
        &key,
        "/api/v1/messages",
        r#"{"to": "+14155552671", "body": "another"}"#,
        &[("idempotency-key", "req-1")],
    )
    .await;
    assert_eq!(
        (other.status, other.body["error"]["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    assert_eq!(message_count(&app).await, 1);
}
on_both!(a_retried_request_with_an_idempotency_key_sends_once);

async fn a_batch_answers_each_message_in_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let batch = json!({ "messages": [
        { "to": "+14155552671", "body": "one" },
        { "to": "nonsense", "body": "two" },
        { "to": "+61 412 345 678", "body": "three", "category": "driver" },
        { "to": "+14155552672", "body": "Evacuate", "category": "emergency" },
    ]});
    let r = send(
        &app,
        &key,
        "/api/v1/messages/batch",
        &batch.to_string(),
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        (r.body["accepted"].as_i64(), r.body["refused"].as_i64()),
        (Some(2), Some(2))
    );
    let results = r.body["results"].as_array().expect("results");
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[1]["error"]["code"], "invalid_number");
    assert_eq!(results[2]["index"], 2);
    // A service cannot give free text emergency priority (it names an emergency template).
    assert_eq!(results[3]["error"]["code"], "category_not_allowed");
    assert_eq!(message_count(&app).await, 2);
    let too_many = json!({ "messages": vec![json!({"to": "+14155552671", "body": "x"}); 1_001] });
    let r = send(
        &app,
        &key,
        "/api/v1/messages/batch",
        &too_many.to_string(),
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].as_str()),
        (413, Some("batch_too_large"))
    );
}
on_both!(a_batch_answers_each_message_in_order);

async fn the_json_api_lists_with_the_logs_filters_and_cursors(backend: Backend) {
    let app = spawn_app(backend).await;
    open_limits(&app).await;
    let key = api_key(&app).await;
    let batch = json!({ "messages": [
        { "to": "+14155552671", "body": "Pickup at the depot" },
        { "to": "+14155552672", "body": "Leaving now", "category": "driver" },
        { "to": "+14155552671", "body": "Arrived at the DEPOT" },
        { "to": "+14155552673", "body": "Your code is 123456", "category": "two_factor" },
    ]});
    let r = send(
        &app,
        &key,
        "/api/v1/messages/batch",
        &batch.to_string(),
        &[],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let ids: Vec<String> = r.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    let listed = |body: &Value| -> Vec<String> {
        body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["id"].as_str().expect("id").to_owned())
            .collect()
    };

    // Newest first, two at a time: the cursors walk back and forth.
    let first = get(&app, &key, "/api/v1/messages?limit=2").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(listed(&first.body), [ids[3].clone(), ids[2].clone()]);
    assert_eq!(first.body["previous_cursor"], Value::Null);
    let next = first.body["next_cursor"].as_str().expect("a next page");
    let second = get(
        &app,
        &key,
        &format!("/api/v1/messages?limit=2&cursor={next}"),
    )
    .await;
    assert_eq!(listed(&second.body), [ids[1].clone(), ids[0].clone()]);
    assert_eq!(second.body["next_cursor"], Value::Null);
    let back = second.body["previous_cursor"]
        .as_str()
        .expect("a page before");
    let again = get(
        &app,
        &key,
        &format!("/api/v1/messages?limit=2&cursor={back}"),
    )
    .await;
    assert_eq!(listed(&again.body), listed(&first.body));

    // The log's filters: recipient in any format, text in any case, category; two-factor
    // bodies are neither shown nor searched.
    let r = get(
        &app,
        &key,
        "/api/v1/messages?to=(415)%20555-2671&text=depot",
    )
    .await;
    assert_eq!(listed(&r.body), [ids[2].clone(), ids[0].clone()]);
    assert_eq!(r.body["messages"][0]["to"], "+14155552671");
    let r = get(&app, &key, "/api/v1/messages?category=two_factor").await;
    assert_eq!(listed(&r.body), [ids[3].clone()]);
    assert_eq!(r.body["messages"][0]["body"], Value::Null);
    assert!(listed(&get(&app, &key, "/api/v1/messages?text=123456").await.body).is_empty());
    let r = get(
        &app,
        &key,
        &format!("/api/v1/messages?source=api_key:{}&status=accepted", key.id),
    )
    .await;
    assert_eq!(listed(&r.body).len(), 4);

    // What cannot apply is a 400 naming the parameter.
    for (query, field) in [
        ("status=lost", "status"),
        ("to=12", "to"),
        ("date_from=yesterday", "date_from"),
        ("cursor=x12", "cursor"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
    ] {
        let r = get(&app, &key, &format!("/api/v1/messages?{query}")).await;
        assert_eq!(
            (r.status, r.body["error"]["field"].as_str()),
            (400, Some(field)),
            "{query}: {}",
            r.body
        );
    }
    let r = get(&app, &key, "/api/v1/messages?limit=many").await;
    assert_eq!(r.status, 400, "{}", r.body);
    // And without a key, nothing.
    let r = reqwest::get(app.url("/api/v1/messages"))
        .await
        .expect("GET");
    assert_eq!(r.status(), 401);
}
on_both!(the_json_api_lists_with_the_logs_filters_and_cursors);

async fn a_message_goes_through_the_simulator_and_its_signed_callbacks(backend: Backend) {
    let app = spawn_app(backend).await;
    open_limits(&app).await;
    let key = api_key(&app).await;
    let r = send(
        &app,
        &key,
        "/api/v1/messages",
        r#"{"to": "+14155552671", "body": "Shipment SS-9 delivered"}"#,
        &[],
    )
    .await;
    let id = r.body["id"].as_str().expect("id").to_owned();
    let worker = app.sending.worker(Some(app.sending.status_url()));
    let step = worker
        .try_execute_task(backend::db::now_micros())
        .await
        .expect("step");
    assert_eq!(step.sent, 1);
    assert_eq!(
        get(&app, &key, &format!("/api/v1/messages/{id}"))
            .await
            .body["status"],
        "queued"
    );
    let backend::worker::Provider::Simulator(sim) = app.sending.worker(None).provider().clone()
    else {
        panic!("no Twilio credentials: the simulator sends");
    };
    // Both callbacks (sent, delivered) posted, signed, to the server's webhook, and accepted.
    assert_eq!(sim.post_due(i64::MAX).await, 2);
    let m = get(&app, &key, &format!("/api/v1/messages/{id}"))
        .await
        .body;
    assert_eq!(m["status"], "delivered");
    let kinds: Vec<&str> = m["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["accepted", "submitted", "callback", "callback"]);
}
on_both!(a_message_goes_through_the_simulator_and_its_signed_callbacks);

/// A message sent through the API and handed to the (fake) Twilio: its id and Twilio's sid.
/// A message as the Twilio-compatible fetch answers it (`GET …/Messages/{sid}.json`), as text.
async fn twilio_fetch(app: &TestApp, key: &Key, sid: &str) -> String {
    let account = &app.sending.installation.account_sid;
    reqwest::Client::new()
        .get(app.url(&format!(
            "/2010-04-01/Accounts/{account}/Messages/{sid}.json"
        )))
        .basic_auth(&key.id, Some(&key.secret))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body")
}

async fn handed_to_twilio(app: &TestApp, key: &Key) -> (String, String) {
    open_limits(app).await;
    let r = send(
        app,
        key,
        "/api/v1/messages",
        r#"{"to": "+14155552671", "body": "x"}"#,
        &[],
    )
    .await;
    let id = r.body["id"].as_str().expect("id").to_owned();
    let worker = app.sending.worker(None);
    worker
        .try_execute_task(backend::db::now_micros())
        .await
        .expect("step");
    let provider_sid: String = backend::on_db!(&app.db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT provider_sid FROM messages WHERE sid = $1"
    )
    .bind(&id)
    .fetch_one(pool)
    .await
    .expect("sid"));
    (id, provider_sid)
}

async fn forged_callbacks_are_refused_and_duplicates_ignored(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let (id, provider_sid) = handed_to_twilio(&app, &key).await;
    let url = app.sending.status_url();
    let params = [
        ("AccountSid", app.sending.installation.account_sid.clone()),
        ("MessageSid", provider_sid.clone()),
        ("MessageStatus", "delivered".to_owned()),
        ("SmsSid", provider_sid.clone()),
        ("SmsStatus", "delivered".to_owned()),
    ];
    let token = AuthToken::new(AUTH_TOKEN).expect("token");
    let signature = domain::signature::sign(&token, &url, &params);
    let post = |signature: Option<String>, params: Vec<(&'static str, String)>| {
        let url = url.clone();
        async move {
            let mut request = reqwest::Client::new().post(&url).form(&params);
            if let Some(s) = signature {
                request = request.header("X-Twilio-Signature", s);
            }
            request.send().await.expect("POST").status().as_u16()
        }
    };
    assert_eq!(post(None, params.to_vec()).await, 403, "unsigned");
    let forged = domain::signature::sign(&AuthToken::new("guessed").expect("t"), &url, &params);
    assert_eq!(
        post(Some(forged), params.to_vec()).await,
        403,
        "signed with another token"
    );
    let mut tampered = params.to_vec();
    tampered[2].1 = "failed".into();
    assert_eq!(
        post(Some(signature.clone()), tampered).await,
        403,
        "parameters changed"
    );
    assert_eq!(post(Some(signature.clone()), params.to_vec()).await, 204);
    assert_eq!(
        post(Some(signature), params.to_vec()).await,
        204,
        "duplicate"
    );
    let m = get(&app, &key, &format!("/api/v1/messages/{id}"))
        .await
        .body;
    assert_eq!(m["status"], "delivered");
    assert_eq!(
        m["events"].as_array().expect("events").len(),
        3,
        "one callback event"
    );
}
on_both!(forged_callbacks_are_refused_and_duplicates_ignored);

async fn callbacks_are_read_by_name_and_unknown_parameters_are_signed_too(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let (id, provider_sid) = handed_to_twilio(&app, &key).await;
    let url = app.sending.status_url();
    let token = AuthToken::new(AUTH_TOKEN).expect("token");
    let post = |params: Vec<(&'static str, String)>| {
        let url = url.clone();
        let signature = domain::signature::sign(&token, &url, &params);
        async move {
            reqwest::Client::new()
                .post(&url)
                .header("X-Twilio-Signature", signature)
                .form(&params)
                .send()
                .await
                .expect("POST")
                .status()
                .as_u16()
        }
    };
    // Only the older names, in another order, among parameters smsdesk does not read.
    let params = vec![
        ("ApiVersion", "2010-04-01".to_owned()),
        ("SmsStatus", "undelivered".to_owned()),
        ("ErrorMessage", "Landline or unreachable carrier".to_owned()),
        ("To", "+14155552671".to_owned()),
        ("RawDlrDoneDate", "2605201200".to_owned()),
        ("ErrorCode", "30006".to_owned()),
        ("Price", "-0.00790".to_owned()),
        ("SmsSid", provider_sid.clone()),
    ];
    let mut twice = params.clone();
    twice.push(("SmsStatus", "delivered".to_owned()));
    assert_eq!(post(twice).await, 400, "a status given twice is ambiguous");
    let mut unknown_changed = params.clone();
    let signature = domain::signature::sign(&token, &url, &params);
    unknown_changed[4].1 = "2605201201".to_owned();
    let forged = reqwest::Client::new()
        .post(&url)
        .header("X-Twilio-Signature", signature)
        .form(&unknown_changed)
        .send()
        .await
        .expect("POST");
    assert_eq!(
        forged.status().as_u16(),
        403,
        "a parameter smsdesk does not read is signed too"
    );
    assert_eq!(post(params).await, 204);
    let m = get(&app, &key, &format!("/api/v1/messages/{id}"))
        .await
        .body;
    assert_eq!(
        (
            &m["status"],
            &m["error_code"],
            &m["error_message"],
            &m["price"]
        ),
        (
            &json!("undelivered"),
            &json!(30006),
            &json!("Landline or unreachable carrier"),
            &json!("0.0079")
        )
    );
    // Beside it, what intake estimated: one segment at the US list price.
    assert_eq!(m["estimated_price"], json!("0.0083"));
    // Twilio's own shape: a negative string with five decimals.
    let twilio: Value = serde_json::from_str(&twilio_fetch(&app, &key, &id).await).expect("JSON");
    assert_eq!(
        (&twilio["price"], &twilio["price_unit"]),
        (&json!("-0.00790"), &json!("USD"))
    );
}
on_both!(callbacks_are_read_by_name_and_unknown_parameters_are_signed_too);

async fn twilio_python_sends_through_the_compatible_endpoint(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("tools/bench/.venv/bin/python");
    assert!(
        python.exists(),
        "twilio-python is not installed: run `bash scripts/tools.sh test` (make test does)"
    );
    // tokio's Command: the server answering Python runs on this test's (single) thread.
    let output = tokio::process::Command::new(python)
        .arg(root.join("server/tests/clients/twilio_python.py"))
        .env("SMSDESK_URL", app.url(""))
        .env("ACCOUNT_SID", &app.sending.installation.account_sid)
        .env("API_KEY_ID", &key.id)
        .env("API_KEY_SECRET", &key.secret)
        .env("TO", "+14155552671")
        .env("BAD_TO", "+1415555")
        .output()
        .await
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let steps: Vec<Value> = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let created = &steps[0];
    assert_eq!(created["status"], "accepted");
    assert_eq!(created["to"], "+14155552671");
    assert_eq!(created["num_segments"], "1");
    assert_eq!(created["body"], "SafeShipper: shipment SS-7 picked up 🚚");
    assert!(
        created["date_created"].as_str().is_some(),
        "RFC 2822 date read"
    );
    let sid = created["sid"].as_str().expect("sid");
    assert!(sid.starts_with("SM") && sid.len() == 34);
    assert_eq!(steps[1]["sid"], sid);
    assert_eq!(
        (steps[2]["status"].as_i64(), steps[2]["code"].as_i64()),
        (Some(400), Some(21211))
    );
    assert_eq!(
        (steps[3]["status"].as_i64(), steps[3]["code"].as_i64()),
        (Some(401), Some(20003))
    );
    assert_eq!(message_count(&app).await, 1);
    let m = get(&app, &key, &format!("/api/v1/messages/{sid}"))
        .await
        .body;
    assert_eq!(
        (m["segments"].as_i64(), m["encoding"].as_str()),
        (Some(1), Some("UCS-2"))
    );
}
on_both!(twilio_python_sends_through_the_compatible_endpoint);

/// A body that sends `first` and then never ends (a client trickling its request).
fn endless_body(first: &'static str) -> reqwest::Body {
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first) })
        .chain(futures::stream::pending());
    reqwest::Body::wrap_stream(stream)
}

async fn the_batch_endpoint_checks_the_key_before_reading_the_body(backend: Backend) {
    let app = spawn_app(backend).await;
    // If smsdesk read the body first, this request would wait for a body that never ends.
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reqwest::Client::new()
            .post(app.url("/api/v1/messages/batch"))
            .basic_auth("SK0000", Some("wrong"))
            .header("content-type", "application/json")
            .body(endless_body("{\"messages\": ["))
            .send(),
    )
    .await
    .expect("answered without the body")
    .expect("POST");
    assert_eq!(answer.status().as_u16(), 401);
}
on_both!(the_batch_endpoint_checks_the_key_before_reading_the_body);

async fn a_request_that_never_finishes_its_body_is_cut_off(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.request_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let key = api_key(&app).await;
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reqwest::Client::new()
            .post(app.url("/api/v1/messages"))
            .basic_auth(&key.id, Some(&key.secret))
            .header("content-type", "application/json")
            .body(endless_body("{\"to\": "))
            .send(),
    )
    .await
    .expect("cut off by smsdesk, not by this test")
    .expect("POST");
    assert_eq!(answer.status().as_u16(), 408);
    assert_eq!(message_count(&app).await, 0);
}
on_both!(a_request_that_never_finishes_its_body_is_cut_off);

async fn a_database_outage_is_503_on_both_apis_never_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    // The server's own pool goes away, as when the database stops answering.
    app.sending.db.close().await;
    let json = send(
        &app,
        &key,
        "/api/v1/messages",
        r#"{"to": "+14155552671", "body": "hi"}"#,
        &[],
    )
    .await;
    assert_eq!(
        (json.status, json.body["error"]["code"].as_str()),
        (503, Some("database_unavailable"))
    );
    let account = &app.sending.installation.account_sid;
    let twilio = reqwest::Client::new()
        .post(app.url(&format!("/2010-04-01/Accounts/{account}/Messages.json")))
        .basic_auth(&key.id, Some(&key.secret))
        .form(&[("To", "+14155552671"), ("Body", "hi")])
        .send()
        .await
        .expect("POST");
    assert_eq!(twilio.status().as_u16(), 503);
    let body: Value = twilio.json().await.expect("Twilio's error shape");
    assert_eq!(
        (body["code"].as_i64(), body["status"].as_i64()),
        (Some(20500), Some(503))
    );
    assert!(body["more_info"].as_str().is_some());
}
on_both!(a_database_outage_is_503_on_both_apis_never_401);

async fn every_route_records_who_sent_the_message(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let one = send(
        &app,
        &key,
        "/api/v1/messages",
        r#"{"to": "+14155552671", "body": "one"}"#,
        &[],
    )
    .await;
    assert_eq!(one.status, 202);
    assert_eq!(one.body["source"], format!("api_key:{}", key.id));
    let batch = send(
        &app,
        &key,
        "/api/v1/messages/batch",
        r#"{"messages": [{"to": "+14155552672", "body": "two"}]}"#,
        &[],
    )
    .await;
    assert_eq!(batch.status, 202);
    let account = &app.sending.installation.account_sid;
    let twilio = reqwest::Client::new()
        .post(app.url(&format!("/2010-04-01/Accounts/{account}/Messages.json")))
        .basic_auth(&key.id, Some(&key.secret))
        .form(&[("To", "+14155552673"), ("Body", "three")])
        .send()
        .await
        .expect("POST");
    assert_eq!(twilio.status().as_u16(), 201);
    let dispatcher = app.signed_in(domain::access::Role::Dispatcher).await;
    let sent = dispatcher
        .call_json(
            "send_messages",
            &json!({ "draft": { "recipients": "+14155552674", "template": null,
                "variables": {}, "body": "four", "category": null } }),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    let sources: Vec<String> = backend::on_db!(&app.db, |pool| sqlx::query_scalar(
        "SELECT source FROM messages ORDER BY id"
    )
    .fetch_all(pool)
    .await
    .expect("sources"));
    let api = format!("api_key:{}", key.id);
    assert_eq!(sources[..3], [api.clone(), api.clone(), api]);
    assert!(sources[3].starts_with("user:"), "{}", sources[3]);
}
on_both!(every_route_records_who_sent_the_message);

async fn two_factor_codes_are_not_returned_by_any_read(backend: Backend) {
    let app = spawn_app(backend).await;
    let key = api_key(&app).await;
    let created = send(
        &app,
        &key,
        "/api/v1/messages",
        r#"{"to": "+14155552671", "template": "two_factor_auth",
            "variables": {"code": "482913", "minutes": "10"}}"#,
        &[],
    )
    .await;
    assert_eq!(created.status, 202, "{}", created.body);
    assert_eq!(created.body["body"], Value::Null);
    let sid = created.body["id"].as_str().expect("id").to_owned();
    let read = get(&app, &key, &format!("/api/v1/messages/{sid}")).await;
    assert_eq!(read.status, 200);
    assert!(!read.body.to_string().contains("482913"), "{}", read.body);
    let fetched = twilio_fetch(&app, &key, &sid).await;
    assert!(!fetched.contains("482913"), "{fetched}");
}
on_both!(two_factor_codes_are_not_returned_by_any_read);

async fn every_response_carries_a_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let fresh = reqwest::get(app.url("/healthz")).await.expect("GET");
    let id = fresh
        .headers()
        .get("x-request-id")
        .expect("a request id is given")
        .to_str()
        .expect("text");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let kept = reqwest::Client::new()
        .get(app.url("/api/v1/messages/SM0"))
        .header("x-request-id", "caller-chose-this")
        .send()
        .await
        .expect("GET");
    assert_eq!(kept.headers()["x-request-id"], "caller-chose-this");
}
on_both!(every_response_carries_a_request_id);

/// Runs one of the twilio-python scripts in `server/tests/clients` against the app with an API
/// key and `env`; its steps (one JSON object per line) by name.
async fn twilio_python_steps(
    app: &TestApp,
    key: &Key,
    script: &str,
    env: &[(&str, &str)],
) -> std::collections::HashMap<String, Value> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("tools/bench/.venv/bin/python");
    assert!(
        python.exists(),
        "twilio-python is not installed: run `bash scripts/tools.sh test` (make test does)"
    );
    let output = tokio::process::Command::new(python)
        .arg(root.join("server/tests/clients").join(script))
        .env("SMSDESK_URL", app.url(""))
        .env("ACCOUNT_SID", &app.sending.installation.account_sid)
        .env("API_KEY_ID", &key.id)
        .env("API_KEY_SECRET", &key.secret)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .map(|v| (v["step"].as_str().expect("step").to_owned(), v))
        .collect()
}

async fn twilio_python_lists_with_filters_and_pages(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut s = backend::settings::SendingSettings::default();
    s.limits.per_recipient_per_hour = 100;
    s.limits.per_recipient_per_day = 100;
    s.pace.long_code = 100;
    backend::settings::save_sending(&app.db, &Actor::system(), &s)
        .await
        .expect("settings");
    let key = api_key(&app).await;
    let mut sids = Vec::new();
    for (n, to) in ["+14155552671", "+14155552672"]
        .iter()
        .cycle()
        .take(7)
        .enumerate()
    {
        let body = json!({ "to": to, "body": format!("Shipment SS-{n} picked up") }).to_string();
        let r = send(&app, &key, "/api/v1/messages", &body, &[]).await;
        assert_eq!(r.status, 202, "{}", r.body);
        sids.push(r.body["id"].as_str().expect("sid").to_owned());
    }
    let now = backend::db::now_micros();
    let step = app
        .sending
        .worker(None)
        .try_execute_task(now)
        .await
        .expect("step");
    assert_eq!((step.sent, step.deferred), (7, 0), "{step:?}");
    let today = chrono::DateTime::from_timestamp_micros(now)
        .expect("now")
        .format("%Y-%m-%d")
        .to_string();
    let steps = twilio_python_steps(
        &app,
        &key,
        "twilio_python_list.py",
        &[
            ("TO", "+14155552671"),
            ("FROM", server::sending::SIMULATOR_FROM),
            ("TODAY", &today),
        ],
    )
    .await;
    let newest_first: Vec<&str> = sids.iter().rev().map(String::as_str).collect();
    let to_first: Vec<&str> = newest_first
        .iter()
        .copied()
        .filter(|s| {
            let i = sids.iter().position(|x| x == s).expect("ours");
            i % 2 == 0
        })
        .collect();
    assert_eq!(steps["all"]["sids"], json!(newest_first));
    assert_eq!(
        steps["to_paged"]["sids"],
        json!(to_first),
        "three pages of two"
    );
    assert_eq!(steps["to_paged"]["to"], json!(["+14155552671"]));
    assert_eq!(steps["limit"]["sids"], json!(newest_first[..3]));
    assert_eq!(
        steps["from"]["sids"],
        json!(newest_first),
        "the default sender"
    );
    assert_eq!(steps["sent_today"]["sids"], json!(to_first));
    assert_eq!(steps["sent_on_day"]["sids"], json!(newest_first));
    assert_eq!(steps["sent_long_ago"]["sids"], json!([]));
    assert_eq!(steps["pages"]["first"], json!(newest_first[..4]));
    assert_eq!(steps["pages"]["second"], json!(newest_first[4..]));
    assert_eq!(
        steps["pages"]["third"],
        json!(true),
        "no page after the last"
    );
    assert_eq!(
        (
            steps["invalid"]["status"].as_i64(),
            steps["invalid"]["code"].as_i64()
        ),
        (Some(400), Some(21211))
    );
}
on_both!(twilio_python_lists_with_filters_and_pages);

async fn twilio_python_reads_usage_records(backend: Backend) {
    use backend::intake::{Content, Submission};
    use backend::outbox::Source;
    use chrono::Datelike;
    let app = spawn_app(backend).await;
    open_limits(&app).await;
    let key = api_key(&app).await;
    let settings = backend::settings::sending(&app.db).await.expect("settings");
    const DAY: i64 = 86_400_000_000;
    let now = backend::db::now_micros();
    let yesterday = now - now.rem_euclid(DAY) - DAY / 2;
    let source = Source::ApiKey(key.id.clone());
    let write = |body: String, at: i64| {
        let (app, settings, source) = (&app, &settings, &source);
        async move {
            let submission = Submission {
                to: "+14155552671".to_owned(),
                content: Content::Body(body),
                category: None,
                sender: None,
                validity_seconds: None,
            };
            app.sending
                .intake
                .submit(settings, source, vec![submission], at)
                .await
                .expect("db")
                .pop()
                .expect("one")
                .expect("accepted")
        }
    };
    // Yesterday one message; today two (one of two segments), and one canceled before it left.
    write("Depot 3 at 9".to_owned(), yesterday).await;
    app.sending
        .worker(None)
        .try_execute_task(yesterday)
        .await
        .expect("step");
    write("Depot 4 at 10".to_owned(), now).await;
    write("a".repeat(161), now).await;
    let canceled = write("Not needed".to_owned(), now).await;
    backend::delivery::cancel(&app.db, &canceled.sid, &Actor::cli(), now)
        .await
        .expect("db")
        .expect("canceled");
    let step = app
        .sending
        .worker(None)
        .try_execute_task(now)
        .await
        .expect("step");
    assert_eq!(step.sent, 2, "{step:?}");
    // Twilio reports $0.0079 a segment.
    backend::on_db!(&app.db, |pool| sqlx::query(
        "UPDATE messages SET price_micros = 7900 * segments WHERE status <> 'canceled'"
    )
    .execute(pool)
    .await
    .expect("priced")
    .rows_affected());

    let day = |micros: i64| {
        chrono::DateTime::from_timestamp_micros(micros)
            .expect("a time")
            .date_naive()
    };
    let (today, yesterday) = (day(now), day(yesterday));
    let steps = twilio_python_steps(
        &app,
        &key,
        "twilio_python_usage.py",
        &[("TODAY", &today.to_string())],
    )
    .await;
    let record = |category: &str,
                  count: i64,
                  usage: i64,
                  price: &str,
                  from: chrono::NaiveDate,
                  to: chrono::NaiveDate| {
        json!({
            "category": category, "count": count.to_string(), "count_unit": "messages",
            "usage": usage.to_string(), "price": price, "price_unit": "usd",
            "start_date": from.to_string(), "end_date": to.to_string(),
        })
    };
    let (t, y) = (today, yesterday);
    assert_eq!(
        steps["all_outbound"]["records"],
        json!([record("sms-outbound", 3, 4, "0.0316", y, t)])
    );
    assert_eq!(
        steps["daily"]["records"],
        json!([
            record("sms", 1, 1, "0.0079", y, y),
            record("sms", 2, 3, "0.0237", t, t)
        ])
    );
    assert_eq!(
        steps["today"]["records"],
        json!([
            record("sms", 2, 3, "0.0237", t, t),
            record("sms-outbound", 2, 3, "0.0237", t, t)
        ])
    );
    assert_eq!(
        steps["yesterday"]["records"],
        json!([record("sms-outbound", 1, 1, "0.0079", y, y)])
    );
    let month_start = t.with_day(1).expect("a first day");
    let same_month = y >= month_start;
    assert_eq!(
        steps["this_month"]["records"],
        if same_month {
            json!([record("sms", 3, 4, "0.0316", month_start, t)])
        } else {
            json!([record("sms", 2, 3, "0.0237", month_start, t)])
        }
    );
    assert_eq!(
        steps["all_time"]["records"],
        json!([record("sms", 3, 4, "0.0316", y, t)])
    );
    assert_eq!(
        steps["monthly"]["records"],
        if same_month {
            json!([record("sms-outbound", 3, 4, "0.0316", y, t)])
        } else {
            json!([
                record("sms-outbound", 1, 1, "0.0079", y, y),
                record("sms-outbound", 2, 3, "0.0237", t, t)
            ])
        }
    );
    assert_eq!(steps["calls"]["records"], json!([]));
    assert_eq!(
        (
            &steps["pages"]["first"],
            &steps["pages"]["second"],
            &steps["pages"]["third"]
        ),
        (
            &json!([y.to_string()]),
            &json!([t.to_string()]),
            &json!(true)
        )
    );
    assert_eq!(
        (&steps["invalid"]["status"], &steps["invalid"]["code"]),
        (&json!(400), &json!(20001))
    );
}
on_both!(twilio_python_reads_usage_records);
