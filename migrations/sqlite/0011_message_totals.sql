-- Totals of the outbox per UTC day (of created_at) and per everything the log's counts and the
-- spend charts group or filter by, so they answer from a few thousand rows instead of reading
-- every message. "None" is stored as '' (template, category) and 0 (error code).
--
-- Every change to messages appends its difference to message_total_changes (triggers below:
-- nothing that writes messages can forget it); a job folds the changes into message_totals every
-- few seconds. A reader sums both in one statement, so it is exact at any moment.
-- What a message was estimated to cost at intake (segments × the price table's price for its
-- country), µ$; NULL when no price was known. price_micros is what Twilio reported.
ALTER TABLE messages ADD COLUMN estimated_micros BIGINT;

CREATE TABLE message_totals (
    day          BIGINT NOT NULL,
    status       TEXT   NOT NULL,
    template_key TEXT   NOT NULL,
    category     TEXT   NOT NULL,
    source       TEXT   NOT NULL,
    error_code   BIGINT NOT NULL,
    region       TEXT   NOT NULL,
    messages     BIGINT NOT NULL,
    segments     BIGINT NOT NULL,
    price_micros BIGINT NOT NULL,
    estimated_micros BIGINT NOT NULL,
    PRIMARY KEY (day, status, template_key, category, source, error_code, region)
);

CREATE TABLE message_total_changes (
    id           INTEGER PRIMARY KEY,
    day          BIGINT NOT NULL,
    status       TEXT   NOT NULL,
    template_key TEXT   NOT NULL,
    category     TEXT   NOT NULL,
    source       TEXT   NOT NULL,
    error_code   BIGINT NOT NULL,
    region       TEXT   NOT NULL,
    messages     BIGINT NOT NULL,
    segments     BIGINT NOT NULL,
    price_micros BIGINT NOT NULL,
    estimated_micros BIGINT NOT NULL
);

INSERT INTO message_totals
SELECT (created_at / 86400000000) * 86400000000, status, COALESCE(template_key, ''),
       COALESCE(category, ''), source, COALESCE(error_code, 0), to_region,
       COUNT(*), SUM(segments), SUM(COALESCE(price_micros, 0)), SUM(COALESCE(estimated_micros, 0))
  FROM messages
 GROUP BY 1, 2, 3, 4, 5, 6, 7;

CREATE TRIGGER messages_totals_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO message_total_changes
        (day, status, template_key, category, source, error_code, region, messages, segments, price_micros, estimated_micros)
    VALUES ((NEW.created_at / 86400000000) * 86400000000, NEW.status, COALESCE(NEW.template_key, ''),
            COALESCE(NEW.category, ''), NEW.source, COALESCE(NEW.error_code, 0), NEW.to_region,
            1, NEW.segments, COALESCE(NEW.price_micros, 0), COALESCE(NEW.estimated_micros, 0));
END;

CREATE TRIGGER messages_totals_update
AFTER UPDATE OF created_at, status, template_key, category, source, error_code, to_region, segments, price_micros, estimated_micros
ON messages
WHEN OLD.created_at IS NOT NEW.created_at OR OLD.status IS NOT NEW.status
  OR OLD.template_key IS NOT NEW.template_key OR OLD.category IS NOT NEW.category
  OR OLD.source IS NOT NEW.source OR OLD.error_code IS NOT NEW.error_code
  OR OLD.to_region IS NOT NEW.to_region OR OLD.segments IS NOT NEW.segments
  OR OLD.price_micros IS NOT NEW.price_micros OR OLD.estimated_micros IS NOT NEW.estimated_micros
BEGIN
    INSERT INTO message_total_changes
        (day, status, template_key, category, source, error_code, region, messages, segments, price_micros, estimated_micros)
    VALUES ((OLD.created_at / 86400000000) * 86400000000, OLD.status, COALESCE(OLD.template_key, ''),
            COALESCE(OLD.category, ''), OLD.source, COALESCE(OLD.error_code, 0), OLD.to_region,
            -1, -OLD.segments, -COALESCE(OLD.price_micros, 0), -COALESCE(OLD.estimated_micros, 0)),
           ((NEW.created_at / 86400000000) * 86400000000, NEW.status, COALESCE(NEW.template_key, ''),
            COALESCE(NEW.category, ''), NEW.source, COALESCE(NEW.error_code, 0), NEW.to_region,
            1, NEW.segments, COALESCE(NEW.price_micros, 0), COALESCE(NEW.estimated_micros, 0));
END;

CREATE TRIGGER messages_totals_delete AFTER DELETE ON messages
BEGIN
    INSERT INTO message_total_changes
        (day, status, template_key, category, source, error_code, region, messages, segments, price_micros, estimated_micros)
    VALUES ((OLD.created_at / 86400000000) * 86400000000, OLD.status, COALESCE(OLD.template_key, ''),
            COALESCE(OLD.category, ''), OLD.source, COALESCE(OLD.error_code, 0), OLD.to_region,
            -1, -OLD.segments, -COALESCE(OLD.price_micros, 0), -COALESCE(OLD.estimated_micros, 0));
END;
