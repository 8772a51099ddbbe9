//! Building and running the application: the database, the router and its layers, the listener.
//! `Application::build` binds its own listener and reports the real address, so tests use port 0.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use backend::audit::Actor;
use backend::db::Db;
use backend::sessions::Store;
use secrecy::SecretString;
use tower_http::limit::RequestBodyLimitLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::settings::Settings;
use crate::{csrf, guard, web};

/// Largest request body accepted (form posts and JSON); larger ones get 413.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// A session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(8 * 60 * 60);

/// A built application, bound to its address, ready to serve.
pub struct Application {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    router: Router,
    db: Db,
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
        let generated_admin = first_admin(&db, &settings).await?;
        backend::templates::seed_defaults(&db)
            .await
            .context("storing the default templates")?;

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
                tower_sessions::cookie::time::Duration::seconds(SESSION_IDLE.as_secs() as i64),
            ))
            .with_signed(settings.cookie_key());

        let health = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready))
            .with_state(Health { db: db.clone() });
        let state = app::state::AppState {
            db: db.clone(),
            simulator: settings.twilio.is_none(),
        };
        let console = web::router(leptos_options, move || {
            leptos::prelude::provide_context(state.clone())
        })
        .layer(axum::middleware::from_fn_with_state(
            db.clone(),
            guard::pages,
        ));
        let router = Router::new()
            .merge(health)
            .merge(console)
            .layer(axum::middleware::from_fn_with_state(
                csrf::Origin(settings.public_url.clone()),
                csrf::protect,
            ))
            .layer(sessions)
            .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));

        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listening on {} (SMSDESK_LISTEN)", settings.listen))?;
        let address = listener.local_addr().context("reading the bound address")?;
        Ok(Application {
            listener,
            address,
            router,
            db,
            generated_admin,
        })
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes the database.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving")?;
        self.db.close().await;
        Ok(())
    }
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
