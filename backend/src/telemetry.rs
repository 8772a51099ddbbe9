//! What smsdesk counts for Prometheus, named in one place. The `metrics` facade records into
//! whatever recorder the binary installed (`server` serves them at `/metrics`); without one,
//! these calls cost nothing. Labels are kinds, statuses and codes: never a phone number, a body,
//! an id or a key.

use metrics::{counter, describe_counter, describe_histogram, histogram};

use crate::intake::RefusalCode;
use crate::outbox::Source;

pub const ACCEPTED: &str = "smsdesk_messages_accepted_total";
pub const REFUSED: &str = "smsdesk_messages_refused_total";
pub const DISPATCHES: &str = "smsdesk_dispatches_total";
pub const DISPATCH_LATENCY: &str = "smsdesk_dispatch_latency_seconds";
pub const LIMIT_WAIT: &str = "smsdesk_limit_wait_seconds";
pub const DEFERRED: &str = "smsdesk_messages_deferred_total";
pub const CALLBACKS: &str = "smsdesk_callbacks_total";
pub const PROVIDER_PAUSES: &str = "smsdesk_provider_pauses_total";
pub const QUEUE_DEPTH: &str = "smsdesk_queue_depth";
pub const OLDEST_WAITING: &str = "smsdesk_oldest_waiting_seconds";

/// Describes every metric (once, when the recorder is installed), so `/metrics` explains them.
pub fn describe() {
    describe_counter!(
        ACCEPTED,
        "Messages intake wrote to the outbox, by source (api_key, console)."
    );
    describe_counter!(
        REFUSED,
        "Messages intake refused, by source and reason (invalid_number, opted_out, ...)."
    );
    describe_counter!(
        DISPATCHES,
        "Requests to the provider by outcome (sent, found_sent, retry, failed, unknown, not_started) and Twilio error code."
    );
    describe_histogram!(
        DISPATCH_LATENCY,
        metrics::Unit::Seconds,
        "Time one send took at the provider (the request and its answer)."
    );
    describe_histogram!(
        LIMIT_WAIT,
        metrics::Unit::Seconds,
        "Time a message waited past its due time before it was sent (rate limits, pace, backlog)."
    );
    describe_counter!(
        DEFERRED,
        "Due messages a worker step held back for a rate limit (counted once per step)."
    );
    describe_counter!(
        PROVIDER_PAUSES,
        "Times this instance paused sending because Twilio was in a storm, by reason (rate_limited, no_answer)."
    );
    describe_counter!(
        CALLBACKS,
        "Status callbacks received, by status and what smsdesk did (recorded, duplicate, unknown_sid)."
    );
}

pub fn accepted(source: &Source, n: usize) {
    counter!(ACCEPTED, "source" => source.kind()).increment(n as u64);
}

pub fn refused(source: &Source, reason: RefusalCode) {
    counter!(REFUSED, "source" => source.kind(), "reason" => reason.as_str()).increment(1);
}

/// One request's outcome at the provider; `code` is Twilio's error code, if any.
pub fn dispatched(outcome: &'static str, code: Option<u32>) {
    let code = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
    counter!(DISPATCHES, "outcome" => outcome, "code" => code).increment(1);
}

pub fn dispatch_latency(seconds: f64) {
    histogram!(DISPATCH_LATENCY).record(seconds);
}

pub fn limit_wait(seconds: f64) {
    histogram!(LIMIT_WAIT).record(seconds.max(0.0));
}

pub fn deferred(n: usize) {
    if n > 0 {
        counter!(DEFERRED).increment(n as u64);
    }
}

/// The breaker paused sending (`worker::breaker`).
pub fn provider_paused(rate_limited: bool) {
    let reason = if rate_limited {
        "rate_limited"
    } else {
        "no_answer"
    };
    counter!(PROVIDER_PAUSES, "reason" => reason).increment(1);
}

pub fn callback(status: &'static str, result: &'static str) {
    counter!(CALLBACKS, "status" => status, "result" => result).increment(1);
}

/// The queue as read from the database at scrape time, in Prometheus's text format (written
/// per scrape rather than kept in the process's recorder: every instance reports the shared
/// queue as it is now).
pub fn queue_text(depth_by_priority: &[(&'static str, i64)], oldest_seconds: f64) -> String {
    let mut out = format!(
        "# HELP {QUEUE_DEPTH} Messages waiting in the outbox, by priority.\n# TYPE {QUEUE_DEPTH} gauge\n"
    );
    for (priority, n) in depth_by_priority {
        out.push_str(&format!("{QUEUE_DEPTH}{{priority=\"{priority}\"}} {n}\n"));
    }
    out.push_str(&format!(
        "# HELP {OLDEST_WAITING} Age of the oldest message waiting in the outbox, in seconds.\n# TYPE {OLDEST_WAITING} gauge\n{OLDEST_WAITING} {}\n",
        oldest_seconds.max(0.0)
    ));
    out
}
