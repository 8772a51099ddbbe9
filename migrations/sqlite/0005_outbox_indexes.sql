-- The worker's queries read only waiting messages (by priority, and the next due time) and
-- expired claims; partial indexes hold just those rows, so a message leaving the queue costs one
-- index entry, and a finished message none.
DROP INDEX messages_due;
DROP INDEX messages_waiting;
CREATE INDEX messages_queue ON messages (priority, id) WHERE state = 'waiting';
CREATE INDEX messages_next_due ON messages (due_at) WHERE state = 'waiting';
CREATE INDEX messages_claimed ON messages (lease_until) WHERE state = 'sending';
