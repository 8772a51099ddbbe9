//! Twilio's incoming-message webhook: signatures, Twilio's keywords, replays, the consent ledger
//! and its hash chain, and intake refusing an opted-out number. Every test runs on SQLite and on
//! PostgreSQL, through the real server over HTTP.

mod common;

use backend::audit::Actor;
use backend::testing::Backend;
use common::{AUTH_TOKEN, TestApp, spawn_app, spawn_app_with};
use domain::consent::{HELP_REPLY, OPT_IN_REPLY, OPT_OUT_REPLY, twiml};
use domain::signature::{AuthToken, SharedKey};

const DRIVER: &str = "+14155552671";

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

fn inbound_url(app: &TestApp) -> String {
    format!(
        "{}{}",
        app.sending.public_base,
        server::sending::INBOUND_PATH
    )
}

fn params(sid: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ToCountry", "US".to_owned()),
        ("SmsMessageSid", sid.to_owned()),
        ("NumMedia", "0".to_owned()),
        ("MessageSid", sid.to_owned()),
        (
            "AccountSid",
            "AC0123456789abcdef0123456789abcdef".to_owned(),
        ),
        ("From", DRIVER.to_owned()),
        ("To", "+15005550006".to_owned()),
        ("Body", body.to_owned()),
        ("NumSegments", "1".to_owned()),
        ("ApiVersion", "2010-04-01".to_owned()),
    ]
}

/// Posts `params` to `url` with `signature` (and any extra headers).
async fn post(
    url: &str,
    params: &[(&'static str, String)],
    signature: Option<String>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = reqwest::Client::new().post(url).form(params);
    if let Some(s) = signature {
        request = request.header("X-Twilio-Signature", s);
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("POST");
    Answer {
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().expect("ascii").to_owned())
            .unwrap_or_default(),
        body: response.text().await.expect("text"),
    }
}

/// Posts an incoming message signed as Twilio signs it.
async fn deliver(app: &TestApp, sid: &str, body: &str) -> Answer {
    let url = inbound_url(app);
    let params = params(sid, body);
    let token = AuthToken::new(AUTH_TOKEN).expect("token");
    let signature = domain::signature::sign(&token, &url, &params);
    post(&url, &params, Some(signature), &[]).await
}

async fn count(app: &TestApp, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    backend::on_db!(&app.db, |pool| sqlx::query_scalar::<_, i64>(&sql)
        .fetch_one(pool)
        .await
        .expect("count"))
}

/// Sends one message to the driver through the JSON API: its status and error code.
async fn send_to_driver(app: &TestApp, key: &(String, String)) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(app.url("/api/v1/messages"))
        .basic_auth(&key.0, Some(&key.1))
        .json(&serde_json::json!({ "to": DRIVER, "body": "Next delivery: SS-1042 at 14:00" }))
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("json");
    (status, body["error"]["code"].clone())
}

async fn forged_incoming_messages_are_refused_and_record_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let url = inbound_url(&app);
    let params = params("SMforged000000000000000000000000", "STOP");
    let token = AuthToken::new(AUTH_TOKEN).expect("token");
    let genuine = domain::signature::sign(&token, &url, &params);
    assert_eq!(post(&url, &params, None, &[]).await.status, 403, "unsigned");
    let other_token = AuthToken::new("guessed").expect("token");
    let forged = domain::signature::sign(&other_token, &url, &params);
    assert_eq!(post(&url, &params, Some(forged), &[]).await.status, 403);
    let for_status_url = domain::signature::sign(&token, &app.sending.status_url(), &params);
    assert_eq!(
        post(&url, &params, Some(for_status_url), &[]).await.status,
        403,
        "signed for another URL"
    );
    let mut tampered = params.clone();
    tampered[7].1 = "START".into();
    assert_eq!(
        post(&url, &tampered, Some(genuine.clone()), &[])
            .await
            .status,
        403,
        "body changed"
    );
    // A SharedKey (HMAC-SHA256) signature: smsdesk has no SharedKey to check it with.
    assert_eq!(
        post(
            &url,
            &params,
            Some(genuine),
            &[(
                "X-Twilio-Webhooks-Signature-Settings",
                "key=KS0123,algorithm=HMAC_SHA256"
            )]
        )
        .await
        .status,
        403
    );
    assert_eq!(count(&app, "inbound_messages").await, 0);
    assert_eq!(count(&app, "consent_events").await, 0);
}
on_both!(forged_incoming_messages_are_refused_and_record_nothing);

