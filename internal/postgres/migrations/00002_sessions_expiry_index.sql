-- Expired sessions are pruned by expiry time.

-- +goose Up
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- +goose Down
DROP INDEX sessions_expires_at_idx;
