-- Which provider the last attempt of a message went to ('primary' or 'fallback'): an attempt in
-- doubt is looked up there. NULL while an attempt is under way (a crash then asks every
-- provider) or before the first.
ALTER TABLE messages ADD COLUMN attempt_provider TEXT;
-- Which provider an event came from (sent, found, retry), for the delivery log.
ALTER TABLE message_events ADD COLUMN provider TEXT;
