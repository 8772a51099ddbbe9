-- People who sign in to the console. Timestamps are microseconds since the Unix epoch, UTC.
CREATE TABLE users (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email           TEXT    NOT NULL UNIQUE,
    password_hash   TEXT    NOT NULL,
    role            TEXT    NOT NULL CHECK (role IN ('admin', 'dispatcher', 'compliance', 'finance')),
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    failed_logins   BIGINT  NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    -- Bumped when the password changes or the user is disabled: older sessions stop working.
    session_epoch   BIGINT  NOT NULL DEFAULT 0,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
