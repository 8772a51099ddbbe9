//! No code and no whole number in smsdesk's logs: every line of a verification's life (start,
//! the worker's send, the simulator's callbacks, a wrong and a right check), captured at TRACE
//! level from every crate, is searched for the code and the number.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use backend::audit::Actor;
use backend::testing::Backend;
use serde_json::Value;

/// Every log line, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

#[tokio::test]
async fn a_verification_leaves_no_code_and_no_number_in_the_logs() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .init();
    let app = common::spawn_app(Backend::Sqlite).await;
    let created = backend::api_keys::create(&app.db, &Actor::cli(), "sign-in service")
        .await
        .expect("key");
    let (id, secret) = (
        created.key.id.clone(),
        backend::api_keys::reveal(&created.secret).to_owned(),
    );
    let http = reqwest::Client::new();
    let post = |path: &str, form: &[(&str, &str)]| {
        http.post(app.url(path))
            .basic_auth(&id, Some(&secret))
            .form(form)
            .send()
    };
    let to = "+14155552690";
    let service: Value = post("/v2/Services", &[("FriendlyName", "SafeShipper")])
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let service_sid = service["sid"].as_str().expect("sid").to_owned();
    let started = post(
        &format!("/v2/Services/{service_sid}/Verifications"),
        &[("To", to), ("Channel", "sms")],
    )
    .await
    .expect("POST");
    assert_eq!(started.status(), 201);

    // The worker's step sends the code to the simulated phone; its callbacks come back signed.
    let now = backend::db::now_micros();
    let step = app
        .sending
        .worker(Some(app.sending.status_url()))
        .try_execute_task(now)
        .await
        .expect("step");
    assert_eq!(step.sent, 1, "{step:?}");
    let simulator = server::simulator_inbox::simulator(&app.sending).expect("simulating");
    assert_eq!(simulator.post_due(now + 60_000_000).await, 2);
    let inbox: Value = http
        .get(app.url("/simulator/inbox?to=%2B14155552690"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let code = inbox["messages"][0]["body"].as_str().and_then(|body| {
        body.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .map(str::to_owned)
    });
    let code = code.expect("the code reached the simulated phone");
    let check = format!("/v2/Services/{service_sid}/VerificationCheck");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let answer: Value = post(&check, &[("To", to), ("Code", wrong)])
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["status"], "pending");
    let answer: Value = post(&check, &[("To", to), ("Code", &code)])
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["status"], "approved");

    let logs = captured.text();
    // The capture works: the approval and the worker's send are in it.
    assert!(logs.contains("verification approved"), "{logs}");
    assert!(logs.contains("verification code sent"), "{logs}");
    // The code as a number of its own (a longer number, a timestamp, may hold its digits).
    let standalone = logs
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| *w == code)
        .count();
    assert_eq!(standalone, 0, "the code {code} is in the logs");
    assert!(
        !logs.contains("4155552690"),
        "the number is in the logs whole"
    );
}
