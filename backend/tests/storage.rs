//! Users, sign-in, the audit log and templates against a real database: every test runs on
//! SQLite and on PostgreSQL.

mod common;

use backend::audit::{self, Actor, Filter};
use backend::db::{Db, now_micros};
use backend::templates::{self, TemplateStoreError};
use backend::users::{self, AuthError, Charge, PasswordChecks, UserError};
use domain::access::Role;
use domain::template::TemplateKey;
use secrecy::SecretString;

const PASSWORD: &str = "correct horse battery";

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// Signs in at `now` with each failure counted toward the account, as the first failure from an
/// address is (room for forty checks in the queue).
async fn sign_in(db: &Db, email: &str, password: &str, now: i64) -> Result<users::User, AuthError> {
    let checks = PasswordChecks::new(4, 64);
    users::authenticate(db, &checks, email, secret(password), now, Charge::Account).await
}

const SECOND: i64 = 1_000_000;
const MINUTE: i64 = 60 * SECOND;

async fn admin(db: &Db) -> users::User {
    users::create(
        db,
        &Actor::cli(),
        "admin@safeshipper.com",
        secret(PASSWORD),
        Role::Admin,
    )
    .await
    .expect("admin created")
}

async fn the_right_password_signs_in_and_a_wrong_one_does_not(db: Db) {
    let created = admin(&db).await;
    let now = now_micros();
    let user = sign_in(&db, " Admin@SafeShipper.com ", PASSWORD, now)
        .await
        .expect("signs in");
    assert_eq!(user.id, created.id);
    assert_eq!(user.role, Role::Admin);
    let wrong = sign_in(&db, "admin@safeshipper.com", "wrong password!", now).await;
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    let unknown = sign_in(&db, "nobody@safeshipper.com", PASSWORD, now).await;
    assert!(matches!(unknown, Err(AuthError::InvalidCredentials)));
}
on_both!(the_right_password_signs_in_and_a_wrong_one_does_not);

async fn repeated_failures_slow_down_then_lock_the_account(db: Db) {
    admin(&db).await;
    let email = "admin@safeshipper.com";
    let mut now = now_micros();
    for _ in 0..3 {
        let r = sign_in(&db, email, "wrong password!", now).await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)));
    }
    // Third failure: the next attempt must wait a second, even with the right password.
    let r = sign_in(&db, email, PASSWORD, now).await;
    assert!(
        matches!(r, Err(AuthError::Locked { until }) if until == now + SECOND),
        "{r:?}"
    );
    now += SECOND;
    let r = sign_in(&db, email, "wrong password!", now).await;
    assert!(matches!(r, Err(AuthError::InvalidCredentials)));
    now += 2 * SECOND;
    let r = sign_in(&db, email, "wrong password!", now).await;
    let lock_ends = now + users::LOCK_FOR.as_micros() as i64;
    assert!(
        matches!(r, Err(AuthError::Locked { until }) if until == lock_ends),
        "{r:?}"
    );
    let still = sign_in(&db, email, PASSWORD, now + MINUTE)
        .await
        .unwrap_err();
    assert!(matches!(still, AuthError::Locked { .. }), "{still:?}");
    // Said exactly like a wrong password, so that nobody learns the account exists or is locked.
    assert_eq!(still.to_string(), AuthError::InvalidCredentials.to_string());
    // After the lock, the right password works again.
    sign_in(&db, email, PASSWORD, lock_ends)
        .await
        .expect("signs in after the lock");
}
on_both!(repeated_failures_slow_down_then_lock_the_account);

async fn forty_failures_recorded_at_once_count_forty_and_lock_the_account(db: Db) {
    // Arrange
    let boss = admin(&db).await;
    let now = now_micros();

    // Act: forty failures recorded together (the statement sign-in runs for each wrong password).
    let failures = (0..40).map(|_| users::record_failed_sign_in(&db, boss.id, now));
    let counts = futures::future::join_all(failures).await;

    // Assert: each added one; none read a stale count.
    let mut counts: Vec<i64> = counts.into_iter().map(|r| r.expect("recorded").0).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=40).collect::<Vec<i64>>());
    assert_eq!(failed_logins(&db, boss.id).await, 40);
    let locked_until = users::get(&db, boss.id)
        .await
        .unwrap()
        .unwrap()
        .locked_until;
    assert_eq!(locked_until, Some(now + users::LOCK_FOR.as_micros() as i64));
}
on_both!(forty_failures_recorded_at_once_count_forty_and_lock_the_account);

