//! Two-factor verifications against a real database, with a clock the tests set: a code goes out
//! through intake, a new start within the code's life sends the same code, a wrong code counts,
//! the sixth check and the sixth send are refused, expiry, cancel, and the pumping guards.

mod common;

use std::sync::Arc;

use backend::audit::Actor;
use backend::crypto::DataKey;
use backend::db::Db;
use backend::intake::{Intake, RefusalCode};
use backend::on_db;
use backend::outbox::Source;
use backend::verify::{self, Failure, Guards, Purpose, Service, Target, Verifier};
use domain::sending::SendingSettings;
use domain::verify::{Status, VerifyError};

const T0: i64 = 1_780_000_000_000_000;
const MINUTE: i64 = 60_000_000;
const TO: &str = "+14155552671";

fn key() -> DataKey {
    DataKey::new(&[9u8; 32])
}

struct Fixture {
    db: Db,
    verifier: Verifier,
    service: Service,
    settings: SendingSettings,
}

impl Fixture {
    async fn new(db: Db) -> Fixture {
        backend::templates::seed_defaults(&db)
            .await
            .expect("templates");
        let intake = Intake::new(db.clone(), key(), Arc::new(tokio::sync::Notify::new()));
        let service =
            verify::create_service(&db, &Actor::system(), "SafeShipper", 6, Purpose::Api, T0)
                .await
                .expect("service");
        let settings = backend::settings::sending(&db).await.expect("settings");
        Fixture {
            verifier: Verifier::new(db.clone(), key(), intake),
            db,
            service,
            settings,
        }
    }

    async fn start(&self, to: &str, now: i64) -> Result<verify::Verification, Failure> {
        self.verifier
            .start(
                &self.settings,
                Purpose::Api,
                &self.service.sid,
                Some(to),
                Some("sms"),
                &Source::ApiKey("SKtest".to_owned()),
                now,
            )
            .await
    }

    async fn check(&self, to: &str, code: &str, now: i64) -> Result<verify::Verification, Failure> {
        self.verifier
            .check(
                &self.settings,
                Purpose::Api,
                &self.service.sid,
                Target::To(to.to_owned()),
                code,
                now,
            )
            .await
    }

    /// The bodies of the messages that carried codes, oldest first.
    async fn bodies(&self) -> Vec<String> {
        on_db!(&self.db, |pool| sqlx::query_scalar(
            "SELECT body FROM messages WHERE category = 'two_factor' ORDER BY id"
        )
        .fetch_all(pool)
        .await
        .expect("bodies"))
    }
}

fn verify_error(r: Result<verify::Verification, Failure>) -> VerifyError {
    match r {
        Err(Failure::Verify(e)) => e,
        other => panic!("expected a Verify error, got {other:?}"),
    }
}

async fn a_code_is_sent_through_intake_and_approved_once(db: Db) {
    let f = Fixture::new(db).await;
    let v = f.start(TO, T0).await.expect("started");
    assert!(v.sid.starts_with("VE") && v.sid.len() == 34, "{}", v.sid);
    assert_eq!(
        (v.status, v.to.as_str(), v.channel.as_str()),
        (Status::Pending, TO, "sms")
    );
    assert_eq!(v.expires_at, T0 + 10 * MINUTE);
    assert_eq!(v.attempts.len(), 1);
    assert!(v.attempts[0].attempt_sid.starts_with("VL"));

    let code = key().verification_code(&v.sid, 6);
    let bodies = f.bodies().await;
    assert_eq!(
        bodies,
        [format!(
            "Your SafeShipper code is {code}. It expires in 10 minutes. Never share it."
        )]
    );
    // The message: two-factor priority, valid for what is left of the code's life.
    let (priority, validity, source): (i64, Option<i64>, String) = on_db!(&f.db, |pool| {
        sqlx::query_as("SELECT priority, validity_until, source FROM messages")
            .fetch_one(pool)
            .await
            .expect("message")
    });
    assert_eq!(
        (priority, validity, source.as_str()),
        (1, Some(T0 + 10 * MINUTE), "api_key:SKtest")
    );
    // Only the code's keyed hash is stored.
    let stored: String = on_db!(&f.db, |pool| sqlx::query_scalar(
        "SELECT code_hash FROM verifications"
    )
    .fetch_one(pool)
    .await
    .expect("hash"));
    assert_eq!(stored, key().code_hash(&v.sid, &code));

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let checked = f.check(TO, wrong, T0 + MINUTE).await.expect("a wrong code");
    assert_eq!((checked.status, checked.checks), (Status::Pending, 1));
    let approved = f.check(TO, &code, T0 + 2 * MINUTE).await.expect("approved");
    assert_eq!(approved.status, Status::Approved);
    // Approved: gone for checks and fetches.
    assert!(matches!(
        verify_error(f.check(TO, &code, T0 + 3 * MINUTE).await),
        VerifyError::NotFound(_)
    ));
    assert!(matches!(
        verify_error(
            f.verifier
                .fetch(Purpose::Api, &f.service.sid, &v.sid, T0 + 3 * MINUTE)
                .await
        ),
        VerifyError::NotFound(_)
    ));
}
on_both!(a_code_is_sent_through_intake_and_approved_once);

