-- The console's second factor: a user's mobile number (encrypted, confirmed by a code), their
-- recovery codes (keyed hashes, each used once), and the roles that must use it.
CREATE TABLE user_phones (
    user_id      BIGINT NOT NULL PRIMARY KEY REFERENCES users (id),
    phone_enc    TEXT   NOT NULL,
    masked       TEXT   NOT NULL,
    confirmed_at BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    code_hash  TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX recovery_codes_by_user ON recovery_codes (user_id);

CREATE TABLE second_factor_roles (
    role       TEXT   NOT NULL PRIMARY KEY,
    set_at     BIGINT NOT NULL
);
