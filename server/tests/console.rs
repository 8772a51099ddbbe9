//! The console over HTTP, as a browser uses it: sign-in, lockout, CSRF, sessions that end, and
//! every server function and page against every role. Each test runs on SQLite and PostgreSQL.

mod common;

use backend::db::now_micros;
use backend::testing::Backend;
use common::{ADMIN_EMAIL, ADMIN_PASSWORD, spawn_app, spawn_app_with};
use domain::access::Role;
use serde_json::json;

async fn health_and_readiness_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.client();
    assert_eq!(client.get("/healthz").await.status, 200);
    let ready = client.get("/readyz").await;
    assert_eq!((ready.status, ready.text.as_str()), (200, "ready"));
}
on_both!(health_and_readiness_answer);

async fn signing_in_starts_a_session_and_signing_out_ends_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.client();
    assert_eq!(client.call("whoami", &[]).await.json(), json!(null));
    let answer = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["Done"]["role"], "admin");
    assert_eq!(
        client.call("whoami", &[]).await.json()["email"],
        ADMIN_EMAIL
    );
    assert_eq!(client.call("list_users", &[]).await.status, 200);
    assert_eq!(client.call("logout", &[]).await.status, 200);
    assert_eq!(client.call("whoami", &[]).await.json(), json!(null));
    assert_eq!(client.call("list_users", &[]).await.status, 401);
}
on_both!(signing_in_starts_a_session_and_signing_out_ends_it);

async fn a_wrong_password_is_refused_without_saying_whether_the_user_exists(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.client();
    let wrong = client.login(ADMIN_EMAIL, "not the password").await;
    let unknown = client
        .login("nobody@safeshipper.test", "not the password")
        .await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert!(
        wrong.text.contains("wrong e-mail or password"),
        "{}",
        wrong.text
    );
    assert_eq!(wrong.text, unknown.text);
    assert_eq!(client.call("whoami", &[]).await.json(), json!(null));
}
on_both!(a_wrong_password_is_refused_without_saying_whether_the_user_exists);

async fn a_locked_account_answers_exactly_like_a_wrong_password(backend: Backend) {
    // Arrange: the admin is locked; a dispatcher is not.
    let app = spawn_app(backend).await;
    let lock = format!(
        "UPDATE users SET failed_logins = 5, locked_until = {} WHERE email = '{ADMIN_EMAIL}'",
        now_micros() + backend::users::LOCK_FOR.as_micros() as i64
    );
    assert_eq!(execute(&app.db, &lock).await, 1);
    app.signed_in(Role::Dispatcher).await;

    // Act
    let locked = app.client().login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let wrong = app
        .client()
        .login("dispatcher@safeshipper.test", "not the password")
        .await;
    let unknown = app
        .client()
        .login("nobody@safeshipper.test", "not the password")
        .await;

    // Assert: nothing tells the locked account from a mistyped password or a made-up e-mail.
    assert_eq!((locked.status, &locked.text), (wrong.status, &wrong.text));
    assert_eq!(
        (locked.status, &locked.text),
        (unknown.status, &unknown.text)
    );
    assert_eq!(locked.status, 401);
    assert!(!locked.text.contains("locked for"), "{}", locked.text);
}
on_both!(a_locked_account_answers_exactly_like_a_wrong_password);

async fn an_attacker_at_one_address_cannot_lock_the_admin_out(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, |s| s.behind_proxy = true).await;
    let attacker = app.client_at("203.0.113.7");

    // Act: twenty guesses from one address.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(attacker.login(ADMIN_EMAIL, "a guess").await.status);
    }
    let throttled = attacker.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let admin = app
        .client_at("198.51.100.20")
        .login(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;

    // Assert: the address meets its own limit; the account never slows or locks for others.
    let limit = backend::users::throttle::ADDRESS_FAILURES as usize;
    assert_eq!(statuses[..limit], vec![401; limit]);
    assert_eq!(statuses[limit..], vec![429; 20 - limit]);
    assert_eq!(
        throttled.status, 429,
        "even the right password: {}",
        throttled.text
    );
    assert!(
        throttled
            .text
            .contains("too many failed sign-ins from your network"),
        "{}",
        throttled.text
    );
    assert_eq!(admin.status, 200, "{}", admin.text);
}
on_both!(an_attacker_at_one_address_cannot_lock_the_admin_out);

