-- No plaintext personal data in the command side's own tables either
-- (docs/adr/0013-crypto-shredding.md): what they keep is sealed with the data subject's key,
-- like the events, and unreadable once the subject is erased.

-- A pending checkout's guest email and shipping address: one sealed value, `personal`.
-- Rows of requests in flight at the upgrade keep their plain columns until placed (minutes).
ALTER TABLE command.pending_checkouts DROP CONSTRAINT pending_checkouts_buyer_check;
ALTER TABLE command.pending_checkouts ALTER COLUMN shipping_address DROP NOT NULL;
ALTER TABLE command.pending_checkouts ADD COLUMN personal jsonb;
ALTER TABLE command.pending_checkouts ADD CONSTRAINT pending_checkouts_personal_check
    CHECK (personal IS NOT NULL OR shipping_address IS NOT NULL);

-- A notification's recipient, subject and body: one sealed value, `message`. The plain
-- columns of notifications recorded before go (the row itself stays: it says the email of
-- that event was sent).
ALTER TABLE command.notifications
    DROP COLUMN recipient,
    DROP COLUMN subject,
    DROP COLUMN body,
    ADD COLUMN message jsonb;
