-- Incoming messages (Twilio's incoming-message webhook): one row per MessageSid, so a replayed
-- webhook adds nothing. The sender's number is found by its keyed hash and stored encrypted.
CREATE TABLE inbound_messages (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    sid            TEXT    NOT NULL UNIQUE,
    from_hash      TEXT    NOT NULL,
    from_encrypted TEXT    NOT NULL,
    from_masked    TEXT    NOT NULL,
    to_number      TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    keyword        TEXT    NOT NULL,
    received_at    BIGINT  NOT NULL,
    read_at        BIGINT
);
CREATE INDEX inbound_messages_received ON inbound_messages (received_at);

-- The consent ledger becomes a hash chain: each entry holds the hash of the one before and its
-- own (entries written before this migration are sealed, in order, at start-up).
ALTER TABLE consent_events ADD COLUMN prev_hash TEXT;
ALTER TABLE consent_events ADD COLUMN entry_hash TEXT;