async fn forty_wrong_passwords_at_once_lock_the_account(db: Db) {
    // Arrange
    let boss = admin(&db).await;
    let now = now_micros();

    // Act: forty attempts in flight together.
    let attempts = (0..40).map(|_| sign_in(&db, "admin@safeshipper.com", "wrong password!", now));
    let results = futures::future::join_all(attempts).await;

    // Assert: every one refused, and the account locked as attempts one by one would lock it
    // (a read-then-write count ended at 1 here). How many were checked before the lock was seen
    // depends on timing; each of those counted (the test above).
    assert!(results.iter().all(Result::is_err));
    let failures = failed_logins(&db, boss.id).await;
    assert!(
        (users::LOCK_AFTER_FAILURES..=40).contains(&failures),
        "{failures} failures counted"
    );
    let locked_until = users::get(&db, boss.id)
        .await
        .unwrap()
        .unwrap()
        .locked_until;
    assert_eq!(locked_until, Some(now + users::LOCK_FOR.as_micros() as i64));
    let right = sign_in(&db, "admin@safeshipper.com", PASSWORD, now).await;
    assert!(
        matches!(right, Err(AuthError::Locked { .. })),
        "the right password does not open a locked account: {right:?}"
    );
}
on_both!(forty_wrong_passwords_at_once_lock_the_account);

async fn failures_charged_to_the_address_only_never_slow_or_lock_the_account(db: Db) {
    // Arrange
    let boss = admin(&db).await;
    let checks = PasswordChecks::new(1, 64);
    let now = now_micros();

    // Act: an address that already added its failure to this account keeps guessing.
    for n in 0..20 {
        let r = users::authenticate(
            &db,
            &checks,
            &boss.email,
            secret("wrong password!"),
            now + n * SECOND,
            Charge::AddressOnly,
        )
        .await;
        assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    }

    // Assert
    assert_eq!(failed_logins(&db, boss.id).await, 0);
    sign_in(&db, &boss.email, PASSWORD, now + 20 * SECOND)
        .await
        .expect("the account takes the right password at once");
}
on_both!(failures_charged_to_the_address_only_never_slow_or_lock_the_account);

async fn a_run_of_failures_that_went_quiet_is_forgotten(db: Db) {
    // Arrange: four failures; the last, at `t`, imposed a 2 s wait.
    let boss = admin(&db).await;
    let t = now_micros();
    for at in [t - SECOND, t - SECOND, t - SECOND, t] {
        assert!(
            sign_in(&db, &boss.email, "wrong password!", at)
                .await
                .is_err()
        );
    }
    assert_eq!(failed_logins(&db, boss.id).await, 4);
    let quiet = users::FAILURES_FORGOTTEN_AFTER.as_micros() as i64;

    // Act: the next failure comes once the account has taken attempts that long again.
    let r = sign_in(&db, &boss.email, "wrong password!", t + 2 * SECOND + quiet).await;

    // Assert: a new run, not the fifth failure (and lock) of the old one.
    assert!(matches!(r, Err(AuthError::InvalidCredentials)), "{r:?}");
    assert_eq!(failed_logins(&db, boss.id).await, 1);
}
on_both!(a_run_of_failures_that_went_quiet_is_forgotten);

/// The stored count of failed sign-ins in a row (not part of [`users::User`]).
async fn failed_logins(db: &Db, id: users::UserId) -> i64 {
    let sql = "SELECT failed_logins FROM users WHERE id = $1";
    match db {
        Db::Sqlite(pool, _) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
    }
    .expect("reading failed_logins")
}

