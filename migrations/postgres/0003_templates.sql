-- SMS templates. `definition_json` is a domain::template::Template (body, variables, category,
-- priority, smart encoding), validated by that type before it is stored and when it is read.
-- `key` and `category` are repeated as columns to list and filter without parsing.
CREATE TABLE templates (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key             TEXT    NOT NULL UNIQUE,
    category        TEXT    NOT NULL,
    definition_json TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    updated_by      TEXT    NOT NULL
);
