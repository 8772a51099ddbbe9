//! Fresh databases for tests (feature `testing`, for this crate's and the server's tests): a
//! SQLite file in a temporary folder, and a PostgreSQL database created for the test and dropped
//! after it, even when the test panics.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::db::Db;
use sqlx::Connection;

/// The PostgreSQL server tests use: `SMSDESK_TEST_POSTGRES_URL`, or the local one.
pub fn postgres_admin_url() -> String {
    std::env::var("SMSDESK_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Saves sending settings with every limit far away (benches measure the engine, not the limits).
pub async fn open_limits(db: &Db) {
    let mut s = crate::settings::SendingSettings::default();
    s.limits.per_second = 1_000_000;
    s.limits.per_minute = 10_000_000;
    s.limits.per_hour = 100_000_000;
    s.limits.per_recipient_per_hour = 1_000_000;
    s.limits.per_recipient_per_day = 1_000_000;
    s.pace.long_code = 1_000_000;
    crate::settings::save_sending(db, &crate::audit::Actor::system(), &s)
        .await
        .expect("settings");
}

/// A migrated database that is removed when dropped.
pub struct TestDb {
    pub db: Db,
    postgres_name: Option<String>,
    _dir: Option<tempfile_dir::TempDir>,
}

mod tempfile_dir {
    /// A folder under the system temp folder, removed on drop.
    pub struct TempDir(pub std::path::PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb::sqlite().await,
            Backend::Postgres => TestDb::postgres().await,
        }
    }

    /// The URL smsdesk connects to (for a server under test).
    pub fn url(&self) -> String {
        match (&self.postgres_name, &self._dir) {
            (Some(name), _) => match postgres_admin_url().rsplit_once('/') {
                Some((base, _)) => format!("{base}/{name}"),
                None => unreachable!("checked when the database was created"),
            },
            (None, Some(dir)) => format!("sqlite://{}/smsdesk.db", dir.0.display()),
            (None, None) => unreachable!("a test database is SQLite or PostgreSQL"),
        }
    }

    pub async fn sqlite() -> TestDb {
        let dir = std::env::temp_dir().join(unique("smsdesk_test"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}/smsdesk.db", dir.display());
        let db = Db::connect(&url).await.expect("SQLite opens");
        db.migrate().await.expect("migrations run");
        TestDb {
            db,
            postgres_name: None,
            _dir: Some(tempfile_dir::TempDir(dir)),
        }
    }

    pub async fn postgres() -> TestDb {
        let admin = postgres_admin_url();
        let name = unique("smsdesk_test");
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL must be running for the tests ({admin}): {e}; make test starts it"
                )
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let url = match admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("{admin} has no database part"),
        };
        let db = Db::connect(&url).await.expect("PostgreSQL opens");
        db.migrate().await.expect("migrations run");
        TestDb {
            db,
            postgres_name: Some(name),
            _dir: None,
        }
    }

    /// Closes the pool (the PostgreSQL database goes when the value is dropped).
    pub async fn cleanup(self) {
        self.db.close().await;
    }
}

impl Drop for TestDb {
    /// Drops the PostgreSQL database even when the test panicked: on a thread of its own, since
    /// drop cannot await.
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&postgres_admin_url()).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            tracing::warn!("could not drop a test database; drop smsdesk_test_* databases by hand");
        }
    }
}

/// A fake Twilio over real HTTP (wiremock) with a ledger: every `Messages.json` create it
/// accepted, with the time it arrived, for tests that check what went out and when. Scripted
/// answers per recipient reproduce Twilio's errors, 5xx and requests that are acted on but
/// answered too late (the client times out: an in-doubt send).
pub mod fake_twilio {
    use std::collections::{HashMap, VecDeque};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serde_json::json;
    use wiremock::matchers::{method, path_regex};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    static NEXT_SID: AtomicU64 = AtomicU64::new(1);

    /// One accepted create.
    #[derive(Debug, Clone)]
    pub struct Created {
        pub sid: String,
        pub to: String,
        pub from: Option<String>,
        pub messaging_service_sid: Option<String>,
        pub body: String,
        pub form: Vec<(String, String)>,
        /// The `Authorization` header as sent.
        pub authorization: Option<String>,
        /// When it arrived (µs since the epoch, UTC).
        pub at: i64,
    }