async fn disabled_users_cannot_sign_in_and_their_sessions_end(db: Db) {
    let boss = admin(&db).await;
    let actor = Actor::user(boss.id, &boss.email);
    let dispatcher = users::create(
        &db,
        &actor,
        "dispatch@safeshipper.com",
        secret(PASSWORD),
        Role::Dispatcher,
    )
    .await
    .expect("created");
    let disabled = users::set_disabled(&db, &actor, dispatcher.id, true)
        .await
        .expect("disabled");
    assert!(disabled.disabled);
    assert!(disabled.session_epoch > dispatcher.session_epoch);
    let r = sign_in(&db, "dispatch@safeshipper.com", PASSWORD, now_micros()).await;
    assert!(matches!(r, Err(AuthError::Disabled)));
    // An admin cannot lock themselves out.
    let own = users::set_disabled(&db, &actor, boss.id, true).await;
    assert!(matches!(own, Err(UserError::SelfChange(_))));
}
on_both!(disabled_users_cannot_sign_in_and_their_sessions_end);

async fn a_new_password_replaces_the_old_and_ends_other_sessions(db: Db) {
    let boss = admin(&db).await;
    let changed = users::set_password(&db, &Actor::cli(), boss.id, secret("a brand new password"))
        .await
        .expect("changed");
    assert!(changed.session_epoch > boss.session_epoch);
    let now = now_micros();
    assert!(sign_in(&db, &boss.email, PASSWORD, now).await.is_err());
    sign_in(&db, &boss.email, "a brand new password", now)
        .await
        .expect("the new password works");
    let short = users::set_password(&db, &Actor::cli(), boss.id, secret("short")).await;
    assert!(matches!(short, Err(UserError::WeakPassword)));
}
on_both!(a_new_password_replaces_the_old_and_ends_other_sessions);

async fn user_rules_refuse_bad_input_with_reasons(db: Db) {
    admin(&db).await;
    let taken = users::create(
        &db,
        &Actor::cli(),
        "ADMIN@safeshipper.com",
        secret(PASSWORD),
        Role::Finance,
    )
    .await;
    assert!(matches!(taken, Err(UserError::EmailTaken(_))));
    let bad = users::create(
        &db,
        &Actor::cli(),
        "not-an-email",
        secret(PASSWORD),
        Role::Finance,
    )
    .await;
    assert!(matches!(bad, Err(UserError::BadEmail(_))));
    assert_eq!(users::count(&db).await.unwrap(), 1);
}
on_both!(user_rules_refuse_bad_input_with_reasons);

