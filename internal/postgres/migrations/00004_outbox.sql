-- The Courier's durable outbox, and the single-use tokens of account emails.
--
-- An outbox row is written in the same transaction as the change that causes
-- it. Instances claim due rows with FOR UPDATE SKIP LOCKED and hold them for
-- a lease (lease_owner, lease_until); a row is marked sent only after the
-- provider accepted it, and its data (links, codes) is then cleared. attempts
-- counts attempts started, so a message whose attempt kills its instance is
-- still given up after the limit.

-- +goose Up
CREATE TABLE outbox (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text        NOT NULL CONSTRAINT outbox_idempotency_key_key UNIQUE,
    channel         text        NOT NULL,
    recipient       text        NOT NULL,
    template        text        NOT NULL,
    data            jsonb       NOT NULL DEFAULT '{}',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_owner     text,
    lease_until     timestamptz,
    sent_at         timestamptz,
    failed_at       timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL
);

-- The claim's scan: due rows still to deliver.
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
-- The pruning of delivered and abandoned rows.
CREATE INDEX outbox_finished_idx ON outbox (coalesce(sent_at, failed_at)) WHERE sent_at IS NOT NULL OR failed_at IS NOT NULL;

-- Single-use tokens sent by email (verify_email, reset_password): only their
-- sha256 is stored. used_at is set by the one use that succeeds.
CREATE TABLE account_tokens (
    hash       bytea       NOT NULL PRIMARY KEY,
    purpose    text        NOT NULL,
    user_id    text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE INDEX account_tokens_user_id_idx ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_at_idx ON account_tokens (expires_at);

-- +goose Down
DROP TABLE account_tokens;
DROP TABLE outbox;
