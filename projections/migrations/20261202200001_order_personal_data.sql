-- Where an order ships (docs/adr/0013-crypto-shredding.md): the destination country, kept
-- for accounting, and the personal data the merchant ships with (the address, a guest's
-- email), cleared when the customer is forgotten or the guest order's data erased. The
-- orders projection's version 3 rebuilds them from the log on start.
ALTER TABLE read.orders
    ADD COLUMN ship_to_country      text,
    ADD COLUMN shipping_address     jsonb,
    ADD COLUMN contact_email        text,
    ADD COLUMN personal_data_erased boolean NOT NULL DEFAULT false;
