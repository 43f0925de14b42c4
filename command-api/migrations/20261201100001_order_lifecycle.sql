-- The order's whole life (docs/adr/0011-order-lifecycle.md).

-- A guest checks out with an email instead of an account: exactly one of the two is set.
ALTER TABLE command.pending_checkouts ALTER COLUMN customer_id DROP NOT NULL;
ALTER TABLE command.pending_checkouts ADD COLUMN guest_email text;
ALTER TABLE command.pending_checkouts ADD CONSTRAINT pending_checkouts_buyer_check
    CHECK ((customer_id IS NULL) <> (guest_email IS NULL));

-- Returns live in their order's stream; this maps a return id (all the receiving request
-- names) to its order. Written before the return is requested, so a row whose request
-- failed points at an order without that return, which answers `return_not_found`.
CREATE TABLE command.order_returns
(
    return_id  uuid        PRIMARY KEY,
    order_id   uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