async fn every_change_lands_in_the_audit_log_with_before_and_after(db: Db) {
    let boss = admin(&db).await;
    let actor = Actor::user(boss.id, &boss.email);
    let user = users::create(
        &db,
        &actor,
        "finance@safeshipper.com",
        secret(PASSWORD),
        Role::Finance,
    )
    .await
    .unwrap();
    users::set_role(&db, &actor, user.id, Role::Compliance)
        .await
        .unwrap();
    users::set_password(&db, &actor, user.id, secret("another long password"))
        .await
        .unwrap();

    let entries = audit::list(&db, &Filter::default()).await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["user.password", "user.role", "user.create", "user.create"]
    );
    let role_change = &entries[1];
    assert_eq!(role_change.actor_email, "admin@safeshipper.com");
    assert_eq!(role_change.target, format!("user:{}", user.id));
    assert!(
        role_change
            .before_json
            .as_deref()
            .unwrap()
            .contains("\"finance\"")
    );
    assert!(
        role_change
            .after_json
            .as_deref()
            .unwrap()
            .contains("\"compliance\"")
    );
    assert!(
        !entries[0]
            .after_json
            .as_deref()
            .unwrap()
            .contains("another long password")
    );

    let by_admin = audit::list(
        &db,
        &Filter {
            actor: Some("ADMIN@".into()),
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(by_admin.len(), 3);
    let roles_only = audit::list(
        &db,
        &Filter {
            action: Some("user.role".into()),
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(roles_only.len(), 1);
}
on_both!(every_change_lands_in_the_audit_log_with_before_and_after);

async fn templates_are_seeded_once_and_edited_with_an_audit_trail(db: Db) {
    assert_eq!(templates::seed_defaults(&db).await.unwrap(), 5);
    assert_eq!(templates::seed_defaults(&db).await.unwrap(), 0);
    let all = templates::list(&db).await.unwrap();
    assert_eq!(all.len(), 5);

    let actor = Actor::user(1, "dispatch@safeshipper.com");
    let copy = templates::duplicate(
        &db,
        &actor,
        "shipment_created",
        TemplateKey::parse("shipment_created_copy").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        copy.template.body(),
        all.iter()
            .find(|t| t.template.key().as_str() == "shipment_created")
            .unwrap()
            .template
            .body()
    );
    let again = templates::duplicate(
        &db,
        &actor,
        "shipment_created",
        TemplateKey::parse("shipment_created_copy").unwrap(),
    )
    .await;
    assert!(matches!(again, Err(TemplateStoreError::KeyTaken(_))));

    let mut renamed = domain::template::TemplateParts::from(copy.template.clone());
    renamed.key = TemplateKey::parse("shipment_ready").unwrap();
    let renamed = domain::template::Template::new(renamed).unwrap();
    let stored = templates::update(&db, &actor, "shipment_created_copy", &renamed)
        .await
        .unwrap();
    assert_eq!(stored.template.key().as_str(), "shipment_ready");
    assert_eq!(stored.updated_by, "dispatch@safeshipper.com");
    assert!(
        templates::get(&db, "shipment_created_copy")
            .await
            .unwrap()
            .is_none()
    );

    templates::delete(&db, &actor, "shipment_ready")
        .await
        .unwrap();
    assert!(matches!(
        templates::delete(&db, &actor, "shipment_ready").await,
        Err(TemplateStoreError::NotFound(_))
    ));
    let trail: Vec<String> = audit::list(
        &db,
        &Filter {
            action: Some("template.".into()),
            ..Filter::default()
        },
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|e| e.actor_email == "dispatch@safeshipper.com")
    .map(|e| e.action)
    .collect();
    assert_eq!(
        trail,
        ["template.delete", "template.update", "template.create"]
    );
}
on_both!(templates_are_seeded_once_and_edited_with_an_audit_trail);

async fn a_checked_api_key_is_trusted_for_a_second_and_a_wrong_secret_never(db: Db) {
    use backend::api_keys::{self, KeyCache, Presented, TRUSTED_FOR_MICROS};
    let created = api_keys::create(&db, &Actor::cli(), "dispatch service")
        .await
        .expect("key");
    let (id, secret) = (created.key.id.as_str(), api_keys::reveal(&created.secret));
    let cache = KeyCache::default();
    let t0 = now_micros();
    let check = |presented, now| {
        let (cache, db) = (cache.clone(), db.clone());
        async move {
            cache
                .authenticate(&db, presented, now)
                .await
                .expect("db")
                .map(|k| k.id)
        }
    };
    assert_eq!(
        check(Presented::IdAndSecret(id, secret), t0)
            .await
            .as_deref(),
        Some(id)
    );
    // Revoked elsewhere (another instance, the command line): trusted until its second is up.
    api_keys::revoke(&db, &Actor::cli(), id)
        .await
        .expect("revoked");
    assert_eq!(
        check(
            Presented::IdAndSecret(id, secret),
            t0 + TRUSTED_FOR_MICROS - 1
        )
        .await
        .as_deref(),
        Some(id)
    );
    // Other credentials are never answered from what was checked.
    assert_eq!(
        check(Presented::IdAndSecret(id, "wrong"), t0 + 1).await,
        None
    );
    assert_eq!(check(Presented::Secret(secret), t0 + 1).await, None);
    assert_eq!(
        check(Presented::IdAndSecret(id, secret), t0 + TRUSTED_FOR_MICROS).await,
        None
    );
    // A clock that went back is not a reason to trust.
    assert_eq!(
        check(Presented::IdAndSecret(id, secret), t0 - 1).await,
        None
    );
    // Forgetting makes a revocation on this instance immediate.
    let fresh = api_keys::create(&db, &Actor::cli(), "billing")
        .await
        .expect("key");
    let (fresh_id, fresh_secret) = (fresh.key.id.as_str(), api_keys::reveal(&fresh.secret));
    let presented = || Presented::IdAndSecret(fresh_id, fresh_secret);
    assert!(check(presented(), t0).await.is_some());
    api_keys::revoke(&db, &Actor::cli(), fresh_id)
        .await
        .expect("revoked");
    cache.clear();
    assert_eq!(check(presented(), t0 + 1).await, None);
}
on_both!(a_checked_api_key_is_trusted_for_a_second_and_a_wrong_secret_never);
