-- Checkouts between `CheckOutCart` and `PlaceOrder` (docs/adr/0007). `CartCheckedOut` does
-- not carry the shipping address and payment token, so the request records them here before
-- checking the cart out; the saga's poller places the order of any row left behind by a
-- request that died in between. Personal data: the row is deleted once the order is placed.
CREATE TABLE command.pending_checkouts
(
    cart_id          uuid        PRIMARY KEY,
    order_id         uuid        NOT NULL,
    customer_id      uuid        NOT NULL,
    -- The request's write id: the placed order's events carry it as their correlation id.
    request_id       uuid        NOT NULL,
    -- A serialized `PostalAddress`.
    shipping_address jsonb       NOT NULL,
    -- A `PaymentMethodToken` (the type refuses anything that looks like a card number).
    payment_token    text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_checkouts_created_at_idx ON command.pending_checkouts (created_at);
