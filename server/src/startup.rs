//! Building and running the application: the database, the router and its layers, the listener.
//! `Application::build` binds its own listener and reports the real address, so tests use port 0.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use backend::audit::Actor;
use backend::db::Db;
use backend::sessions::Store;
use secrecy::SecretString;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::sending::{self, Sending};
use crate::settings::Settings;
use crate::{
    api, client_address, csrf, guard, twilio_api, twilio_usage, twilio_verify, web, webhooks,
};

/// Largest request body accepted (form posts and JSON); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Largest batch request: 1,000 messages of 1,600 characters, JSON-escaped.
pub const MAX_BATCH_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A built application, bound to its address, ready to serve.
pub struct Application {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    router: Router,
    db: Db,
    /// Stops the worker and the simulator's clock.
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// What sending shares (tests drive the simulator through it).
    pub sending: Sending,
    /// The cap on password checks at once (tests saturate it).
    pub password_checks: backend::users::PasswordChecks,
    /// The first admin's e-mail and generated password, to print once.
    pub generated_admin: Option<(String, SecretString)>,
}

/// What the health routes need.
#[derive(Clone)]
struct Health {
    db: Db,
}

impl Application {
    /// Opens and migrates the database, creates the first admin and the default templates when
    /// missing, builds the router and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let leptos_options = web::leptos_options()?;
        let db = Db::connect(&settings.database_url)
            .await
            .context("opening the database (DATABASE_URL)")?;
        db.migrate().await.context("migrating the database")?;
        backend::consent::seal_unchained(&db)
            .await
            .context("sealing consent entries from before the hash chain")?;
        let generated_admin = first_admin(&db, &settings).await?;
        backend::templates::seed_defaults(&db)
            .await
            .context("storing the default templates")?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listening on {} (SMSDESK_LISTEN)", settings.listen))?;
        let address = listener.local_addr().context("reading the bound address")?;
        let sending = Sending::build(&db, &settings, address).await?;

        let store = Store::new(&db)
            .await
            .context("preparing the session store")?;
        tokio::spawn(store.clone().delete_expired_every(Duration::from_secs(600)));
        let sessions = SessionManagerLayer::new(store)
            .with_name("smsdesk_session")
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(settings.https())
            .with_expiry(Expiry::OnInactivity(
                tower_sessions::cookie::time::Duration::seconds(
                    app::auth::SESSION_IDLE.as_secs() as i64
                ),
            ))
            .with_signed(settings.cookie_key());

