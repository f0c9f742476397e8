-- The Courier's durable outbox, and the single-use tokens of account emails.
--
-- An outbox row is written in the same transaction as the change that causes
-- it. The single writer claims due rows with one UPDATE ... RETURNING and
-- holds them for a lease (lease_owner, lease_until); a row is marked sent
-- only after the provider accepted it, and its data (links, codes) is then
-- cleared. attempts counts attempts started, so a message whose attempt
-- kills its instance is still given up after the limit. data is a JSON object.

-- +goose Up
CREATE TABLE outbox (
    id              INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT    NOT NULL UNIQUE,
    channel         TEXT    NOT NULL,
    recipient       TEXT    NOT NULL,
    template        TEXT    NOT NULL,
    data            TEXT    NOT NULL DEFAULT '{}',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    lease_owner     TEXT,
    lease_until     TEXT,
    sent_at         TEXT,
    failed_at       TEXT,
    last_error      TEXT,
    created_at      TEXT    NOT NULL
) STRICT;

CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_finished_idx ON outbox (coalesce(sent_at, failed_at)) WHERE sent_at IS NOT NULL OR failed_at IS NOT NULL;

-- Single-use tokens sent by email (verify_email, reset_password): only their
-- sha256 is stored. used_at is set by the one use that succeeds.
CREATE TABLE account_tokens (
    hash       BLOB NOT NULL PRIMARY KEY,
    purpose    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT, WITHOUT ROWID;

CREATE INDEX account_tokens_user_id_idx ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_at_idx ON account_tokens (expires_at);

-- +goose Down
DROP TABLE account_tokens;
DROP TABLE outbox;
