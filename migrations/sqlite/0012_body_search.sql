-- Text search in the log: an FTS5 index of trigrams over the bodies, so "text in the body" is
-- found through the index (any case) instead of reading every message. Two-factor bodies hold
-- codes: they are never indexed (and never found by their text). A body removed by the
-- retention job leaves the index with it.
CREATE VIRTUAL TABLE message_bodies USING fts5(
    body, content = 'messages', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO message_bodies (rowid, body)
SELECT id, body FROM messages WHERE category IS NOT 'two_factor';

CREATE TRIGGER messages_bodies_insert AFTER INSERT ON messages
WHEN NEW.category IS NOT 'two_factor'
BEGIN
    INSERT INTO message_bodies (rowid, body) VALUES (NEW.id, NEW.body);
END;

CREATE TRIGGER messages_bodies_update AFTER UPDATE OF body ON messages
WHEN OLD.category IS NOT 'two_factor'
BEGIN
    INSERT INTO message_bodies (message_bodies, rowid, body) VALUES ('delete', OLD.id, OLD.body);
    INSERT INTO message_bodies (rowid, body) VALUES (NEW.id, NEW.body);
END;

CREATE TRIGGER messages_bodies_delete AFTER DELETE ON messages
WHEN OLD.category IS NOT 'two_factor'
BEGIN
    INSERT INTO message_bodies (message_bodies, rowid, body) VALUES ('delete', OLD.id, OLD.body);
END;