        let password_checks = backend::users::PasswordChecks::for_this_machine();
        let health = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready))
            .with_state(Health { db: db.clone() });
        let exports = backend::export::Exports::default();
        let export = Router::new()
            .route("/messages/export.csv", get(crate::export::csv))
            .with_state(crate::export::ExportState {
                db: db.clone(),
                key: sending.key.clone(),
                exports: exports.clone(),
            });
        let consent_downloads = Router::new()
            .route("/consent/export.csv", get(crate::consent::export))
            .route("/consent/opt-outs.svg", get(crate::consent::chart))
            .with_state(crate::consent::ConsentState {
                db: db.clone(),
                key: sending.key.clone(),
            });
        let spend_downloads = Router::new()
            .route("/spend/export.csv", get(crate::spend::export))
            .with_state(db.clone());
        // What each simulated phone received (404 when smsdesk sends for real).
        let simulator_inbox = Router::new()
            .route("/simulator/inbox", get(crate::simulator_inbox::inbox))
            .with_state(sending.clone());
        let state = app::state::AppState {
            db: db.clone(),
            key: sending.key.clone(),
            password_checks: password_checks.clone(),
            sign_in_throttle: std::sync::Arc::default(),
            simulator: settings.twilio.is_none(),
            default_sender: match &sending.default_sender {
                backend::twilio::Sender::From(s) | backend::twilio::Sender::MessagingService(s) => {
                    s.clone()
                }
            },
            intake: sending.intake.clone(),
            api_keys: sending.api_keys.clone(),
            exports: exports.clone(),
            verifier: sending.verifier.clone(),
            simulated_phones: match &sending.provider {
                backend::worker::Provider::Simulator(sim) => Some(sim.clone()),
                _ => None,
            },
        };
        let console = web::router(leptos_options, move || {
            leptos::prelude::provide_context(state.clone())
        })
        .layer(axum::middleware::from_fn_with_state(
            db.clone(),
            guard::pages,
        ));
        let console = Router::new()
            .merge(health)
            .merge(export)
            .merge(consent_downloads)
            .merge(spend_downloads)
            .merge(simulator_inbox)
            .merge(console)
            .layer(axum::middleware::from_fn_with_state(
                csrf::Origin(settings.public_url.clone()),
                csrf::protect,
            ))
            .layer(sessions)
            .layer(axum::middleware::from_fn_with_state(
                client_address::AddressFrom {
                    behind_proxy: settings.behind_proxy,
                },
                client_address::resolve,
            ))
            .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
        let console = web::with_security_headers(console);
        // The API and webhooks: no session, no cookie, so no CSRF; their own body limits.
        let machines = Router::new()
            .route(
                "/api/v1/messages/batch",
                post(api::create_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)),
            )
            .route(
                "/api/v1/messages/estimate",
                post(api::estimate).layer(DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)),
            )
            .route(
                "/api/v1/messages",
                post(api::create_message).get(api::list_messages),
            )
            .route("/api/v1/messages/{id}", get(api::get_message))
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(twilio_api::create).get(twilio_api::list),
            )
            .route(
                "/2010-04-01/Accounts/{account}/Messages/{file}",
                get(twilio_api::fetch),
            )
            .route("/v2/Services", post(twilio_verify::create_service))
            .route("/v2/Services/{service}", get(twilio_verify::fetch_service))
            .route(
                "/v2/Services/{service}/Verifications",
                post(twilio_verify::start),
            )
            .route(
                "/v2/Services/{service}/Verifications/{sid}",
                get(twilio_verify::fetch).post(twilio_verify::update),
            )
            .route(
                "/v2/Services/{service}/VerificationCheck",
                post(twilio_verify::check),
            )
            .route(
                "/2010-04-01/Accounts/{account}/Usage/Records.json",
                get(twilio_usage::records),
            )
            .route(
                "/2010-04-01/Accounts/{account}/Usage/Records/{file}",
                get(twilio_usage::subresource),
            )
            .with_state(sending.clone())
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
        // Twilio's webhooks: where each comes from, for the allow list in Settings.
        let webhooks = Router::new()
            .route(sending::STATUS_PATH, post(webhooks::status))
            .route(sending::INBOUND_PATH, post(webhooks::inbound))
            .with_state(sending.clone())
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(axum::middleware::from_fn_with_state(
                client_address::AddressFrom {
                    behind_proxy: settings.behind_proxy,
                },
                client_address::resolve,
            ));
        let machines = machines.merge(webhooks);
        // Counters record from the first request on.
        crate::metrics::handle();
        let scrape = Router::new()
            .route("/metrics", get(crate::metrics::serve))
            .with_state(crate::metrics::Metrics {
                db: db.clone(),
                token: settings.metrics_token.clone(),
            });
        let router = Router::new()
            .merge(machines)
            .merge(api::docs())
            .merge(scrape)
            .merge(console)
            .layer(axum::middleware::map_response(retry_after_on_503))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                settings.request_timeout,
            ))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_request(())
                    .on_response(
                        tower_http::trace::DefaultOnResponse::new()
                            .level(tracing::Level::DEBUG)
                            .latency_unit(tower_http::LatencyUnit::Micros),
                    ),
            )
            // Every request gets an id (the caller's `X-Request-Id`, else a new one), carried by
            // its log lines and given back in the response.
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));

        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut tasks = sending.spawn(&settings, stop_rx.clone());
        tasks.push(tokio::spawn(crate::metrics::keep_up(stop_rx)));
        Ok(Application {
            listener,
            address,
            router,
            db,
            stop,
            tasks,
            sending,
            password_checks,
            generated_admin,
        })
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes the database.
    /// Each request knows its peer's address (`ConnectInfo`), which sign-in throttling needs.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving")?;
        // Intake has stopped; the worker finishes the step in flight (its sends are recorded).
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.db.close().await;
        Ok(())
    }
}

/// A request's span: its method, path and request id (never its query string, which could hold
/// a number).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
    )
}

/// How long a client should wait after a 503 (the database cannot be reached), in seconds.
pub const RETRY_AFTER_SECONDS: &str = "5";

/// Every 503 says when to try again (`Retry-After`), whichever route gave it: the API, the
/// Twilio-compatible endpoints, the webhooks (Twilio retries them), the console.
async fn retry_after_on_503(mut response: axum::response::Response) -> axum::response::Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .entry(axum::http::header::RETRY_AFTER)
            .or_insert(axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS));
    }
    response
}

/// `/readyz`: 200 when the database answers, 503 (with the reason in the log) when it does not.
async fn ready(State(health): State<Health>) -> (StatusCode, &'static str) {
    match health.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::error!(error = %e, "readiness check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
        }
    }
}

/// Creates the first admin when there is no user: with `SMSDESK_ADMIN_PASSWORD`, or a generated
/// password returned to be printed once.
async fn first_admin(
    db: &Db,
    settings: &Settings,
) -> anyhow::Result<Option<(String, SecretString)>> {
    if backend::users::count(db).await.context("counting users")? > 0 {
        return Ok(None);
    }
    let (password, generated) = match &settings.admin_password {
        Some(p) => (p.clone(), false),
        None => (backend::users::generate_password(), true),
    };
    let user = match backend::users::create(
        db,
        &Actor::system(),
        &settings.admin_email,
        password.clone(),
        domain::access::Role::Admin,
    )
    .await
    {
        Ok(user) => user,
        // Another instance created it at the same moment.
        Err(backend::users::UserError::EmailTaken(_)) => return Ok(None),
        Err(e) => return Err(e).context("creating the first admin (SMSDESK_ADMIN_EMAIL)"),
    };
    tracing::info!(email = %user.email, "created the first admin");
    Ok(generated.then_some((user.email, password)))
}
