-- Budgets: how much SMS may cost per UTC day or month, overall (category '') or for one
-- category, with warning levels (percents, '50,80,100') and an optional hard stop.
CREATE TABLE budgets (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period        TEXT    NOT NULL CHECK (period IN ('day', 'month')),
    category      TEXT    NOT NULL,
    amount_micros BIGINT  NOT NULL CHECK (amount_micros > 0),
    warn_percents TEXT    NOT NULL,
    hard_stop     BOOLEAN NOT NULL,
    updated_at    BIGINT  NOT NULL,
    UNIQUE (period, category)
);

-- What intake reserved per UTC day of acceptance and category ('' none): the sum of the
-- estimates of the messages it accepted, less those canceled before they were sent, µ$.
-- Intake adds to it in the transaction that accepts the messages, after locking the budgets, so
-- a hard stop holds however many requests and instances send at once.
CREATE TABLE budget_spend (
    day      BIGINT NOT NULL,
    category TEXT   NOT NULL,
    micros   BIGINT NOT NULL,
    PRIMARY KEY (day, category)
);

INSERT INTO budget_spend (day, category, micros)
SELECT created_at - created_at % 86400000000, COALESCE(category, ''), SUM(estimated_micros)
  FROM messages
 WHERE estimated_micros IS NOT NULL AND status <> 'canceled'
 GROUP BY 1, 2;

-- A warning level reached in one period of one budget: raised once (the key), shown as a
-- banner while its period lasts, posted to the alert webhook once (notified_at).
CREATE TABLE budget_alerts (
    period        TEXT   NOT NULL,
    category      TEXT   NOT NULL,
    period_start  BIGINT NOT NULL,
    level         BIGINT NOT NULL,
    amount_micros BIGINT NOT NULL,
    spent_micros  BIGINT NOT NULL,
    raised_at     BIGINT NOT NULL,
    notified_at   BIGINT,
    PRIMARY KEY (period, category, period_start, level)
);

-- Twilio often fills a message's price minutes after it left: smsdesk asks for it again
-- (backend::late_prices), at most once an hour per message (price_checked_at), once per minute
-- across instances.
ALTER TABLE messages ADD COLUMN price_checked_at BIGINT;
CREATE INDEX messages_unpriced ON messages (dispatched_at)
    WHERE price_micros IS NULL AND provider_sid IS NOT NULL;
INSERT INTO periodic_jobs (name, due_at) VALUES ('fetch_prices', 0);

-- Finance's phones, texted on every budget alert: encrypted (AES-256-GCM, as every number
-- smsdesk keeps), found by their keyed hash, shown masked.
CREATE TABLE budget_alert_numbers (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number_enc  TEXT   NOT NULL,
    number_hash TEXT   NOT NULL UNIQUE,
    masked      TEXT   NOT NULL,
    added_at    BIGINT NOT NULL
);
