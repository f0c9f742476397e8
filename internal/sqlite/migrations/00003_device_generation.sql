-- Device tokens (login without the account-wide throttle) carry the
-- generation they were issued in; revoking every session of a user (logout
-- all, password change or reset) moves it on, which invalidates them all.

-- +goose Up
ALTER TABLE users ADD COLUMN device_generation INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE users DROP COLUMN device_generation;
