-- The sending engine: settings admins change at run time, API keys, the outbox with its events,
-- the consent ledger, idempotent requests, and the logs the rate limits count.

-- Run-time settings (JSON documents by key: "sending") and values made once per installation
-- ("account_sid", "simulator_token" encrypted with the data key).
CREATE TABLE settings (
    key        TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT   NOT NULL
);

-- API keys for other services: id `SK` + 32 hex, secret stored as SHA-256 (secrets are 256-bit
-- random, so a slow hash adds nothing but latency on every request).
CREATE TABLE api_keys (
    id           TEXT   PRIMARY KEY,
    name         TEXT   NOT NULL,
    secret_hash  TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT   NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX api_keys_secret ON api_keys (secret_hash);

-- The outbox: one row per message, written with its first event in one transaction.
-- state: waiting (due at due_at) | sending (claimed until lease_until) | done.
-- status: Twilio's status name as smsdesk last knew it.
CREATE TABLE messages (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid             TEXT    NOT NULL UNIQUE,
    to_encrypted    TEXT    NOT NULL,
    to_hash         TEXT    NOT NULL,
    to_masked       TEXT    NOT NULL,
    to_region       TEXT    NOT NULL,
    sender          TEXT,
    body            TEXT    NOT NULL,
    template_key    TEXT,
    category        TEXT,
    priority        BIGINT  NOT NULL,
    encoding        TEXT    NOT NULL,
    segments        BIGINT  NOT NULL,
    smart_encoded   BOOLEAN NOT NULL,
    validity_until  BIGINT,
    state           TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    due_at          BIGINT  NOT NULL,
    lease_until     BIGINT,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    in_doubt        BOOLEAN NOT NULL DEFAULT FALSE,
    attempt_started_at BIGINT,
    dispatched_at   BIGINT,
    provider_sid    TEXT,
    error_code      BIGINT,
    error_message   TEXT,
    price_micros    BIGINT,
    source          TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX messages_due ON messages (state, priority, id);
CREATE INDEX messages_waiting ON messages (state, due_at);

-- Every dispatch (a request to Twilio, whatever its outcome): what the global and per-recipient
-- limits count (to_hash is NULL for messages exempt from the recipient's limits). Kept two days.
CREATE TABLE dispatch_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    to_hash    TEXT,
    message_id BIGINT NOT NULL
);
CREATE INDEX dispatch_log_at ON dispatch_log (at);
CREATE INDEX dispatch_log_recipient ON dispatch_log (to_hash, at);

-- One row every claim writes first, so claims take turns (across instances on PostgreSQL).
CREATE TABLE worker_lock (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL
);

-- Every sid Twilio (or the simulator) gave a message: callbacks name old attempts too.
CREATE TABLE provider_sids (
    sid        TEXT   PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES messages (id)
);

-- What happened to a message, append-only. Callback events carry dedupe = the status, so a
-- repeated callback adds nothing.
CREATE TABLE message_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   BIGINT  NOT NULL REFERENCES messages (id),
    at           BIGINT  NOT NULL,
    kind         TEXT    NOT NULL,
    status       TEXT,
    error_code   BIGINT,
    detail       TEXT    NOT NULL,
    provider_sid TEXT,
    dedupe       TEXT,
    UNIQUE (message_id, dedupe)
);
CREATE INDEX message_events_message ON message_events (message_id, id);

-- Consent ledger, append-only: the latest row for a number is its state.
CREATE TABLE consent_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone_hash  TEXT    NOT NULL,
    phone_encrypted TEXT NOT NULL,
    action      TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    evidence    TEXT    NOT NULL,
    at          BIGINT  NOT NULL
);
CREATE INDEX consent_events_phone ON consent_events (phone_hash, id);

-- Idempotency-Key: the first answer, replayed to retries of the same request.
CREATE TABLE idempotency_keys (
    api_key_id      TEXT   NOT NULL,
    key             TEXT   NOT NULL,
    fingerprint     TEXT   NOT NULL,
    response_status BIGINT,
    response_body   TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, key)
);

-- Segments each sender dispatched, by time (its pace: segments per second). A message longer
-- than a second's worth is logged a second's worth per second, as Twilio sends it.
CREATE TABLE sender_log (
    sender TEXT   NOT NULL,
    at     BIGINT NOT NULL,
    units  BIGINT NOT NULL
);
CREATE INDEX sender_log_sender ON sender_log (sender, at);
