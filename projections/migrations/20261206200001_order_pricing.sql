-- Orders priced with promotions and tax (OrderPlaced 2.1, ADR 0020). Orders placed before
-- keep the defaults: no discount, no tax, each line's total its list total.
ALTER TABLE read.orders
    ADD COLUMN subtotal_amount    bigint,
    ADD COLUMN discount_amount    bigint  NOT NULL DEFAULT 0,
    ADD COLUMN tax_amount         bigint  NOT NULL DEFAULT 0,
    ADD COLUMN discounts          jsonb   NOT NULL DEFAULT '[]',
    ADD COLUMN tax_rate           text,
    ADD COLUMN prices_include_tax boolean,
    ADD COLUMN shipping           jsonb;
ALTER TABLE read.order_lines
    ADD COLUMN discount_amount bigint NOT NULL DEFAULT 0,
    ADD COLUMN tax_amount      bigint NOT NULL DEFAULT 0,
    ADD COLUMN total_amount    bigint;

-- Promotions and tax rates (the `pricing` projection).
CREATE TABLE read.promotions (
    promotion_id uuid PRIMARY KEY,
    name         text NOT NULL,
    code         text,
    terms        jsonb NOT NULL,
    active       boolean NOT NULL,
    uses         integer NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX promotions_code ON read.promotions (code);
CREATE INDEX promotions_created ON read.promotions (created_at DESC, promotion_id DESC);
CREATE TABLE read.tax_rates (
    key              text PRIMARY KEY,
    country          text NOT NULL,
    postal_prefix    text,
    rate             text NOT NULL,
    rate_thousandths integer NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE TABLE read.tax_settings (
    shop               text PRIMARY KEY,
    prices_include_tax boolean NOT NULL,
    updated_at         timestamptz NOT NULL
);

-- Carts: coupon codes, the captured category and brand of each line, and the pricing a
-- cart was checked out with.
ALTER TABLE read.carts
    ADD COLUMN coupons jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN pricing jsonb;
ALTER TABLE read.cart_lines
    ADD COLUMN category     text[],
    ADD COLUMN brand        text,
    ADD COLUMN weight_grams integer;

-- The shop's shipping methods (the `pricing` projection).
CREATE TABLE read.shipping_methods (
    method_id  text PRIMARY KEY,
    name       text NOT NULL,
    method     jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Sales: the discounts, tax and shipping inside the revenue (the `sales` projection, v3).
ALTER TABLE read.sales_orders
    ADD COLUMN discount_amount bigint NOT NULL DEFAULT 0,
    ADD COLUMN tax_amount      bigint NOT NULL DEFAULT 0,
    ADD COLUMN shipping_amount bigint NOT NULL DEFAULT 0;
ALTER TABLE read.sales_daily
    ADD COLUMN discount_amount bigint NOT NULL DEFAULT 0,
    ADD COLUMN tax_amount      bigint NOT NULL DEFAULT 0,
    ADD COLUMN shipping_amount bigint NOT NULL DEFAULT 0;
