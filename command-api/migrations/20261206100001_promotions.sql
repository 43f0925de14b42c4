-- The promotions' lookup index (ADR 0021): which promotion a coupon code names, and which
-- promotions apply without a code. Written before the promotion's event is appended (and
-- removed again if the append is refused); the Promotion aggregate stays the source of
-- truth for whether a promotion is active, running and has uses left.
--
-- One code may be reused by later promotions, but never by two whose windows overlap: the
-- exclusion constraint refuses it even when two admins create them at the same moment.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE command.promotions
(
    promotion_id uuid        PRIMARY KEY,
    code         text,
    starts_at    timestamptz,
    ends_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT promotions_code_window_excl EXCLUDE USING gist (
        code WITH =,
        tstzrange(starts_at, ends_at, '[)') WITH &&
    ) WHERE (code IS NOT NULL)
);
CREATE INDEX promotions_automatic_idx ON command.promotions (starts_at, ends_at)
    WHERE code IS NULL;

-- The limited promotions a checkout reserves a use of, so the sweeper gives those uses back
-- when it drops a checkout whose cart was never frozen.
ALTER TABLE command.pending_checkouts ADD COLUMN promotions uuid[] NOT NULL DEFAULT '{}';