    /// A scripted answer to the next create for a recipient.
    #[derive(Debug, Clone)]
    pub enum Script {
        /// Twilio refuses with this HTTP status and error code.
        Error { status: u16, code: u32 },
        /// HTTP 503 without acting on the request.
        Unavailable,
        /// Acts on the request (it is in the ledger) but answers after this long.
        AcceptLate(Duration),
    }

    /// Twilio in a storm: every request (create, list, fetch) is answered so until it calms.
    #[derive(Debug, Clone, Copy)]
    pub enum Storm {
        /// 429 / 20429 Too Many Requests, with this `Retry-After` (seconds) when given.
        RateLimited { retry_after: Option<u32> },
        /// HTTP 503 without acting on the request.
        Unavailable,
        /// Creates are acted on (they are in the ledger) but answered after this long; lists and
        /// fetches too.
        Slow(Duration),
    }

    #[derive(Default)]
    struct State {
        storm: Option<Storm>,
        /// When every create request arrived (µs), answered or refused.
        arrivals: Vec<i64>,
        /// Prices Twilio reports once set (`set_price`): sid → (price, unit).
        prices: HashMap<String, (String, String)>,
        ledger: Vec<Created>,
        scripts: HashMap<String, VecDeque<Script>>,
        refused: usize,
    }

    /// The fake; its base URL goes where `https://api.twilio.com` would.
    pub struct FakeTwilio {
        pub server: MockServer,
        state: Arc<Mutex<State>>,
        /// Woken at every create request (tests wait on it instead of polling).
        arrived: Arc<tokio::sync::Notify>,
    }

    struct Responder {
        state: Arc<Mutex<State>>,
        arrived: Arc<tokio::sync::Notify>,
        /// Every accepted create is answered after this long.
        delay: Duration,
    }

    fn message_json(c: &Created, status: &str) -> serde_json::Value {
        let date = chrono::DateTime::from_timestamp_micros(c.at)
            .unwrap_or_default()
            .to_rfc2822();
        json!({
            "account_sid": "AC00000000000000000000000000000000",
            "api_version": "2010-04-01",
            "body": c.body,
            "date_created": date,
            "date_sent": date,
            "date_updated": date,
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": c.from,
            "messaging_service_sid": c.messaging_service_sid,
            "num_media": "0",
            "num_segments": "1",
            "price": null,
            "price_unit": "USD",
            "sid": c.sid,
            "status": status,
            "to": c.to,
        })
    }

