//! `/metrics`: Prometheus's text format, on smsdesk's own listener. Counters and histograms are
//! recorded where things happen (`backend::telemetry`); the queue's gauges are read from the
//! database at each scrape and written after them, so every instance reports the shared queue as
//! it is. With
//! `SMSDESK_METRICS_TOKEN` set, a scrape must bring it as a bearer token.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backend::db::{Db, now_micros};
use headers::authorization::Bearer;
use headers::{Authorization, HeaderMapExt};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// The process's recorder: installed once (several applications in one test process share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(backend::telemetry::DISPATCH_LATENCY.to_owned()),
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
                ],
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(backend::telemetry::LIMIT_WAIT.to_owned()),
                    &[0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 3_600.0],
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
        }
        backend::telemetry::describe();
        handle
    })
}

/// Drains the histograms' recorded values into their buckets every few seconds, as a scrape
/// does: without it an instance nobody scrapes keeps every value it ever recorded (two a
/// message sent), growing without end.
pub async fn keep_up(mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = std::time::Duration::from_secs(5);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => handle().run_upkeep(),
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
}

/// What `/metrics` needs.
#[derive(Clone)]
pub struct Metrics {
    pub db: Db,
    pub token: Option<SecretString>,
}

pub async fn serve(State(m): State<Metrics>, headers: HeaderMap) -> Response {
    if let Some(token) = &m.token {
        let given = headers.typed_get::<Authorization<Bearer>>();
        let given = given.as_ref().map_or("", |Authorization(b)| b.token());
        if !bool::from(given.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"smsdesk metrics\"")],
                "send SMSDESK_METRICS_TOKEN as Authorization: Bearer <token>\n",
            )
                .into_response();
        }
    }
    let handle = handle();
    handle.run_upkeep();
    let mut text = handle.render();
    match backend::outbox::queue(&m.db).await {
        Ok(queue) => {
            let depth: Vec<(&'static str, i64)> = queue
                .waiting
                .iter()
                .map(|(p, n)| (p.as_str(), *n))
                .collect();
            let oldest = queue
                .oldest_created_at
                .map_or(0.0, |at| (now_micros() - at) as f64 / 1e6);
            text.push_str(&backend::telemetry::queue_text(&depth, oldest));
        }
        // The counters are still worth serving; the queue's gauges are left out.
        Err(e) => tracing::warn!(error = %e, "/metrics: the queue could not be read"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
