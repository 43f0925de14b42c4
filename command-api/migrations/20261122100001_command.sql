-- The command side's own bookkeeping (docs/adr/0007). Nothing here is a read model: these
-- tables make writes safe to retry and let the saga survive restarts.
CREATE SCHEMA IF NOT EXISTS command;

-- Idempotency-Key records (Stripe semantics), scoped to the caller.
CREATE TABLE command.idempotency_keys
(
    scope          text        NOT NULL,
    key            text        NOT NULL,
    request_hash   text        NOT NULL,
    -- The correlation id every event appended under this key carries.
    request_id     uuid        NOT NULL,
    locked_until   timestamptz,
    response_status integer,
    response_headers jsonb,
    response_body  bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON command.idempotency_keys (created_at);

-- Login credentials and email uniqueness. The row is claimed before `CustomerRegistered` is
-- appended and released if the append fails; deleted when the customer is forgotten.
CREATE TABLE command.customer_credentials
(
    customer_id   uuid        PRIMARY KEY,
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX customer_credentials_email_idx ON command.customer_credentials (lower(email));

-- Anonymous carts: only the SHA-256 of the secret cart token is kept.
CREATE TABLE command.cart_tokens
(
    cart_id    uuid        PRIMARY KEY,
    token_hash text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Checkout process state, one row per order, with its durable payment deadline.
CREATE TABLE command.checkout_processes
(
    order_id   uuid        PRIMARY KEY,
    state      jsonb       NOT NULL,
    phase      text        NOT NULL,
    deadline   timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkout_processes_deadline_idx ON command.checkout_processes (deadline)
    WHERE deadline IS NOT NULL;

-- The saga's outbox of commands, written in the same transaction as the process state and
-- dispatched in `seq` order per order.
CREATE TABLE command.checkout_commands
(
    command_id     uuid        PRIMARY KEY,
    order_id       uuid        NOT NULL,
    seq            bigint      NOT NULL GENERATED ALWAYS AS IDENTITY,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    command        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    dispatched_at  timestamptz,
    outcome        text
);
CREATE INDEX checkout_commands_pending_idx ON command.checkout_commands (order_id, seq)
    WHERE dispatched_at IS NULL;

-- Notifications: at most one per event.
CREATE TABLE command.notifications
(
    event_id   uuid        PRIMARY KEY,
    order_id   uuid        NOT NULL,
    kind       text        NOT NULL,
    recipient  text        NOT NULL,
    subject    text        NOT NULL,
    body       text        NOT NULL,
    delivery   text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_order_idx ON command.notifications (order_id);