async fn a_new_start_within_the_life_sends_the_same_code_and_expiry_ends_it(db: Db) {
    let f = Fixture::new(db).await;
    let first = f.start(TO, T0).await.expect("first");
    let again = f.start("+1 (415) 555-2671", T0 + 4 * MINUTE).await;
    // Twilio takes E.164 only.
    assert_eq!(verify_error(again), VerifyError::invalid("To"));
    let again = f.start(TO, T0 + 4 * MINUTE).await.expect("again");
    assert_eq!(again.sid, first.sid);
    assert_eq!(again.attempts.len(), 2);
    let bodies = f.bodies().await;
    let code = key().verification_code(&first.sid, 6);
    assert_eq!(bodies.len(), 2);
    assert!(bodies[0].contains(&code) && bodies[1].contains(&code));
    assert!(bodies[1].contains("expires in 6 minutes"), "{}", bodies[1]);

    // At the end of its life it is expired: a check with the right code finds nothing.
    let end = first.expires_at;
    assert!(matches!(
        verify_error(f.check(TO, &code, end).await),
        VerifyError::NotFound(_)
    ));
    assert_eq!(
        verify::recent(&f.db, 10, end).await.unwrap()[0].status,
        Status::Expired
    );
    // A start after it is a new verification with its own code.
    let fresh = f.start(TO, end).await.expect("fresh");
    assert_ne!(fresh.sid, first.sid);
    let approved = f
        .check(TO, &key().verification_code(&fresh.sid, 6), end + MINUTE)
        .await
        .expect("approved");
    assert_eq!(approved.status, Status::Approved);
}
on_both!(a_new_start_within_the_life_sends_the_same_code_and_expiry_ends_it);

async fn five_sends_in_ten_minutes_then_60203_and_five_checks_then_60202(db: Db) {
    let f = Fixture::new(db).await;
    for i in 0..5 {
        f.start(TO, T0 + i * MINUTE)
            .await
            .expect("within the limit");
    }
    assert_eq!(
        verify_error(f.start(TO, T0 + 9 * MINUTE).await),
        VerifyError::MaxSends
    );
    // Another number is not affected.
    let other = f
        .start("+14155552672", T0 + 9 * MINUTE)
        .await
        .expect("other");
    for i in 0..5 {
        let v = f
            .check("+14155552672", "abcd", T0 + 9 * MINUTE + i)
            .await
            .expect("a wrong code is answered");
        assert_eq!((v.status, v.checks), (Status::Pending, i as u32 + 1));
    }
    let right = key().verification_code(&other.sid, 6);
    assert_eq!(
        verify_error(f.check("+14155552672", &right, T0 + 10 * MINUTE).await),
        VerifyError::MaxChecks
    );
    assert!(matches!(
        verify_error(f.check("+14155552672", &right, T0 + 10 * MINUTE).await),
        VerifyError::NotFound(_)
    ));
    let listed = verify::recent(&f.db, 10, T0 + 10 * MINUTE).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|l| l.sid == other.sid && l.status == Status::MaxAttemptsReached)
    );
}
on_both!(five_sends_in_ten_minutes_then_60203_and_five_checks_then_60202);

