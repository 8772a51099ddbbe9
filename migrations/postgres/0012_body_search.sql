-- Text search in the log: a trigram index over the bodies (pg_trgm, a trusted extension that
-- ships with PostgreSQL), so ILIKE '%text%' is found through the index instead of reading every
-- message. Two-factor bodies hold codes: they are never indexed (and never found by their text).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX messages_body_text ON messages USING gin (body gin_trgm_ops)
    WHERE category IS DISTINCT FROM 'two_factor';
