-- Expired sessions are pruned by expiry time; sessions revoked recently are
-- re-asserted in the state store at start (it may have lost them).

-- +goose Up
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- +goose Down
DROP INDEX sessions_revoked_at_idx;
DROP INDEX sessions_expires_at_idx;