async fn cancel_and_approve_by_update_end_a_verification(db: Db) {
    let f = Fixture::new(db).await;
    let v = f.start(TO, T0).await.unwrap();
    let fetched = f
        .verifier
        .fetch(Purpose::Api, &f.service.sid, &v.sid, T0 + 1)
        .await
        .unwrap();
    assert_eq!(fetched.sid, v.sid);
    let canceled = f
        .verifier
        .update(
            Purpose::Api,
            &f.service.sid,
            &v.sid,
            Status::Canceled,
            T0 + 2,
        )
        .await
        .unwrap();
    assert_eq!(canceled.status, Status::Canceled);
    for r in [
        f.verifier
            .fetch(Purpose::Api, &f.service.sid, &v.sid, T0 + 3)
            .await,
        f.verifier
            .update(
                Purpose::Api,
                &f.service.sid,
                &v.sid,
                Status::Approved,
                T0 + 3,
            )
            .await,
        f.check(TO, &key().verification_code(&v.sid, 6), T0 + 3)
            .await,
    ] {
        assert!(matches!(verify_error(r), VerifyError::NotFound(_)));
    }
    // Unknown service, unknown verification.
    let unknown = f
        .verifier
        .fetch(
            Purpose::Api,
            "VA00000000000000000000000000000000",
            &v.sid,
            T0,
        )
        .await;
    assert!(matches!(verify_error(unknown), VerifyError::NotFound(_)));
    let next = f.start("+14155552672", T0).await.unwrap();
    let approved = f
        .verifier
        .update(
            Purpose::Api,
            &f.service.sid,
            &next.sid,
            Status::Approved,
            T0 + 1,
        )
        .await
        .unwrap();
    assert_eq!(approved.status, Status::Approved);
    let days = verify::per_day(&f.db, T0).await.unwrap();
    assert_eq!((days[0].started, days[0].approved), (2, 1));
}
on_both!(cancel_and_approve_by_update_end_a_verification);

async fn services_send_only_to_their_countries_within_their_hourly_cap(db: Db) {
    let f = Fixture::new(db).await;
    let guards = Guards {
        lifetime_seconds: 300,
        countries: vec!["au".to_owned()],
        hourly_cap: Some(2),
    };
    let saved = verify::set_guards(
        &f.db,
        &Actor::system(),
        &f.service.sid,
        &guards,
        &f.settings,
        T0,
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(
        (
            saved.countries.clone(),
            saved.hourly_cap,
            saved.lifetime_seconds
        ),
        (vec!["AU".to_owned()], Some(2), 300)
    );
    let f = Fixture {
        service: saved,
        ..f
    };
    assert_eq!(
        verify_error(f.start(TO, T0).await),
        VerifyError::CountryBlocked("US".into())
    );
    let a = f.start("+61412345678", T0).await.expect("AU");
    assert_eq!(a.expires_at, T0 + 5 * MINUTE);
    f.start("+61412345679", T0 + 1).await.expect("AU, second");
    assert_eq!(
        verify_error(f.start("+61412345670", T0 + 2).await),
        VerifyError::CountryCapReached {
            country: "AU".into(),
            cap: 2
        }
    );
    // The hour counts from each send.
    f.start("+61412345670", T0 + 60 * MINUTE + 1)
        .await
        .expect("an hour on");

    // Guards outside the geo permissions or the bounds are refused with the reason.
    for (bad, says) in [
        (
            Guards {
                countries: vec!["GB".into()],
                ..guards.clone()
            },
            "geo permissions",
        ),
        (
            Guards {
                countries: vec!["ZZ".into()],
                ..guards.clone()
            },
            "not a country",
        ),
        (
            Guards {
                lifetime_seconds: 60,
                ..guards.clone()
            },
            "2 minutes",
        ),
        (
            Guards {
                hourly_cap: Some(0),
                ..guards.clone()
            },
            "hourly cap",
        ),
    ] {
        let e = verify::set_guards(
            &f.db,
            &Actor::system(),
            &f.service.sid,
            &bad,
            &f.settings,
            T0,
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(e.contains(says), "{e}");
    }
    let audited: i64 = on_db!(&f.db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'verify.service.update'"
    )
    .fetch_one(pool)
    .await
    .unwrap());
    assert_eq!(audited, 1);
}
on_both!(services_send_only_to_their_countries_within_their_hourly_cap);

async fn intake_refusals_stop_a_start_and_leave_nothing(db: Db) {
    let f = Fixture::new(db).await;
    backend::consent::record_by_hand(
        &f.db,
        &key(),
        TO,
        backend::consent::Action::OptOut,
        "asked by phone",
        &Actor::system(),
        T0,
    )
    .await
    .unwrap();
    match f.start(TO, T0).await {
        Err(Failure::Refused(r)) => assert_eq!(r.code, RefusalCode::OptedOut),
        other => panic!("expected the opt-out refusal, got {other:?}"),
    }
    // Outside the geo permissions (US, CA, AU by default).
    match f.start("+447911123456", T0).await {
        Err(Failure::Refused(r)) => assert_eq!(r.code, RefusalCode::CountryNotAllowed),
        other => panic!("expected the geo refusal, got {other:?}"),
    }
    let rows: (i64, i64) = on_db!(&f.db, |pool| sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM verifications), (SELECT COUNT(*) FROM verification_sends)"
    )
    .fetch_one(pool)
    .await
    .unwrap());
    assert_eq!(rows, (0, 0));
    assert_eq!(
        verify_error(
            f.verifier
                .start(
                    &f.settings,
                    Purpose::Api,
                    &f.service.sid,
                    Some(TO),
                    Some("call"),
                    &Source::System("t".into()),
                    T0
                )
                .await
        ),
        VerifyError::invalid("Channel")
    );
}
on_both!(intake_refusals_stop_a_start_and_leave_nothing);

