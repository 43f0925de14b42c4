-- Read models live in a schema of their own. Projections write with unqualified table names
-- under `SET LOCAL search_path = read, public`, so a rebuild can build the same tables in a
-- shadow schema and swap (docs/adr/0008-projections-and-search.md).
CREATE SCHEMA IF NOT EXISTS read;

-- One row per projection: its checkpoint, lag and health.
CREATE TABLE read.projection_status (
    name            text PRIMARY KEY,
    version         integer NOT NULL,
    tx_id           xid8 NOT NULL DEFAULT '0'::xid8,
    global_position bigint NOT NULL DEFAULT 0,
    last_event_id   uuid,
    lag_events      bigint NOT NULL DEFAULT 0,
    lag_seconds     double precision NOT NULL DEFAULT 0,
    state           text NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'rebuilding', 'failed')),
    error           text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The last applied sequence of every aggregate a projection follows: an event at or below it
-- is a redelivery (skipped), one more than one above it is a gap (retried, never skipped).
CREATE TABLE read.projection_sequences (
    projection     text NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    sequence       bigint NOT NULL,
    PRIMARY KEY (projection, aggregate_type, aggregate_id)
);

-- catalog
CREATE TABLE read.products (
    sku            text PRIMARY KEY,
    name           text NOT NULL,
    description    text NOT NULL,
    brand          text NOT NULL,
    category       text[] NOT NULL,
    attributes     jsonb NOT NULL DEFAULT '{}',
    images         jsonb NOT NULL DEFAULT '[]',
    price_amount   bigint NOT NULL,
    currency       text NOT NULL,
    status         text NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX products_brand ON read.products (brand, sku);
CREATE INDEX products_category ON read.products USING gin (category);

-- stock
CREATE TABLE read.stock (
    sku             text PRIMARY KEY,
    total_available bigint NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE TABLE read.stock_levels (
    sku       text NOT NULL,
    warehouse text NOT NULL,
    on_hand   bigint NOT NULL,
    reserved  bigint NOT NULL,
    available bigint NOT NULL,
    PRIMARY KEY (sku, warehouse)
);

-- carts
CREATE TABLE read.carts (
    cart_id      uuid PRIMARY KEY,
    customer_id  uuid,
    currency     text NOT NULL,
    status       text NOT NULL,
    total_amount bigint NOT NULL,
    order_id     uuid,
    opened_at    timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE TABLE read.cart_lines (
    cart_id           uuid NOT NULL,
    sku               text NOT NULL,
    name              text NOT NULL,
    quantity          integer NOT NULL,
    unit_price_amount bigint NOT NULL,
    line_total_amount bigint NOT NULL,
    added_at          timestamptz NOT NULL,
    PRIMARY KEY (cart_id, sku)
);

-- orders (order view and each customer's order history)
CREATE TABLE read.orders (
    order_id              uuid PRIMARY KEY,
    customer_id           uuid NOT NULL,
    status                text NOT NULL,
    currency              text NOT NULL,
    total_amount          bigint NOT NULL,
    placed_at             timestamptz NOT NULL,
    payment_id            uuid,
    payment_state         text NOT NULL DEFAULT 'pending',
    payment_decline       text,
    captured_amount       bigint NOT NULL DEFAULT 0,
    refunded_amount       bigint NOT NULL DEFAULT 0,
    shipment_state        text NOT NULL DEFAULT 'not_shipped',
    tracking_numbers      text[] NOT NULL DEFAULT '{}',
    cancellation_reason   jsonb,
    updated_at            timestamptz NOT NULL
);
CREATE INDEX orders_customer ON read.orders (customer_id, placed_at DESC, order_id DESC);
CREATE INDEX orders_placed ON read.orders (placed_at DESC, order_id DESC);
CREATE TABLE read.order_lines (
    order_id          uuid NOT NULL,
    line_no           integer NOT NULL,
    sku               text NOT NULL,
    name              text NOT NULL,
    quantity          integer NOT NULL,
    shipped_quantity  integer NOT NULL DEFAULT 0,
    unit_price_amount bigint NOT NULL,
    line_total_amount bigint NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- customers (personal data; erased on CustomerForgotten)
CREATE TABLE read.customers (
    customer_id   uuid PRIMARY KEY,
    email         text,
    name          text,
    phone         text,
    address       jsonb,
    forgotten     boolean NOT NULL DEFAULT false,
    registered_at timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX customers_email ON read.customers (lower(email)) WHERE email IS NOT NULL;

-- sales analytics
CREATE TABLE read.sales_orders (
    order_id     uuid PRIMARY KEY,
    day          date NOT NULL,
    currency     text NOT NULL,
    total_amount bigint NOT NULL,
    lines        jsonb NOT NULL,
    status       text NOT NULL,
    confirmed    boolean NOT NULL DEFAULT false
);
CREATE INDEX sales_orders_status ON read.sales_orders (status);
CREATE TABLE read.sales_daily (
    day             date NOT NULL,
    currency        text NOT NULL,
    orders          bigint NOT NULL DEFAULT 0,
    units           bigint NOT NULL DEFAULT 0,
    revenue_amount  bigint NOT NULL DEFAULT 0,
    refunded_amount bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, currency)
);
CREATE TABLE read.sales_by_sku (
    day            date NOT NULL,
    sku            text NOT NULL,
    currency       text NOT NULL,
    name           text NOT NULL,
    units          bigint NOT NULL DEFAULT 0,
    revenue_amount bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, sku, currency)
);
