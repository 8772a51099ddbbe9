//! The console's second factor through its server functions, as the pages call them: adding a
//! phone (confirmed by the code the simulated phone received; recovery codes once), signing in
//! with the code (a pending sign-in is not signed in; a wrong code is refused), with a recovery
//! code (once), "send again" only after a pause, and a role that requires it enrolling at sign-in.

mod common;

use backend::audit::Actor;
use backend::testing::Backend;
use common::{Client, PASSWORD, TestApp, spawn_app};
use domain::access::Role;
use secrecy::SecretString;
use serde_json::{Value, json};

/// The worker's step hands waiting codes to the simulator; the newest code `e164` received.
async fn latest_code(app: &TestApp, e164: &str) -> String {
    let step = app
        .sending
        .worker(None)
        .try_execute_task(backend::db::now_micros())
        .await
        .expect("worker step");
    assert!(step.sent >= 1, "{step:?}");
    let simulator = server::simulator_inbox::simulator(&app.sending).expect("simulating");
    let received = simulator.inbox(e164, 1);
    let body = &received.first().expect("a text reached the phone").body;
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a 6-digit code")
        .to_owned()
}

async fn user(app: &TestApp, email: &str, role: Role) {
    backend::users::create(
        &app.db,
        &Actor::cli(),
        email,
        SecretString::from(PASSWORD),
        role,
    )
    .await
    .expect("user");
}

/// Adds a phone: `password` is the user's when signed in, empty when enrolling at sign-in.
async fn enrol(app: &TestApp, client: &Client, phone: &str, password: &str, e164: &str) -> Value {
    let sent = client
        .call("enrol_phone", &[("phone", phone), ("password", password)])
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    assert_eq!(sent.json(), json!("+61 412 *** *78"));
    let code = latest_code(app, e164).await;
    let wrong = client.call("confirm_phone", &[("code", "000000")]).await;
    if code != "000000" {
        assert_eq!(wrong.status, 422, "{}", wrong.text);
    }
    let confirmed = client.call("confirm_phone", &[("code", &code)]).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    confirmed.json()
}

async fn a_user_adds_a_phone_then_signs_in_with_its_code_or_a_recovery_code(backend: Backend) {
    let app = spawn_app(backend).await;
    with_au_region(&app).await;
    let email = "dispatch@safeshipper.test";
    user(&app, email, Role::Dispatcher).await;
    let client = app.client();
    assert_eq!(
        client.login(email, PASSWORD).await.json()["Done"]["email"],
        email
    );
    // Adding a phone needs a session (or a sign-in that requires it).
    let anonymous = app
        .client()
        .call(
            "enrol_phone",
            &[("phone", "+61412345678"), ("password", "")],
        )
        .await;
    assert_eq!(anonymous.status, 401);
    // Signed in, the password is asked for again.
    let no_password = client
        .call(
            "enrol_phone",
            &[("phone", "+61412345678"), ("password", "")],
        )
        .await;
    assert_eq!(no_password.status, 422, "{}", no_password.text);
    let wrong_password = client
        .call(
            "enrol_phone",
            &[("phone", "+61412345678"), ("password", "not it at all")],
        )
        .await;
    assert_eq!(wrong_password.status, 422, "{}", wrong_password.text);
    let enrolled = enrol(&app, &client, "0412 345 678", PASSWORD, "+61412345678").await;
    let codes: Vec<String> = serde_json::from_value(enrolled["recovery_codes"].clone()).unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(enrolled["signed_in"], Value::Null);
    let standing = client.call("second_factor", &[]).await.json();
    assert_eq!(
        (
            &standing["masked"],
            &standing["recovery_left"],
            &standing["required"]
        ),
        (&json!("+61 412 *** *78"), &json!(10), &json!(false))
    );
    assert_eq!(client.call("logout", &[]).await.status, 200);

    // Sign-in: the password, then the code.
    let browser = app.client();
    let step = browser.login(email, PASSWORD).await;
    assert_eq!(
        step.json(),
        json!({ "Code": { "masked": "+61 412 *** *78" } })
    );
    assert_eq!(
        browser.call("whoami", &[]).await.json(),
        Value::Null,
        "not signed in yet"
    );
    assert_eq!(
        browser.get("/messages").await.status,
        303,
        "pages still redirect to sign-in"
    );
    let again = browser.call("resend_sign_in_code", &[]).await;
    assert_eq!(again.status, 429, "{}", again.text);
    assert!(again.text.contains("seconds"), "{}", again.text);
    let code = latest_code(&app, "+61412345678").await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = browser.call("sign_in_code", &[("code", wrong)]).await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert!(refused.text.contains("4 more tries"), "{}", refused.text);
    let signed_in = browser.call("sign_in_code", &[("code", &code)]).await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.text);
    assert_eq!(browser.call("whoami", &[]).await.json()["email"], email);
    assert_eq!(browser.call("logout", &[]).await.status, 200);

    // A recovery code, however typed, works once.
    let lost = app.client();
    assert!(
        lost.login(email, PASSWORD)
            .await
            .json()
            .get("Code")
            .is_some()
    );
    let typed = codes[0].to_uppercase().replace('-', " ");
    assert_eq!(
        lost.call("sign_in_code", &[("code", &typed)]).await.status,
        200
    );
    assert_eq!(lost.call("whoami", &[]).await.json()["email"], email);
    let twice = app.client();
    assert!(
        twice
            .login(email, PASSWORD)
            .await
            .json()
            .get("Code")
            .is_some()
    );
    let used = twice.call("sign_in_code", &[("code", &codes[0])]).await;
    assert_eq!(used.status, 422, "{}", used.text);
    assert_eq!(twice.call("whoami", &[]).await.json(), Value::Null);
    assert_eq!(
        twice
            .call("sign_in_code", &[("code", &codes[1])])
            .await
            .status,
        200
    );

    // A code from a sign-in cannot finish another browser's sign-in.
    let stranger = app.client();
    assert_eq!(
        stranger
            .call("sign_in_code", &[("code", &code)])
            .await
            .status,
        401
    );

    let audited: i64 = backend::on_db!(&app.db, |pool| {
        sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action IN ('user.second_factor.enrol', 'user.recovery_code.use')"
    )
    .fetch_one(pool)
    .await
    .unwrap()
    });
    assert_eq!(audited, 3);
}