async fn starts_at_once_to_one_number_share_one_verification_and_the_send_limit(db: Db) {
    let f = Arc::new(Fixture::new(db).await);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let f = f.clone();
            tokio::spawn(async move { f.start(TO, T0 + i).await })
        })
        .collect();
    let mut sids = std::collections::BTreeSet::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(v) => {
                sids.insert(v.sid);
            }
            Err(Failure::Verify(VerifyError::MaxSends)) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((sids.len(), refused), (1, 3));
    assert_eq!(f.bodies().await.len(), 5);
}
on_both!(starts_at_once_to_one_number_share_one_verification_and_the_send_limit);

async fn smsdesks_own_services_are_made_once_and_out_of_the_apis_reach(db: Db) {
    let f = Fixture::new(db).await;
    let sign_in = verify::console_service(&f.db, Purpose::ConsoleSignIn, T0)
        .await
        .unwrap();
    let again = verify::console_service(&f.db, Purpose::ConsoleSignIn, T0)
        .await
        .unwrap();
    let enrol = verify::console_service(&f.db, Purpose::ConsoleEnrol, T0)
        .await
        .unwrap();
    assert_eq!(sign_in.sid, again.sid);
    assert_ne!(sign_in.sid, enrol.sid);
    assert_eq!((sign_in.hourly_cap, enrol.hourly_cap), (None, Some(100)));
    // Several instances at once: still one each (a unique index on the purpose).
    let racing: Vec<_> = (0..4)
        .map(|_| {
            let db = f.db.clone();
            tokio::spawn(async move {
                verify::console_service(&db, Purpose::ConsoleEnrol, T0)
                    .await
                    .unwrap()
                    .sid
            })
        })
        .collect();
    for r in racing {
        assert_eq!(r.await.unwrap(), enrol.sid);
    }
    let started = f
        .verifier
        .start(
            &f.settings,
            Purpose::ConsoleSignIn,
            &sign_in.sid,
            Some(TO),
            Some("sms"),
            &Source::System("sign_in".into()),
            T0,
        )
        .await
        .expect("the console's own start");
    // The Verify API (an API key's purpose) finds nothing there.
    for r in [
        f.verifier
            .fetch(Purpose::Api, &sign_in.sid, &started.sid, T0)
            .await,
        f.verifier
            .start(
                &f.settings,
                Purpose::Api,
                &sign_in.sid,
                Some(TO),
                Some("sms"),
                &Source::System("t".into()),
                T0,
            )
            .await,
        f.verifier
            .update(
                Purpose::Api,
                &sign_in.sid,
                &started.sid,
                Status::Canceled,
                T0,
            )
            .await,
        f.verifier
            .check(
                &f.settings,
                Purpose::Api,
                &sign_in.sid,
                Target::To(TO.into()),
                "123456",
                T0,
            )
            .await,
    ] {
        assert!(matches!(verify_error(r), VerifyError::NotFound(_)));
    }
    // Nor does the console reach an API key's service.
    let api = f
        .verifier
        .start(
            &f.settings,
            Purpose::ConsoleSignIn,
            &f.service.sid,
            Some(TO),
            Some("sms"),
            &Source::System("t".into()),
            T0,
        )
        .await;
    assert!(matches!(verify_error(api), VerifyError::NotFound(_)));
}
on_both!(smsdesks_own_services_are_made_once_and_out_of_the_apis_reach);

#[test]
fn a_check_needs_a_number_or_a_verification_sid() {
    assert_eq!(
        Target::from_form(None, None),
        Err(VerifyError::MissingTarget)
    );
    assert_eq!(
        Target::from_form(Some(" ".into()), Some(String::new())),
        Err(VerifyError::MissingTarget)
    );
    assert_eq!(
        Target::from_form(Some(TO.into()), Some("VE1".into())),
        Ok(Target::Sid("VE1".into()))
    );
    assert_eq!(
        Target::from_form(Some(TO.into()), None),
        Ok(Target::To(TO.into()))
    );
}
