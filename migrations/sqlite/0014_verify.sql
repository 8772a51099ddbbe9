-- Two-factor codes (Twilio Verify v2): services, their verifications and each code sent.
-- A service's countries ('' = any the geo permissions allow) and hourly cap of codes per
-- country (NULL = none) guard against SMS pumping. 'console_sign_in' and 'console_enrol' are
-- smsdesk's own services (the console's sign-in codes, and confirming a number being added):
-- one each, however many instances start at once; the Verify API never reaches them.
CREATE TABLE verify_services (
    id               INTEGER PRIMARY KEY,
    sid              TEXT    NOT NULL UNIQUE,
    friendly_name    TEXT    NOT NULL,
    code_length      BIGINT  NOT NULL CHECK (code_length BETWEEN 4 AND 10),
    lifetime_seconds BIGINT  NOT NULL CHECK (lifetime_seconds BETWEEN 120 AND 86400),
    countries        TEXT    NOT NULL DEFAULT '',
    hourly_cap       BIGINT,
    purpose          TEXT    NOT NULL DEFAULT 'api'
        CHECK (purpose IN ('api', 'console_sign_in', 'console_enrol')),
    created_by       TEXT    NOT NULL,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE UNIQUE INDEX verify_services_console ON verify_services (purpose) WHERE purpose <> 'api';

-- A verification: the number encrypted (AES-256-GCM) and found by its keyed hash, the code only
-- as a keyed hash. 'expired' is never stored: a pending one past expires_at reads as expired.
CREATE TABLE verifications (
    id          INTEGER PRIMARY KEY,
    sid         TEXT    NOT NULL UNIQUE,
    service_id  BIGINT  NOT NULL REFERENCES verify_services (id),
    to_enc      TEXT    NOT NULL,
    to_hash     TEXT    NOT NULL,
    masked      TEXT    NOT NULL,
    country     TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    status      TEXT    NOT NULL
        CHECK (status IN ('pending', 'approved', 'canceled', 'max_attempts_reached')),
    code_hash   TEXT    NOT NULL,
    checks      BIGINT  NOT NULL DEFAULT 0,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX verifications_by_number ON verifications (service_id, to_hash, created_at);
CREATE INDEX verifications_by_time ON verifications (created_at);

-- Each code sent (a start, or a new start of a pending verification): the message that carried
-- it, and what the send limits count (per number in 10 minutes, per country in an hour).
CREATE TABLE verification_sends (
    id              INTEGER PRIMARY KEY,
    verification_id BIGINT  NOT NULL REFERENCES verifications (id),
    service_id      BIGINT  NOT NULL,
    to_hash         TEXT    NOT NULL,
    country         TEXT    NOT NULL,
    attempt_sid     TEXT    NOT NULL UNIQUE,
    message_id      BIGINT  NOT NULL,
    sent_at         BIGINT  NOT NULL
);
CREATE INDEX verification_sends_by_verification ON verification_sends (verification_id);
CREATE INDEX verification_sends_by_number ON verification_sends (service_id, to_hash, sent_at);
CREATE INDEX verification_sends_by_country ON verification_sends (service_id, country, sent_at);