    impl Respond for Responder {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let create = request.method.as_str() == "POST";
            if create {
                state.arrivals.push(chrono::Utc::now().timestamp_micros());
                self.arrived.notify_waiters();
            }
            match state.storm {
                Some(Storm::RateLimited { retry_after }) => {
                    state.refused += usize::from(create);
                    let answer = ResponseTemplate::new(429).set_body_json(json!({
                        "code": 20429, "message": "Too Many Requests",
                        "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429,
                    }));
                    return match retry_after {
                        Some(s) => answer.insert_header("Retry-After", s.to_string().as_str()),
                        None => answer,
                    };
                }
                Some(Storm::Unavailable) => {
                    state.refused += usize::from(create);
                    return ResponseTemplate::new(503).set_body_string("Service Unavailable");
                }
                Some(Storm::Slow(_)) | None => {}
            }
            let slow = match state.storm {
                Some(Storm::Slow(d)) => Some(d),
                _ => None,
            };
            let late = |answer: ResponseTemplate| match slow {
                Some(d) => answer.set_delay(d),
                None => answer,
            };
            if request.method.as_str() == "GET" && request.url.path().contains("/Messages/SM") {
                // Fetch one message: `.../Messages/{Sid}.json`.
                let sid = request
                    .url
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches(".json");
                let Some(c) = state.ledger.iter().find(|c| c.sid == sid) else {
                    return ResponseTemplate::new(404).set_body_json(json!({
                        "code": 20404, "message": "The requested resource was not found",
                        "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404,
                    }));
                };
                let mut body = message_json(c, "delivered");
                if let Some((price, unit)) = state.prices.get(sid) {
                    body["price"] = json!(price);
                    body["price_unit"] = json!(unit);
                }
                return late(ResponseTemplate::new(200).set_body_json(body));
            }
            if request.method.as_str() == "GET" {
                let query: HashMap<String, String> = request
                    .url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let messages: Vec<_> = state
                    .ledger
                    .iter()
                    .filter(|c| query.get("To").is_none_or(|to| *to == c.to))
                    .map(|c| message_json(c, "sent"))
                    .collect();
                return late(ResponseTemplate::new(200).set_body_json(json!({
                    "messages": messages, "page": 0, "page_size": 50,
                    "next_page_uri": null, "previous_page_uri": null,
                })));
            }
            // Strings only: a form always parses (a bad escape stays as written).
            let form: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&request.body).unwrap_or_default();
            let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let to = get("To").unwrap_or_default();
            let script = state.scripts.get_mut(&to).and_then(VecDeque::pop_front);
            match script {
                Some(Script::Error { status, code }) => {
                    state.refused += 1;
                    return ResponseTemplate::new(status).set_body_json(json!({
                        "code": code, "message": format!("scripted error {code}: the 'To' number {to} was refused"),
                        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
                        "status": status,
                    }));
                }
                Some(Script::Unavailable) => {
                    state.refused += 1;
                    return ResponseTemplate::new(503).set_body_string("Service Unavailable");
                }
                _ => {}
            }
            // Unique across every fake of the process, as Twilio's sids are across accounts.
            let sid = format!("SM{:032x}", NEXT_SID.fetch_add(1, Ordering::Relaxed));
            let created = Created {
                sid,
                to,
                from: get("From"),
                messaging_service_sid: get("MessagingServiceSid"),
                body: get("Body").unwrap_or_default(),
                authorization: request
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                form,
                at: chrono::Utc::now().timestamp_micros(),
            };
            let body = message_json(&created, "queued");
            state.ledger.push(created);
            let response = ResponseTemplate::new(201).set_body_json(body);
            match script {
                Some(Script::AcceptLate(delay)) => response.set_delay(delay),
                _ if slow.is_some() => late(response),
                _ if !self.delay.is_zero() => response.set_delay(self.delay),
                _ => response,
            }
        }
    }

    impl FakeTwilio {
        pub async fn start() -> FakeTwilio {
            FakeTwilio::start_with_delay(Duration::ZERO).await
        }

        /// A fake that answers every create after `delay`, like a Twilio far away.
        pub async fn start_with_delay(delay: Duration) -> FakeTwilio {
            let server = MockServer::start().await;
            let state = Arc::new(Mutex::new(State::default()));
            let arrived = Arc::new(tokio::sync::Notify::new());
            // Create (POST) and list (GET) share the path and the ledger.
            for verb in ["POST", "GET"] {
                Mock::given(method(verb))
                    .and(path_regex(
                        r"^/2010-04-01/Accounts/AC[0-9a-f]{32}/Messages\.json$",
                    ))
                    .respond_with(Responder {
                        state: state.clone(),
                        arrived: arrived.clone(),
                        delay,
                    })
                    .mount(&server)
                    .await;
            }
            Mock::given(method("GET"))
                .and(path_regex(
                    r"^/2010-04-01/Accounts/AC[0-9a-f]{32}/Messages/SM[0-9a-f]{32}\.json$",
                ))
                .respond_with(Responder {
                    state: state.clone(),
                    arrived: arrived.clone(),
                    delay: Duration::ZERO,
                })
                .mount(&server)
                .await;
            FakeTwilio {
                server,
                state,
                arrived,
            }
        }

        /// From now on, a fetch of `sid` reports this price (`-0.00830`) in `unit` (`USD`).
        pub fn set_price(&self, sid: &str, price: &str, unit: &str) {
            self.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .prices
                .insert(sid.to_owned(), (price.to_owned(), unit.to_owned()));
        }

        /// From now on `sid` is gone, as a message deleted at Twilio: a fetch of it is 404.
        pub fn forget(&self, sid: &str) {
            self.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .ledger
                .retain(|c| c.sid != sid);
        }

        /// How many single-message fetches (`GET .../Messages/{Sid}.json`) it has received.
        pub async fn fetches(&self) -> usize {
            self.server
                .received_requests()
                .await
                .unwrap_or_default()
                .iter()
                .filter(|r| r.method.as_str() == "GET" && r.url.path().contains("/Messages/SM"))
                .count()
        }

        pub fn uri(&self) -> String {
            self.server.uri()
        }

        /// The next creates for `to` get these answers, in order.
        pub fn script(&self, to: &str, answers: impl IntoIterator<Item = Script>) {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state
                .scripts
                .entry(to.to_owned())
                .or_default()
                .extend(answers);
        }

        /// Every create it accepted, in arrival order.
        pub fn ledger(&self) -> Vec<Created> {
            self.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .ledger
                .clone()
        }

        /// From now on every request is answered as `storm` says (`None`: calm again).
        pub fn storm(&self, storm: Option<Storm>) {
            self.state.lock().unwrap_or_else(|p| p.into_inner()).storm = storm;
        }

        /// Waits (woken by each create request, at most 30 s) until `n` creates have arrived.
        pub async fn until_arrivals(&self, n: usize) {
            let wait = async {
                loop {
                    let next = self.arrived.notified();
                    tokio::pin!(next);
                    next.as_mut().enable();
                    if self.arrivals().len() >= n {
                        return;
                    }
                    next.await;
                }
            };
            tokio::time::timeout(Duration::from_secs(30), wait)
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{} of {n} requests reached the fake in 30 s",
                        self.arrivals().len()
                    )
                });
        }

        /// Waits (woken by each create request at any of `fakes`, at most `within`) until `done`
        /// holds: for a condition over several fakes (a primary and a fallback).
        pub async fn until_any(
            fakes: &[&FakeTwilio],
            within: Duration,
            what: &str,
            done: impl Fn() -> bool,
        ) {
            let wait = async {
                loop {
                    let mut next: Vec<_> = fakes
                        .iter()
                        .map(|f| Box::pin(f.arrived.notified()))
                        .collect();
                    for n in &mut next {
                        n.as_mut().enable();
                    }
                    if done() {
                        return;
                    }
                    futures::future::select_all(next).await;
                }
            };
            tokio::time::timeout(within, wait)
                .await
                .unwrap_or_else(|_| panic!("not {what} in {within:?}"));
        }

        /// When every create request arrived (µs since the epoch), accepted or refused.
        pub fn arrivals(&self) -> Vec<i64> {
            self.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .arrivals
                .clone()
        }

        /// How many creates it refused (scripted errors and 503s).
        pub fn refused(&self) -> usize {
            self.state.lock().unwrap_or_else(|p| p.into_inner()).refused
        }
    }
}

