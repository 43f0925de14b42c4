-- Abuse resistance (issue #12, docs/adr/0014-sign-in-abuse.md).

-- A customer's session generation: every access token carries the generation it was issued
-- at, and both APIs refuse a customer token whose generation is not the current one. A
-- password change moves it on; an erasure deletes the row. Tokens issued before this
-- migration carry none and are refused: customers sign in again once.
ALTER TABLE command.customer_credentials
    ADD COLUMN token_generation bigint NOT NULL DEFAULT 1;

-- Fixed-window counters of sign-in and registration attempts, shared by every command API
-- replica. Buckets are keyed digests (no email address or client address in the clear).
CREATE TABLE command.throttles
(
    bucket       text        PRIMARY KEY,
    window_start timestamptz NOT NULL,
    attempts     integer     NOT NULL
);
CREATE INDEX throttles_window_start_idx ON command.throttles (window_start);
