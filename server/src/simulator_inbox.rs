//! `GET /simulator/inbox?to=+1…`: while smsdesk simulates (no Twilio credentials), what one
//! simulated phone received, newest first, codes included: how a developer or a test reads a
//! code without a phone. With an API key (Basic or Bearer) or an admin's session. When smsdesk
//! sends for real there is no such phone: 404, whoever asks.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backend::simulator::Simulator;
use backend::worker::Provider;
use chrono::SecondsFormat;
use domain::access::Permission;
use domain::phone::PhoneNumber;
use serde::Deserialize;
use serde_json::json;
use tower_sessions::Session;

use crate::api;
use crate::export::user_with;
use crate::sending::Sending;

/// Messages one answer lists at most.
pub const INBOX_LIMIT: usize = 50;

#[derive(Debug, Deserialize)]
pub struct InboxParams {
    to: Option<String>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

/// The simulator of a simulating smsdesk.
pub fn simulator(sending: &Sending) -> Option<&Simulator> {
    match &sending.provider {
        Provider::Simulator(sim) => Some(sim.as_ref()),
        _ => None,
    }
}

/// `GET /simulator/inbox`.
pub async fn inbox(
    State(sending): State<Sending>,
    session: Session,
    headers: HeaderMap,
    Query(params): Query<InboxParams>,
) -> Response {
    let Some(sim) = simulator(&sending) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_simulating",
            "smsdesk sends through Twilio: there is no simulated phone to read",
        );
    };
    if headers.contains_key(header::AUTHORIZATION) {
        if let Err(e) = api::authenticate(&sending, &headers).await {
            return e.into_response();
        }
    } else if let Err(refused) = user_with(
        &sending.db,
        &session,
        Permission::ManageSettings,
        "read the simulator's inbox",
    )
    .await
    {
        return refused;
    }
    let Some(to) = params.to.filter(|t| !t.trim().is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing_to",
            "give the phone to read: /simulator/inbox?to=%2B14155552671",
        );
    };
    let region = match sending.settings().await {
        Ok(s) => s.default_region,
        Err(e) => {
            tracing::error!(error = %e, "simulator inbox: settings unreadable");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "smsdesk cannot read its settings right now: try again shortly",
            );
        }
    };
    let number = match PhoneNumber::parse(to.trim(), Some(&region)) {
        Ok(n) => n,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_number",
                &format!("{:?} is not a phone number: {e}", to.trim()),
            );
        }
    };
    let messages: Vec<_> = sim
        .inbox(number.e164(), INBOX_LIMIT)
        .into_iter()
        .map(|m| {
            json!({
                "sid": m.sid,
                "to": m.to,
                "from": m.from.or(m.messaging_service_sid),
                "body": m.body,
                "status": m.status.as_str(),
                "date_created": m.date_created.map(|d| d.to_rfc3339_opts(SecondsFormat::Micros, true)),
            })
        })
        .collect();
    Json(json!({ "to": number.e164(), "messages": messages })).into_response()
}