async fn a_role_that_requires_it_enrols_at_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    with_au_region(&app).await;
    let email = "finance@safeshipper.test";
    user(&app, email, Role::Finance).await;
    let admin = app.signed_in(Role::Admin).await;
    let set = admin
        .call(
            "set_second_factor_roles",
            &[("roles", "finance,compliance")],
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json(), json!(["compliance", "finance"]));
    let bad = admin
        .call("set_second_factor_roles", &[("roles", "pilot")])
        .await;
    assert_eq!(bad.status, 422);
    let finance = app.client();
    assert_eq!(finance.login(email, PASSWORD).await.json(), json!("Enrol"));
    assert_eq!(finance.call("whoami", &[]).await.json(), Value::Null);
    // Only admins set the roles.
    assert_eq!(
        finance
            .call("set_second_factor_roles", &[("roles", "")])
            .await
            .status,
        401
    );
    let enrolled = enrol(&app, &finance, "+61 412 345 678", "", "+61412345678").await;
    assert_eq!(enrolled["signed_in"]["email"], email);
    assert_eq!(
        enrolled["recovery_codes"].as_array().map(Vec::len),
        Some(10)
    );
    assert_eq!(finance.call("whoami", &[]).await.json()["email"], email);
    // Required: it cannot be removed.
    let removed = finance
        .call("remove_second_factor", &[("password", PASSWORD)])
        .await;
    assert_eq!(removed.status, 422, "{}", removed.text);
    assert!(removed.text.contains("must sign in with a second factor"));
}

on_both!(a_user_adds_a_phone_then_signs_in_with_its_code_or_a_recovery_code);

async fn a_pending_sign_in_cannot_replace_the_phone_or_borrow_another_users_code(backend: Backend) {
    let app = spawn_app(backend).await;
    with_au_region(&app).await;
    let key = &app.sending.key;
    for (email, phone) in [
        ("mallory@safeshipper.test", "+61412345671"),
        ("victim@safeshipper.test", "+61412345672"),
    ] {
        user(&app, email, Role::Dispatcher).await;
        let id = backend::users::list(&app.db)
            .await
            .unwrap()
            .into_iter()
            .find(|u| u.email == email)
            .unwrap()
            .id;
        backend::second_factor::enrol(&app.db, key, &Actor::cli(), id, phone, 1)
            .await
            .unwrap();
    }
    let admin = app.signed_in(Role::Admin).await;
    admin
        .call("set_second_factor_roles", &[("roles", "dispatcher")])
        .await;

    // With the victim's password only: the code step; adding a phone there is refused.
    let attacker = app.client();
    assert!(
        attacker
            .login("victim@safeshipper.test", PASSWORD)
            .await
            .json()
            .get("Code")
            .is_some()
    );
    let swap = attacker
        .call(
            "enrol_phone",
            &[("phone", "+61412345679"), ("password", "")],
        )
        .await;
    assert_eq!(swap.status, 401, "{}", swap.text);
    assert_eq!(
        attacker
            .call("confirm_phone", &[("code", "123456")])
            .await
            .status,
        401
    );

    // The attacker's own sign-in, then the victim's password in the same browser while the
    // victim's code cannot go out (opted out): nothing of the first step carries over.
    let browser = app.client();
    assert!(
        browser
            .login("mallory@safeshipper.test", PASSWORD)
            .await
            .json()
            .get("Code")
            .is_some()
    );
    let own_code = latest_code(&app, "+61412345671").await;
    backend::consent::record_by_hand(
        &app.db,
        key,
        "+61412345672",
        backend::consent::Action::OptOut,
        "test",
        &Actor::cli(),
        2,
    )
    .await
    .unwrap();
    let victim = browser.login("victim@safeshipper.test", PASSWORD).await;
    assert_eq!(victim.status, 422, "{}", victim.text);
    let borrowed = browser.call("sign_in_code", &[("code", &own_code)]).await;
    assert_eq!(borrowed.status, 401, "{}", borrowed.text);
    assert_eq!(browser.call("whoami", &[]).await.json(), Value::Null);
}
on_both!(a_pending_sign_in_cannot_replace_the_phone_or_borrow_another_users_code);
on_both!(a_role_that_requires_it_enrols_at_sign_in);

/// The settings read national numbers as Australian (the phones here are), and let one phone
/// get several texts a second (the default pace and recipient limits would hold the codes back).
async fn with_au_region(app: &TestApp) {
    let mut s = backend::settings::sending(&app.db).await.expect("settings");
    s.default_region = "AU".to_owned();
    s.limits.per_recipient_per_hour = 100;
    s.limits.per_recipient_per_day = 100;
    s.pace.long_code = 100;
    backend::settings::save_sending(&app.db, &Actor::system(), &s)
        .await
        .expect("settings");
}
