-- Recommendations (projection `recommendations`, see projections/src/read_models/recommendations.rs):
-- "bought together" counts and units sold per SKU from confirmed orders. A new projection:
-- its worker starts with an empty checkpoint and fills these tables from the whole log.

-- The lines of an order placed but not yet confirmed (deleted on confirmation or cancellation).
CREATE TABLE read.recommendation_pending_orders (
    order_id uuid PRIMARY KEY,
    -- [{"sku": "...", "quantity": n}], one entry per SKU
    lines    jsonb NOT NULL
);

-- Confirmed orders that held both `sku` and `other_sku` (both directions are stored).
CREATE TABLE read.recommendation_pairs (
    sku       text NOT NULL,
    other_sku text NOT NULL,
    orders    bigint NOT NULL,
    PRIMARY KEY (sku, other_sku)
);

-- Every product's current category and the units of it sold in confirmed orders.
CREATE TABLE read.recommendation_products (
    sku      text PRIMARY KEY,
    category text[] NOT NULL DEFAULT '{}',
    units    bigint NOT NULL DEFAULT 0
);
CREATE INDEX recommendation_products_category
    ON read.recommendation_products (category, units DESC, sku);
