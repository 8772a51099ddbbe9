-- Fewer B-trees written per message sent: the sid map keyed by the sid alone (no rowid table
-- beside its index), and a message's events found through the unique (message_id, dedupe)
-- index, so the second index on message_id goes.
CREATE TABLE provider_sids_by_sid (
    sid        TEXT   PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES messages (id)
) WITHOUT ROWID;
INSERT INTO provider_sids_by_sid (sid, message_id) SELECT sid, message_id FROM provider_sids;
DROP TABLE provider_sids;
ALTER TABLE provider_sids_by_sid RENAME TO provider_sids;
DROP INDEX message_events_message;