async fn stop_and_start_change_consent_once_and_intake_follows(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = backend::api_keys::create(&app.db, &Actor::cli(), "tracking")
        .await
        .expect("key");
    let key = (
        created.key.id.clone(),
        backend::api_keys::reveal(&created.secret).to_owned(),
    );
    assert_eq!(send_to_driver(&app, &key).await.0, 202);

    let stop = deliver(&app, "SMa0000000000000000000000000000001", "  sToP \n").await;
    assert_eq!(stop.status, 200);
    assert!(
        stop.content_type.starts_with("text/xml"),
        "{}",
        stop.content_type
    );
    assert_eq!(stop.body, twiml(Some(OPT_OUT_REPLY)));
    assert_eq!(
        send_to_driver(&app, &key).await,
        (422, serde_json::json!("opted_out"))
    );
    // Twilio retries a webhook: the same MessageSid again adds nothing, and gets the same answer.
    let replay = deliver(&app, "SMa0000000000000000000000000000001", "  sToP \n").await;
    assert_eq!(
        (replay.status, replay.body),
        (200, twiml(Some(OPT_OUT_REPLY)))
    );
    assert_eq!(count(&app, "consent_events").await, 1);
    assert_eq!(count(&app, "inbound_messages").await, 1);

    // A sentence with the word in it is a reply for the inbox, not a keyword.
    let sentence = deliver(
        &app,
        "SMa0000000000000000000000000000002",
        "Please stop by the depot",
    )
    .await;
    assert_eq!(sentence.body, twiml(None));
    let help = deliver(&app, "SMa0000000000000000000000000000003", "info").await;
    assert_eq!(help.body, twiml(Some(HELP_REPLY)));
    assert_eq!(count(&app, "consent_events").await, 1);
    assert_eq!(
        send_to_driver(&app, &key).await.1,
        serde_json::json!("opted_out")
    );

    let start = deliver(&app, "SMa0000000000000000000000000000004", "UNSTOP").await;
    assert_eq!(start.body, twiml(Some(OPT_IN_REPLY)));
    assert_eq!(send_to_driver(&app, &key).await.0, 202);
    assert_eq!(count(&app, "inbound_messages").await, 4);

    // With Advanced Opt-Out, Twilio answered already: recorded, not answered twice.
    let url = inbound_url(&app);
    let mut advanced = params("SMa0000000000000000000000000000005", "END");
    advanced.push(("OptOutType", "STOP".to_owned()));
    let token = AuthToken::new(AUTH_TOKEN).expect("token");
    let signature = domain::signature::sign(&token, &url, &advanced);
    let answered = post(&url, &advanced, Some(signature), &[]).await;
    assert_eq!((answered.status, answered.body), (200, twiml(None)));
    assert_eq!(count(&app, "consent_events").await, 3);
    assert_eq!(send_to_driver(&app, &key).await.0, 422);

    // The ledger is one chain; a changed entry is named.
    assert_eq!(backend::consent::verify(&app.db).await.expect("db"), Ok(3));
    backend::on_db!(&app.db, |pool| sqlx::query(
        "UPDATE consent_events SET action = 'opt_in'
          WHERE id = (SELECT MAX(id) FROM consent_events)"
    )
    .execute(pool)
    .await
    .expect("tamper")
    .rows_affected());
    let last: i64 = backend::on_db!(&app.db, |pool| sqlx::query_scalar(
        "SELECT MAX(id) FROM consent_events"
    )
    .fetch_one(pool)
    .await
    .expect("id"));
    assert_eq!(
        backend::consent::verify(&app.db).await.expect("db"),
        Err(domain::consent::ChainBreak::Changed { id: last })
    );
}
on_both!(stop_and_start_change_consent_once_and_intake_follows);

async fn webhooks_signed_with_a_shared_key_are_checked_with_hmac_sha256(backend: Backend) {
    const SHARED: &str = "webhook-shared-key-secret";
    let app = spawn_app_with(backend, |s| {
        s.webhook_shared_key = Some(secrecy::SecretString::from(SHARED));
    })
    .await;
    let url = inbound_url(&app);
    let settings = [(
        "X-Twilio-Webhooks-Signature-Settings",
        "key=KS0123456789abcdef0123456789abcdef,algorithm=HMAC_SHA256",
    )];
    let stop = params("SMb0000000000000000000000000000001", "STOP");
    let key = SharedKey::new(SHARED).expect("key");
    let genuine = domain::signature::sign_sha256(&key, &url, &stop);
    let wrong_key =
        domain::signature::sign_sha256(&SharedKey::new("guessed").expect("key"), &url, &stop);
    assert_eq!(
        post(&url, &stop, Some(wrong_key), &settings).await.status,
        403
    );
    let sha1 = domain::signature::sign(&AuthToken::new(AUTH_TOKEN).expect("token"), &url, &stop);
    assert_eq!(
        post(&url, &stop, Some(sha1.clone()), &settings)
            .await
            .status,
        403,
        "the Auth Token's signature under a SharedKey header"
    );
    let unknown = [(
        "X-Twilio-Webhooks-Signature-Settings",
        "key=KS1,algorithm=HMAC_SHA512",
    )];
    assert_eq!(
        post(&url, &stop, Some(sha1.clone()), &unknown).await.status,
        403
    );
    assert_eq!(count(&app, "inbound_messages").await, 0);
    let answer = post(&url, &stop, Some(genuine), &settings).await;
    assert_eq!(
        (answer.status, answer.body),
        (200, twiml(Some(OPT_OUT_REPLY)))
    );
    // The Auth Token's signature still works without the header.
    let start = params("SMb0000000000000000000000000000002", "START");
    let sha1 = domain::signature::sign(&AuthToken::new(AUTH_TOKEN).expect("token"), &url, &start);
    assert_eq!(post(&url, &start, Some(sha1), &[]).await.status, 200);
    assert_eq!(count(&app, "consent_events").await, 2);
}
on_both!(webhooks_signed_with_a_shared_key_are_checked_with_hmac_sha256);

