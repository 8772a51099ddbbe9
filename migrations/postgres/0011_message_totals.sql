-- Totals of the outbox per UTC day (of created_at) and per everything the log's counts and the
-- spend charts group or filter by, so they answer from a few thousand rows instead of reading
-- every message. "None" is stored as '' (template, category) and 0 (error code).
--
-- Every statement that changes messages appends its net difference to message_total_changes
-- (statement triggers over the changed rows: nothing that writes messages can forget it, and
-- concurrent writers only append, so they never wait on a shared total); a job folds the changes
-- into message_totals every few seconds. A reader sums both in one statement (one snapshot), so
-- it is exact at any moment.
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
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
SELECT created_at - created_at % 86400000000, status, COALESCE(template_key, ''),
       COALESCE(category, ''), source, COALESCE(error_code, 0), to_region,
       COUNT(*), SUM(segments), SUM(COALESCE(price_micros, 0)), SUM(COALESCE(estimated_micros, 0))
  FROM messages
 GROUP BY 1, 2, 3, 4, 5, 6, 7;

CREATE FUNCTION messages_totals_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_total_changes
        (day, status, template_key, category, source, error_code, region, messages, segments, price_micros, estimated_micros)
    SELECT created_at - created_at % 86400000000, status, COALESCE(template_key, ''),
           COALESCE(category, ''), source, COALESCE(error_code, 0), to_region,
           COUNT(*), SUM(segments), SUM(COALESCE(price_micros, 0)), SUM(COALESCE(estimated_micros, 0))
      FROM new_rows
     GROUP BY 1, 2, 3, 4, 5, 6, 7;
    RETURN NULL;
END $$;

CREATE FUNCTION messages_totals_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_total_changes
        (day, status, template_key, category, source, error_code, region, messages, segments, price_micros, estimated_micros)
    SELECT day, status, template_key, category, source, error_code, region,
           SUM(messages), SUM(segments), SUM(price_micros), SUM(estimated_micros)
      FROM (SELECT created_at - created_at % 86400000000 AS day, status,
                   COALESCE(template_key, '') AS template_key, COALESCE(category, '') AS category,
                   source, COALESCE(error_code, 0) AS error_code, to_region AS region,
                   -1 AS messages, -segments AS segments, -COALESCE(price_micros, 0) AS price_micros,
                   -COALESCE(estimated_micros, 0) AS estimated_micros
              FROM old_rows
            UNION ALL
            SELECT created_at - created_at % 86400000000, status, COALESCE(template_key, ''),
                   COALESCE(category, ''), source, COALESCE(error_code, 0), to_region,
                   1, segments, COALESCE(price_micros, 0), COALESCE(estimated_micros, 0)
              FROM new_rows) AS changed
     GROUP BY 1, 2, 3, 4, 5, 6, 7
    HAVING SUM(messages) <> 0 OR SUM(segments) <> 0 OR SUM(price_micros) <> 0
        OR SUM(estimated_micros) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION messages_totals_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_total_changes
        (day, status, template_key, category, source, error_code, region, messages, segments, price_micros, estimated_micros)
    SELECT created_at - created_at % 86400000000, status, COALESCE(template_key, ''),
           COALESCE(category, ''), source, COALESCE(error_code, 0), to_region,
           -COUNT(*), -SUM(segments), -SUM(COALESCE(price_micros, 0)), -SUM(COALESCE(estimated_micros, 0))
      FROM old_rows
     GROUP BY 1, 2, 3, 4, 5, 6, 7;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_totals_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messages_totals_inserted();
CREATE TRIGGER messages_totals_update AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messages_totals_updated();
CREATE TRIGGER messages_totals_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION messages_totals_deleted();