async fn failures_from_many_addresses_still_slow_then_lock_the_account(backend: Backend) {
    // Arrange: three addresses failed once each, a moment ago: the account now waits.
    let app = spawn_app_with(backend, |s| s.behind_proxy = true).await;
    for n in 1..=3 {
        let guess = app
            .client_at(&format!("192.0.2.{n}"))
            .login(ADMIN_EMAIL, "guess")
            .await;
        assert_eq!(guess.status, 401);
    }
    let slowed = app
        .client_at("192.0.2.9")
        .login(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    // Four failures on record, the wait of the last one over (without waiting it out).
    assert_eq!(execute(&app.db, FOUR_FAILURES_WAIT_OVER).await, 1);

    // Act: a fifth address fails, then a sixth has the right password.
    let fifth = app.client_at("192.0.2.5").login(ADMIN_EMAIL, "guess").await;
    let locked = app
        .client_at("192.0.2.6")
        .login(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;

    // Assert: slowed, then locked, and each time said like a wrong password.
    assert_eq!((slowed.status, &slowed.text), (fifth.status, &fifth.text));
    assert_eq!((locked.status, &locked.text), (fifth.status, &fifth.text));
    assert_eq!(locked.status, 401);
    let ten_minutes = 600_000_000;
    assert!(
        admin_locked_until(&app.db)
            .await
            .is_some_and(|until| until > now_micros() + ten_minutes),
        "locked for minutes, not seconds"
    );
}
on_both!(failures_from_many_addresses_still_slow_then_lock_the_account);

const FOUR_FAILURES_WAIT_OVER: &str = "UPDATE users SET failed_logins = 4, \
     locked_until = locked_until - 10000000 WHERE email = 'admin@safeshipper.test'";
/// The admin's `locked_until`, read straight from the database.
async fn admin_locked_until(db: &backend::db::Db) -> Option<i64> {
    let sql = "SELECT locked_until FROM users WHERE email = 'admin@safeshipper.test'";
    match db {
        backend::db::Db::Sqlite(pool, _) => sqlx::query_scalar(sql).fetch_one(pool).await,
        backend::db::Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .expect("reading locked_until")
}

async fn a_forged_forwarded_for_does_not_escape_the_throttle(backend: Backend) {
    // Arrange: no proxy in front, so the header is only the client's word.
    let app = spawn_app(backend).await;
    let attempt = |n: u32, email: String, password: &'static str| {
        let http = reqwest::Client::new();
        let url = app.url("/api/login");
        async move {
            http.post(url)
                .header("sec-fetch-site", "same-origin")
                .header("x-forwarded-for", format!("10.0.0.{n}"))
                .form(&[("email", email.as_str()), ("password", password)])
                .send()
                .await
                .expect("POST")
        }
    };
    let limit = backend::users::throttle::ADDRESS_FAILURES;
    for n in 0..limit {
        let guess = attempt(n, format!("guess{n}@safeshipper.test"), "guess").await;
        assert_eq!(guess.status(), 401);
    }

    // Act
    let refused = attempt(99, ADMIN_EMAIL.to_owned(), ADMIN_PASSWORD).await;

    // Assert
    assert_eq!(refused.status(), 429);
}
on_both!(a_forged_forwarded_for_does_not_escape_the_throttle);

async fn sign_in_answers_busy_while_every_password_check_slot_is_taken(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let client = app.client();
    let taken = app.password_checks.occupy_all();

    // Act
    let busy = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    drop(taken);
    let later = client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    // Assert: refused at once, not queued, and not counted as a failure.
    assert_eq!(busy.status, 503, "{}", busy.text);
    let said: app::error::AppError = serde_json::from_str(&busy.text).expect("an AppError");
    assert!(said.to_string().contains("busy"), "{said}");
    assert_eq!(later.status, 200, "{}", later.text);
}
on_both!(sign_in_answers_busy_while_every_password_check_slot_is_taken);

/// Runs an arranging statement on the test's database; returns the rows it changed.
async fn execute(db: &backend::db::Db, sql: &str) -> u64 {
    match db {
        backend::db::Db::Sqlite(pool, _) => sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        backend::db::Db::Postgres(pool) => sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
    }
    .expect("arranging statement")
}

async fn cross_site_posts_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let bare = reqwest::Client::new();
    let form = [("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)];
    let cross_site = bare
        .post(app.url("/api/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    let foreign_origin = bare
        .post(app.url("/api/login"))
        .header("origin", "http://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_origin.status(), 403);
    assert!(foreign_origin.text().await.unwrap().contains("Refused"));
    let own_origin = bare
        .post(app.url("/api/login"))
        .header("origin", format!("http://{}", app.address))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(own_origin.status(), 200);
}
on_both!(cross_site_posts_are_refused);

async fn a_session_ends_when_its_password_is_reset_or_its_user_disabled(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.signed_in(Role::Admin).await;
    let dispatcher = app.signed_in(Role::Dispatcher).await;
    let finance = app.signed_in(Role::Finance).await;
    let users = admin.call("list_users", &[]).await.json();
    let id_of = |email: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap()["id"]
            .to_string()
    };
    let reset = admin
        .call(
            "reset_user_password",
            &[("id", &id_of("dispatcher@safeshipper.test"))],
        )
        .await;
    assert_eq!(reset.status, 200, "{}", reset.text);
    assert_eq!(reset.json()["password"].as_str().unwrap().len(), 20);
    assert_eq!(dispatcher.call("list_templates", &[]).await.status, 401);

    let disabled = admin
        .call(
            "set_user_disabled",
            &[
                ("id", &id_of("finance@safeshipper.test")),
                ("disabled", "true"),
            ],
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    assert_eq!(finance.call("whoami", &[]).await.json(), json!(null));
}
on_both!(a_session_ends_when_its_password_is_reset_or_its_user_disabled);

async fn call(
    client: &common::Client,
    endpoint: &str,
    form: &[(&str, &str)],
    body: &Option<serde_json::Value>,
) -> common::Answer {
    match body {
        Some(body) => client.call_json(endpoint, body).await,
        None => client.call(endpoint, form).await,
    }
}

/// (endpoint, form arguments, JSON body, roles allowed)
type Row<'a> = (
    &'a str,
    Vec<(&'a str, &'a str)>,
    Option<serde_json::Value>,
    &'a [Role],
);

/// Who may call what: every server function, every role, and nobody signed in.
async fn every_server_function_checks_the_role(backend: Backend) {
    use Role::*;
    let app = spawn_app(backend).await;
    let invalid_draft = json!({"original_key": null, "draft": {
        "key": "Bad Key", "body": "{unclosed", "variables": [], "category": "shipment",
        "priority": null, "smart_encoding": false}});
    let table: Vec<Row> = vec![
        ("list_templates", vec![], None, &[Admin, Dispatcher]),
        (
            "get_template",
            vec![("key", "shipment_created")],
            None,
            &[Admin, Dispatcher],
        ),
        (
            "save_template",
            vec![],
            Some(invalid_draft),
            &[Admin, Dispatcher],
        ),
        (
            "duplicate_template",
            vec![("key", "no_such_template"), ("new_key", "copy")],
            None,
            &[Admin, Dispatcher],
        ),
        (
            "delete_template",
            vec![("key", "no_such_template")],
            None,
            &[Admin, Dispatcher],
        ),
        ("list_users", vec![], None, &[Admin]),
        (
            "create_user",
            vec![("email", "not an email"), ("role", "finance")],
            None,
            &[Admin],
        ),
        (
            "set_user_role",
            vec![("id", "999999"), ("role", "finance")],
            None,
            &[Admin],
        ),
        (
            "set_user_disabled",
            vec![("id", "999999"), ("disabled", "true")],
            None,
            &[Admin],
        ),
        (
            "reset_user_password",
            vec![("id", "999999")],
            None,
            &[Admin],
        ),
        ("list_audit", vec![], None, &[Admin, Compliance]),
        (
            "change_own_password",
            vec![("current", "not the password"), ("new", "short")],
            None,
            &[Admin, Dispatcher, Compliance, Finance],
        ),
        (
            "sending_mode",
            vec![],
            None,
            &[Admin, Dispatcher, Compliance, Finance],
        ),
        ("get_sending_settings", vec![], None, &[Admin]),
        (
            "save_sending_settings",
            vec![],
            Some(json!({"settings": {"limits": {"per_second": 0}}})),
            &[Admin],
        ),
        ("list_api_keys", vec![], None, &[Admin]),
        ("create_api_key", vec![("name", " ")], None, &[Admin]),
        ("revoke_api_key", vec![("id", "SKnone")], None, &[Admin]),
        (
            "review_send",
            vec![],
            Some(
                json!({"draft": {"recipients": "", "template": null, "variables": {}, "body": "x", "category": null}}),
            ),
            &[Admin, Dispatcher],
        ),
        (
            "send_messages",
            vec![],
            Some(
                json!({"draft": {"recipients": "", "template": null, "variables": {}, "body": "x", "category": null}}),
            ),
            &[Admin, Dispatcher],
        ),
        (
            "send_progress",
            vec![],
            Some(json!({"sids": []})),
            &[Admin, Dispatcher],
        ),
        (
            "delivery_log",
            vec![],
            Some(json!({"query": {}, "cursor": null})),
            &[Admin, Dispatcher, Compliance, Finance],
        ),
        (
            "log_updates",
            vec![],
            Some(json!({"query": {}, "sids": [], "newest": null})),
            &[Admin, Dispatcher, Compliance, Finance],
        ),
        (
            "export_progress",
            vec![("token", "0123456789abcdef")],
            None,
            &[Admin, Dispatcher, Compliance, Finance],
        ),
        (
            "number_consent",
            vec![("number", "+14155552671")],
            None,
            &[Admin, Compliance],
        ),
        ("recent_consent", vec![], None, &[Admin, Compliance]),
        ("consent_per_day", vec![], None, &[Admin, Compliance]),
        (
            "import_consent",
            vec![("csv", "number,action,at,evidence\n")],
            None,
            &[Admin, Compliance],
        ),
        (
            "inbox",
            vec![("unread_only", "false")],
            None,
            &[Admin, Dispatcher],
        ),
        (
            "mark_reply",
            vec![("id", "1"), ("read", "true")],
            None,
            &[Admin, Dispatcher],
        ),
        (
            "record_consent",
            vec![
                ("number", "+14155552671"),
                ("action", "opt_out"),
                ("note", " "),
            ],
            None,
            &[Admin, Compliance],
        ),
        (
            "overview",
            vec![],
            None,
            &[Admin, Dispatcher, Compliance, Finance],
        ),
        (
            "message_detail",
            vec![("sid", "SMnone")],
            None,
            &[Admin, Dispatcher, Compliance, Finance],
        ),
        (
            "retry_message",
            vec![("sid", "SMnone")],
            None,
            &[Admin, Dispatcher],
        ),
        (
            "cancel_message",
            vec![("sid", "SMnone")],
            None,
            &[Admin, Dispatcher],
        ),
    ];
    let anonymous = app.client();
    let mut clients = Vec::new();
    for role in Role::ALL {
        clients.push((role, app.signed_in(role).await));
    }
    let mut wrong = Vec::new();
    for (endpoint, form, body, allowed) in &table {
        let answer = call(&anonymous, endpoint, form, body).await;
        if answer.status != 401 {
            wrong.push(format!(
                "{endpoint} anonymous: {} {}",
                answer.status, answer.text
            ));
        }
        for (role, client) in &clients {
            let answer = call(client, endpoint, form, body).await;
            let ok = if allowed.contains(role) {
                !matches!(answer.status, 401 | 403 | 500)
            } else {
                answer.status == 403
            };
            if !ok {
                wrong.push(format!(
                    "{endpoint} as {role}: {} {}",
                    answer.status, answer.text
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
on_both!(every_server_function_checks_the_role);

/// Who may open which page: anonymous visitors are sent to sign in, a role that may not see a
/// page gets 403 and a page saying so.
async fn every_page_checks_the_role(backend: Backend) {
    use Role::*;
    let app = spawn_app(backend).await;
    let table: &[(&str, &[Role])] = &[
        ("/", &[Admin, Dispatcher, Compliance, Finance]),
        ("/templates", &[Admin, Dispatcher]),
        ("/templates/new", &[Admin, Dispatcher]),
        ("/templates/shipment_created", &[Admin, Dispatcher]),
        ("/users", &[Admin]),
        ("/audit", &[Admin, Compliance]),
        ("/consent", &[Admin, Compliance]),
        ("/inbox", &[Admin, Dispatcher]),
        ("/send", &[Admin, Dispatcher]),
        ("/messages", &[Admin, Dispatcher, Compliance, Finance]),
        ("/settings", &[Admin]),
        ("/api-keys", &[Admin]),
        ("/account", &[Admin, Dispatcher, Compliance, Finance]),
    ];
    let anonymous = app.client();
    assert_eq!(anonymous.get("/login").await.status, 200);
    let mut clients = Vec::new();
    for role in Role::ALL {
        clients.push((role, app.signed_in(role).await));
    }
    let mut wrong = Vec::new();
    for (path, allowed) in table {
        let answer = anonymous.get(path).await;
        let to_login = answer
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with("/login?next="));
        if !(answer.status == 303 && to_login) {
            wrong.push(format!(
                "{path} anonymous: {} {:?}",
                answer.status, answer.location
            ));
        }
        for (role, client) in &clients {
            let answer = client.get(path).await;
            let ok = if allowed.contains(role) {
                answer.status == 200
            } else {
                answer.status == 403 && answer.text.contains("not allowed")
            };
            if !ok {
                wrong.push(format!("{path} as {role}: {}", answer.status));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
on_both!(every_page_checks_the_role);

async fn a_page_asked_for_without_a_session_comes_back_after_sign_in(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let anonymous = app.client();

    // Act
    let filtered = anonymous.get("/audit?action=user.role&actor=ops%40x").await;
    let odd = anonymous.get("/templates/a%5Cb%09c").await;

    // Assert: the page and its filters come back, encoded so that nothing in them can end
    // `next` early or decode into anything but the path asked for.
    assert_eq!(filtered.status, 303);
    assert_eq!(
        filtered.location.as_deref(),
        Some("/login?next=/audit%3Faction%3Duser.role%26actor%3Dops%2540x")
    );
    assert_eq!(
        odd.location.as_deref(),
        Some("/login?next=/templates/a%255Cb%2509c")
    );
}
on_both!(a_page_asked_for_without_a_session_comes_back_after_sign_in);

async fn pages_and_server_answers_carry_the_security_headers(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let client = app.client();

    // Act
    let page = client.get("/login").await;
    let answer = client.call("whoami", &[]).await;

    // Assert: the page's policy lets only its own nonce'd inline scripts run, and every inline
    // script Leptos wrote carries that nonce (or hydration would be blocked).
    assert_eq!(page.status, 200);
    let policy = page.header("content-security-policy");
    for directive in [
        "default-src 'self'",
        "'wasm-unsafe-eval'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} missing: {policy}");
    }
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the policy names a nonce");
    let scripts = page.text.matches("<script").count();
    let with_nonce = page.text.matches(&format!("nonce=\"{nonce}\"")).count();
    assert!(scripts > 0, "{}", page.text);
    assert!(
        with_nonce >= scripts,
        "{scripts} scripts, {with_nonce} with the nonce"
    );
    let other_page = client.get("/login").await;
    assert_ne!(other_page.header("content-security-policy"), policy);

    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-security-policy"),
        server::web::ANSWER_POLICY
    );
    for sent in [&page, &answer] {
        assert_eq!(sent.header("x-content-type-options"), "nosniff");
        assert_eq!(sent.header("referrer-policy"), "same-origin");
        assert_eq!(sent.header("cache-control"), "no-store");
    }
}
on_both!(pages_and_server_answers_carry_the_security_headers);

async fn a_session_cookie_lasts_thirty_minutes_from_the_last_request(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;

    // Act
    let signed_in = app.client().login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    // Assert
    let cookie = signed_in.header("set-cookie");
    assert!(cookie.contains("Max-Age=1800"), "{cookie}");
}
on_both!(a_session_cookie_lasts_thirty_minutes_from_the_last_request);

/// A session as the server keeps it, signed in as the first admin at `at`.
async fn session_signed_in_at(app: &common::TestApp, at: i64) -> tower_sessions::Session {
    let store = std::sync::Arc::new(tower_sessions::MemoryStore::default());
    let session = tower_sessions::Session::new(None, store, None);
    let admin = backend::users::list(&app.db)
        .await
        .expect("users")
        .into_iter()
        .find(|u| u.email == ADMIN_EMAIL)
        .expect("the first admin");
    app::auth::begin_session(&session, &admin, at)
        .await
        .expect("session written");
    session
}

const MINUTE: i64 = 60_000_000;

async fn a_session_ends_after_thirty_minutes_without_a_request(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let t = now_micros();
    let session = session_signed_in_at(&app, t).await;
    let user_at = |now: i64| app::auth::user_of_session(&app.db, &session, now);

    // Act
    let after_29 = user_at(t + 29 * MINUTE).await.expect("checked");
    let after_58 = user_at(t + 58 * MINUTE).await.expect("checked");
    let idle_30 = user_at(t + 88 * MINUTE).await.expect("checked");
    let back = user_at(t + 89 * MINUTE).await.expect("checked");

    // Assert: each use restarts the half hour; half an hour unused ends the session for good.
    assert!(after_29.is_some());
    assert!(after_58.is_some());
    assert_eq!(idle_30, None);
    assert_eq!(back, None);
}
on_both!(a_session_ends_after_thirty_minutes_without_a_request);

async fn a_session_ends_twelve_hours_after_sign_in_however_busy(backend: Backend) {
    // Arrange: used every twenty minutes since sign-in.
    let app = spawn_app(backend).await;
    let t = now_micros();
    let session = session_signed_in_at(&app, t).await;
    let mut now = t;
    while now + 20 * MINUTE < t + 12 * 60 * MINUTE {
        now += 20 * MINUTE;
        let user = app::auth::user_of_session(&app.db, &session, now).await;
        assert!(user.expect("checked").is_some(), "in use at {now}");
    }

    // Act
    let twelve_hours = app::auth::user_of_session(&app.db, &session, t + 12 * 60 * MINUTE).await;

    // Assert
    assert_eq!(twelve_hours.expect("checked"), None);
}
on_both!(a_session_ends_twelve_hours_after_sign_in_however_busy);

async fn people_change_their_own_password_with_the_current_one(backend: Backend) {
    // Arrange: a dispatcher signed in twice.
    let app = spawn_app(backend).await;
    let here = app.signed_in(Role::Dispatcher).await;
    let elsewhere = app.client();
    let email = "dispatcher@safeshipper.test";
    assert_eq!(elsewhere.login(email, common::PASSWORD).await.status, 200);
    let new = "a brand new password";

    // Act
    let wrong_current = here
        .call(
            "change_own_password",
            &[("current", "not the password"), ("new", new)],
        )
        .await;
    let too_short = here
        .call(
            "change_own_password",
            &[("current", common::PASSWORD), ("new", "short")],
        )
        .await;
    let changed = here
        .call(
            "change_own_password",
            &[("current", common::PASSWORD), ("new", new)],
        )
        .await;

    // Assert
    assert_eq!(wrong_current.status, 422, "{}", wrong_current.text);
    assert!(
        wrong_current.text.contains("current password"),
        "{}",
        wrong_current.text
    );
    assert_eq!(too_short.status, 422, "{}", too_short.text);
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(
        here.call("whoami", &[]).await.json()["email"],
        email,
        "this session goes on"
    );
    assert_eq!(
        elsewhere.call("whoami", &[]).await.json(),
        json!(null),
        "the other session ended"
    );
    assert_eq!(
        app.client().login(email, common::PASSWORD).await.status,
        401
    );
    assert_eq!(app.client().login(email, new).await.status, 200);
    let admin = app.signed_in(Role::Admin).await;
    let audit = admin
        .call("list_audit", &[("action", "user.password")])
        .await
        .json();
    assert_eq!(audit[0]["actor"], email);
}
on_both!(people_change_their_own_password_with_the_current_one);

async fn saving_a_template_validates_on_the_server_and_is_audited(backend: Backend) {
    let app = spawn_app(backend).await;
    let dispatcher = app.signed_in(Role::Dispatcher).await;
    let draft = |body: &str| {
        json!({"original_key": null, "draft": {
            "key": "pickup_ready", "body": body,
            "variables": [{"name": "tracking_number", "max_len": 20, "charset": "gsm7", "sample": "SS-1"}],
            "category": "shipment", "priority": null, "smart_encoding": false}})
    };
    let unknown = dispatcher
        .call_json(
            "save_template",
            &draft("Ready: {tracking_number} at {dock}"),
        )
        .await;
    assert_eq!(unknown.status, 422, "{}", unknown.text);
    assert!(
        unknown.text.contains("dock"),
        "the error names the unknown variable: {}",
        unknown.text
    );
    let saved = dispatcher
        .call_json("save_template", &draft("Ready: {tracking_number}"))
        .await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    let again = dispatcher
        .call_json("save_template", &draft("Ready again: {tracking_number}"))
        .await;
    assert_eq!(
        again.status, 422,
        "a second template with the same key: {}",
        again.text
    );

    let admin = app.signed_in(Role::Admin).await;
    let audit = admin
        .call("list_audit", &[("action", "template.")])
        .await
        .json();
    let entry = &audit.as_array().unwrap()[0];
    assert_eq!(entry["action"], "template.create");
    assert_eq!(entry["actor"], "dispatcher@safeshipper.test");
}
on_both!(saving_a_template_validates_on_the_server_and_is_audited);

/// The send page's server functions: review counts each kind of recipient, send writes the valid
/// ones to the outbox, progress follows them; settings saved from the console are checked and
/// audited.
async fn a_dispatcher_reviews_and_sends_from_the_console(backend: Backend) {
    let app = spawn_app(backend).await;
    let dispatcher = app.signed_in(Role::Dispatcher).await;
    let draft = json!({"draft": {
        "recipients": "phone\n+1 415 555 2671\n+1 415 555\n+44 7400 123456\n+14155552671\n(415) 555-2672",
        "template": null, "variables": {}, "body": "Depot 3 closes at 6pm today", "category": "driver"}});
    let review = dispatcher.call_json("review_send", &draft).await;
    assert_eq!(review.status, 200, "{}", review.text);
    let r = review.json();
    assert_eq!(
        (
            r["valid"].as_i64(),
            r["invalid"].as_i64(),
            r["geo_blocked"].as_i64(),
            r["duplicates"].as_i64()
        ),
        (Some(2), Some(1), Some(1), Some(1))
    );
    assert_eq!(r["total_segments"], 2);
    assert_eq!(r["problems"][0]["line"], 3);
    let sent = dispatcher.call_json("send_messages", &draft).await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    let sids = sent.json()["sids"].clone();
    assert_eq!(sids.as_array().map(Vec::len), Some(2));
    let progress = dispatcher
        .call_json("send_progress", &json!({ "sids": sids }))
        .await
        .json();
    assert_eq!(
        (progress["total"].as_i64(), progress["waiting"].as_i64()),
        (Some(2), Some(2))
    );

    let template = json!({"draft": {"recipients": "+14155552671", "template": "shipment_created",
        "variables": {"nope": "x"}, "body": "", "category": null}});
    let r = dispatcher.call_json("review_send", &template).await.json();
    assert!(
        r["message_error"]
            .as_str()
            .is_some_and(|e| e.contains("nope")),
        "{r}"
    );

    let admin = app.signed_in(Role::Admin).await;
    let mut settings = admin.call("get_sending_settings", &[]).await.json();
    assert_eq!(settings["limits"]["per_second"], 10);
    settings["allowed_countries"] = json!(["US", "ZZ"]);
    let refused = admin
        .call_json("save_sending_settings", &json!({ "settings": settings }))
        .await;
    assert!(
        refused.text.contains("allowed_countries"),
        "{}",
        refused.text
    );
    settings["allowed_countries"] = json!(["US", "GB"]);
    let saved = admin
        .call_json("save_sending_settings", &json!({ "settings": settings }))
        .await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    let r = dispatcher.call_json("review_send", &draft).await.json();
    assert_eq!(r["valid"], 3, "GB is allowed now");
    let audit = admin.call("list_audit", &[]).await.json();
    assert_eq!(audit[0]["action"], "settings.update");
}
on_both!(a_dispatcher_reviews_and_sends_from_the_console);