/// A network path to a server that a test can cut and restore, as when a database server stops
/// and starts again: while cut, the port refuses connections and every open connection is
/// dropped; restored, the same port forwards again.
pub mod outage {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use tokio::net::{TcpSocket, TcpStream};
    use tokio::task::JoinHandle;

    #[derive(Default)]
    struct Tasks {
        accept: Option<JoinHandle<()>>,
        connections: Vec<JoinHandle<()>>,
    }

    /// Forwards `127.0.0.1:port()` to `upstream`.
    pub struct Proxy {
        upstream: SocketAddr,
        address: SocketAddr,
        tasks: Arc<Mutex<Tasks>>,
    }

    impl Proxy {
        /// A proxy on a free port, forwarding.
        pub async fn start(upstream: SocketAddr) -> Proxy {
            let mut proxy = Proxy {
                upstream,
                address: "127.0.0.1:0".parse().expect("address"),
                tasks: Arc::default(),
            };
            proxy.address = proxy.listen();
            proxy
        }

        pub fn port(&self) -> u16 {
            self.address.port()
        }

        /// The server goes away: new connections are refused, open ones are cut.
        pub fn cut(&self) {
            let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(accept) = tasks.accept.take() {
                accept.abort();
            }
            for connection in tasks.connections.drain(..) {
                connection.abort();
            }
        }

