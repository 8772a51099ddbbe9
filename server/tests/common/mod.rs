//! `spawn_app`: the real smsdesk on port 0 with a fresh database (SQLite or PostgreSQL), and a
//! client with a cookie jar that talks to it over HTTP like a browser would.

#![allow(dead_code)]

use std::net::SocketAddr;

use backend::testing::{Backend, TestDb};
use secrecy::{SecretBox, SecretString};
use serde_json::Value;
use server::settings::Settings;
use server::startup::Application;

pub const ADMIN_EMAIL: &str = "admin@safeshipper.test";
pub const ADMIN_PASSWORD: &str = "first admin password";
pub const PASSWORD: &str = "a long enough password";

/// Declares a test twice, once per backend: `super::name(Backend)`.
#[macro_export]
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(backend::testing::Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(backend::testing::Backend::Postgres).await;
            }
        }
    };
}

/// The auth token the simulator signs callbacks with in tests (so tests can sign and forge).
pub const AUTH_TOKEN: &str = "test-auth-token-0123456789abcdef";

/// A Twilio account the tests send as (the fakes accept any): its sid and auth token.
pub const TWILIO_ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// Twilio settings for the account `sid` (auth `token`), sending from `from` to `base` (a fake
/// Twilio's address).
#[allow(dead_code)]
pub fn twilio_account(
    sid: &str,
    token: &str,
    from: &str,
    base: String,
) -> server::settings::TwilioSettings {
    server::settings::TwilioSettings {
        account_sid: sid.to_owned(),
        auth_token: Some(SecretString::from(token)),
        phone_number: Some(from.to_owned()),
        messaging_service_sid: None,
        api_key: None,
        api_base_url: base,
    }
}

pub struct TestApp {
    pub address: SocketAddr,
    pub db: backend::db::Db,
    /// Sending's parts: tests drive a worker and the simulator by hand (the app runs none).
    pub sending: server::sending::Sending,
    /// The app's cap on password checks (tests saturate it).
    pub password_checks: backend::users::PasswordChecks,
    _database: TestDb,
}

/// A browser-like client: keeps cookies, sends `Sec-Fetch-Site: same-origin` like a page of the
/// console would, does not follow redirects (tests look at them).
pub struct Client {
    pub http: reqwest::Client,
    base: String,
}

pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// A response header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// `spawn_app` with some settings changed first.
pub async fn spawn_app_with(backend: Backend, change: impl FnOnce(&mut Settings)) -> TestApp {
    // The server's errors go to the test's output (shown when a test fails): a 503 then says
    // which database error it was.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::WARN)
        .try_init();
    let database = TestDb::new(backend).await;
    let mut settings = Settings {
        database_url: database.url(),
        listen: "127.0.0.1:0".parse().expect("address"),
        public_url: None,
        behind_proxy: false,
        data_key: SecretBox::new(Box::new([7u8; 32])),
        session_secret: SecretBox::new(Box::new([9u8; 64])),
        admin_email: ADMIN_EMAIL.to_owned(),
        admin_password: Some(SecretString::from(ADMIN_PASSWORD)),
        twilio: None,
        fallback: None,
        account_sid: None,
        auth_token: Some(SecretString::from(AUTH_TOKEN)),
        phone_number: None,
        simulator_seed: Some(1),
        send_timeout: std::time::Duration::from_secs(5),
        worker: false,
        request_timeout: std::time::Duration::from_secs(30),
        metrics_token: None,
        alert_webhook_secret: None,
        webhook_shared_key: None,
    };
    change(&mut settings);
    let app = Application::build(settings).await.expect("smsdesk builds");
    let address = app.address();
    let sending = app.sending.clone();
    // The server's own pool: a test's writes take turns with the server's (SQLite's single
    // writer), as another part of the same process would.
    let db = sending.db.clone();
    let password_checks = app.password_checks.clone();
    tokio::spawn(app.run_until(std::future::pending()));
    TestApp {
        address,
        sending,
        password_checks,
        db,
        _database: database,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A new browser with an empty cookie jar.
    pub fn client(&self) -> Client {
        self.client_with(reqwest::header::HeaderMap::new())
    }

    /// A new browser that a reverse proxy forwards from `address` (it appends that address to
    /// `X-Forwarded-For`, which smsdesk believes when `behind_proxy` is set).
    pub fn client_at(&self, address: &str) -> Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", address.parse().expect("header"));
        self.client_with(headers)
    }

    fn client_with(&self, mut headers: reqwest::header::HeaderMap) -> Client {
        headers.insert("sec-fetch-site", "same-origin".parse().expect("header"));
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                // A request the server never answers fails the test and names its path (one
                // hung once in CI, unexplained), rather than hanging the run.
                .timeout(std::time::Duration::from_secs(60))
                .default_headers(headers)
                .build()
                .expect("client"),
            base: format!("http://{}", self.address),
        }
    }

    /// A browser signed in as a new user with this role (or the first admin).
    pub async fn signed_in(&self, role: domain::access::Role) -> Client {
        let email = if role == domain::access::Role::Admin {
            ADMIN_EMAIL.to_owned()
        } else {
            let email = format!("{role}@safeshipper.test");
            backend::users::create(
                &self.db,
                &backend::audit::Actor::cli(),
                &email,
                SecretString::from(PASSWORD),
                role,
            )
            .await
            .expect("user created");
            email
        };
        let password = if role == domain::access::Role::Admin {
            ADMIN_PASSWORD
        } else {
            PASSWORD
        };
        let client = self.client();
        let answer = client.login(&email, password).await;
        assert_eq!(answer.status, 200, "sign-in failed: {}", answer.text);
        client
    }
}

impl Client {
    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Answer {
            status,
            location,
            headers,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        Self::answer(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {path}: {e}")),
        )
        .await
    }

    /// Calls a server function with form-encoded arguments (Leptos' default encoding).
    pub async fn call(&self, endpoint: &str, form: &[(&str, &str)]) -> Answer {
        let response = self
            .http
            .post(format!("{}/api/{endpoint}", self.base))
            .form(form)
            .send()
            .await
            .expect("POST");
        Self::answer(response).await
    }

    /// Calls a server function that takes JSON.
    pub async fn call_json(&self, endpoint: &str, body: &Value) -> Answer {
        let response = self
            .http
            .post(format!("{}/api/{endpoint}", self.base))
            .json(body)
            .send()
            .await
            .expect("POST");
        Self::answer(response).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.call("login", &[("email", email), ("password", password)])
            .await
    }
}