async fn the_keyword_replies_are_the_ones_set_in_settings(backend: Backend) {
    let app = spawn_app(backend).await;
    // Set before the first webhook (the server trusts the settings it read for a second).
    let mut s = backend::settings::SendingSettings::default();
    s.replies.opt_out = "SafeShipper: you will get no more texts. Reply START to undo.".to_owned();
    s.replies.help = "  ".to_owned();
    backend::settings::save_sending(&app.db, &Actor::system(), &s)
        .await
        .expect("saved");
    let stop = deliver(&app, "SMb0000000000000000000000000000001", "stop").await;
    assert_eq!(
        stop.body,
        twiml(Some(
            "SafeShipper: you will get no more texts. Reply START to undo."
        ))
    );
    // An emptied reply answers nothing; the others keep Twilio's default.
    let help = deliver(&app, "SMb0000000000000000000000000000002", "HELP").await;
    assert_eq!(help.body, twiml(None));
    let start = deliver(&app, "SMb0000000000000000000000000000003", "start").await;
    assert_eq!(start.body, twiml(Some(OPT_IN_REPLY)));
    // A reply longer than one message can hold is refused, and nothing changes.
    s.replies.opt_in = "x".repeat(1_601);
    let refused = backend::settings::save_sending(&app.db, &Actor::system(), &s).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("replies.opt_in")),
        "{refused:?}"
    );
}
on_both!(the_keyword_replies_are_the_ones_set_in_settings);

/// Saves an allow list before the app's first webhook (the server trusts the settings it read
/// for a second).
async fn allow_only(app: &TestApp, networks: &[&str]) {
    let mut s = backend::settings::SendingSettings::default();
    s.data.webhook_allow_list = networks.iter().map(|n| (*n).to_owned()).collect();
    backend::settings::save_sending(&app.db, &Actor::system(), &s)
        .await
        .expect("saved");
}

async fn the_webhook_allow_list_is_checked_after_the_signature(backend: Backend) {
    // The tests reach the server from 127.0.0.1: off this list, genuine webhooks are refused
    // and nothing is recorded.
    let elsewhere = spawn_app(backend).await;
    allow_only(&elsewhere, &["54.172.60.0/23", "2001:db8::/32"]).await;
    let refused = deliver(&elsewhere, "SMc0000000000000000000000000000001", "STOP").await;
    assert_eq!(refused.status, 403);
    assert_eq!(count(&elsewhere, "inbound_messages").await, 0);
    assert_eq!(count(&elsewhere, "consent_events").await, 0);
    let url = elsewhere.sending.status_url();
    let callback = vec![
        (
            "MessageSid",
            "SMc0000000000000000000000000000002".to_owned(),
        ),
        ("MessageStatus", "delivered".to_owned()),
    ];
    let token = AuthToken::new(AUTH_TOKEN).expect("token");
    let signature = domain::signature::sign(&token, &url, &callback);
    assert_eq!(
        post(&url, &callback, Some(signature), &[]).await.status,
        403,
        "the status callback too"
    );

    // On it, they are taken; a forged one still is not.
    let here = spawn_app(backend).await;
    allow_only(&here, &["54.172.60.0/23", "127.0.0.0/8"]).await;
    let taken = deliver(&here, "SMc0000000000000000000000000000003", "STOP").await;
    assert_eq!(taken.status, 200);
    assert_eq!(taken.body, twiml(Some(OPT_OUT_REPLY)));
    let forged = post(
        &inbound_url(&here),
        &params("SMc0000000000000000000000000000004", "START"),
        Some("bm90IGEgc2lnbmF0dXJl".to_owned()),
        &[],
    )
    .await;
    assert_eq!(forged.status, 403);
    assert_eq!(count(&here, "inbound_messages").await, 1);
}
on_both!(the_webhook_allow_list_is_checked_after_the_signature);