        /// The server is back on the same port.
        pub fn restore(&self) {
            self.listen();
        }

        /// Listens on `self.address` (a free port the first time) and forwards what comes.
        fn listen(&self) -> SocketAddr {
            let socket = TcpSocket::new_v4().expect("socket");
            socket.set_reuseaddr(true).expect("SO_REUSEADDR");
            socket.bind(self.address).expect("the proxy's port");
            let listener = socket.listen(64).expect("listen");
            let address = listener.local_addr().expect("address");
            let upstream = self.upstream;
            let tasks = self.tasks.clone();
            let accept = tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let connection = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    let mut tasks = tasks.lock().unwrap_or_else(|p| p.into_inner());
                    tasks.connections.retain(|c| !c.is_finished());
                    tasks.connections.push(connection);
                }
            });
            self.tasks.lock().unwrap_or_else(|p| p.into_inner()).accept = Some(accept);
            address
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.cut();
        }
    }
}

/// The real `smsdesk` binary as a separate process, for tests and benches that run several
/// instances or kill one (the caller passes the binary's path: `env!("CARGO_BIN_EXE_smsdesk")`).
pub mod instance {
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};

    use base64::Engine;

    /// The account the fake Twilio is addressed as.
    pub const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
    /// The data key every instance of one database shares (`[3; 32]`).
    pub const DATA_KEY: [u8; 32] = [3u8; 32];

    /// Waits until the instance on `port` answers `/readyz` with 200, polling every 10 ms for
    /// at most a minute (a separate process: nothing in it to wake on). When it did (µs).
    pub async fn until_ready(port: u16) -> i64 {
        let http = reqwest::Client::new();
        let deadline = crate::db::now_micros() + 60_000_000;
        loop {
            let ready = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let now = crate::db::now_micros();
            if ready {
                return now;
            }
            assert!(
                now < deadline,
                "the instance on port {port} was not ready in a minute"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// A port nobody listens on now.
    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("address")
            .port()
    }

    /// Starts `binary` on `database_url`, sending to the fake Twilio at `twilio`, listening on
    /// `port`, with `timeout_seconds` for each request to Twilio. Its output is discarded unless
    /// `SMSDESK_INSTANCE_LOGS` is set.
    pub fn start(
        binary: &str,
        database_url: &str,
        twilio: &str,
        port: u16,
        timeout_seconds: u32,
    ) -> Child {
        start_with(binary, database_url, twilio, port, timeout_seconds, &[])
    }

    /// [`start`] with more settings in its environment (a fallback provider, say).
    pub fn start_with(
        binary: &str,
        database_url: &str,
        twilio: &str,
        port: u16,
        timeout_seconds: u32,
        more: &[(&str, String)],
    ) -> Child {
        let b64 = base64::engine::general_purpose::STANDARD;
        Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LEPTOS_OUTPUT_NAME", "smsdesk")
            .env("DATABASE_URL", database_url)
            .env("SMSDESK_LISTEN", format!("127.0.0.1:{port}"))
            .env("SMSDESK_DATA_KEY", b64.encode(DATA_KEY))
            .env("SMSDESK_SESSION_SECRET", b64.encode([4u8; 64]))
            .env("SMSDESK_ADMIN_PASSWORD", "instance test admin password")
            .env("TWILIO_ACCOUNT_SID", ACCOUNT)
            .env("TWILIO_AUTH_TOKEN", "instance-test-token")
            .env("TWILIO_PHONE_NUMBER", "+15005550006")
            .env("TWILIO_API_BASE_URL", twilio)
            .env("SMSDESK_SEND_TIMEOUT_SECONDS", timeout_seconds.to_string())
            .env("RUST_LOG", "warn")
            .envs(more.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            // Its log on the caller's stderr when SMSDESK_INSTANCE_LOGS is set (to debug).
            .stderr(if std::env::var_os("SMSDESK_INSTANCE_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("smsdesk starts")
    }
}
