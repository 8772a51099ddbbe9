-- Data protection: a body is removed after the retention period set in Settings (a two-factor
-- code's as soon as it has left); the rest of the record stays, and when it was removed is kept.
ALTER TABLE messages ADD COLUMN redacted_at BIGINT;
ALTER TABLE inbound_messages ADD COLUMN redacted_at BIGINT;

-- Jobs that run once per period across every instance: an instance runs one only after moving
-- its due time on, a conditional update that exactly one instance wins.
CREATE TABLE periodic_jobs (
    name   TEXT   PRIMARY KEY,
    due_at BIGINT NOT NULL
);
INSERT INTO periodic_jobs (name, due_at) VALUES ('redact_bodies', 0);

-- How far the redaction got in each table (every row up to this id is done): each run reads
-- on from there, never the rows already redacted.
CREATE TABLE redaction_cursors (
    source  TEXT   PRIMARY KEY,
    through BIGINT NOT NULL
);
INSERT INTO redaction_cursors (source, through) VALUES ('messages', 0), ('inbound_messages', 0);
