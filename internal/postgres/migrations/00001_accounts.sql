-- Accounts, sessions, refresh tokens, signing keys and generated secrets.
-- Every object is created unqualified, in the first schema of search_path.

-- +goose Up
CREATE TABLE users (
    id             text        NOT NULL PRIMARY KEY,
    email          text        NOT NULL CONSTRAINT users_email_key UNIQUE,
    email_verified boolean     NOT NULL DEFAULT false,
    password_hash  text        NOT NULL,
    phone          text,
    phone_verified boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE sessions (
    id         text        NOT NULL PRIMARY KEY,
    user_id    text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amr        text[]      NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE refresh_tokens (
    hash       bytea       NOT NULL PRIMARY KEY, -- sha256 of the token
    session_id text        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid        text        NOT NULL PRIMARY KEY,
    public_key bytea       NOT NULL,
    sealed     bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    not_before timestamptz NOT NULL,
    retire_at  timestamptz
);

CREATE TABLE secrets (
    name  text  NOT NULL PRIMARY KEY,
    value bytea NOT NULL
);

-- +goose Down
DROP TABLE secrets;
DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
