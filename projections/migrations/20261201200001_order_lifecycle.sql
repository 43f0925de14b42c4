-- The order's whole life (docs/adr/0011-order-lifecycle.md): per-line fulfilment and
-- refund quantities, shipments, refunds and returns on the order view, guest orders, and
-- refunds as negative revenue per day and SKU. The new columns start at their defaults; the
-- projections' new versions (orders 2, sales 2) rebuild them from the log on start.

ALTER TABLE read.orders ALTER COLUMN customer_id DROP NOT NULL;
ALTER TABLE read.orders
    ADD COLUMN guest                 boolean     NOT NULL DEFAULT false,
    ADD COLUMN refund_pending_amount bigint      NOT NULL DEFAULT 0,
    ADD COLUMN delivered_at          timestamptz,
    ADD COLUMN shipments             jsonb       NOT NULL DEFAULT '[]',
    ADD COLUMN refunds               jsonb       NOT NULL DEFAULT '[]';

ALTER TABLE read.order_lines
    ADD COLUMN delivered_quantity integer NOT NULL DEFAULT 0,
    ADD COLUMN cancelled_quantity integer NOT NULL DEFAULT 0,
    ADD COLUMN returned_quantity  integer NOT NULL DEFAULT 0,
    ADD COLUMN refunded_quantity  integer NOT NULL DEFAULT 0;

-- Returns, for the order view and the back office's list by status.
CREATE TABLE read.order_returns (
    return_id     uuid PRIMARY KEY,
    order_id      uuid NOT NULL,
    status        text NOT NULL,
    reason        text NOT NULL,
    lines         jsonb NOT NULL,
    warehouse     text,
    currency      text NOT NULL,
    refund_id     uuid,
    refund_amount bigint,
    requested_at  timestamptz NOT NULL,
    received_at   timestamptz,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX order_returns_order ON read.order_returns (order_id);
CREATE INDEX order_returns_status ON read.order_returns (status, requested_at DESC, return_id DESC);
CREATE INDEX order_returns_requested ON read.order_returns (requested_at DESC, return_id DESC);

ALTER TABLE read.sales_by_sku
    ADD COLUMN refunded_units  bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunded_amount bigint NOT NULL DEFAULT 0;
