-- Crypto-shredding (docs/adr/0013-crypto-shredding.md): one data key per data subject
-- (`customer:<id>`, `order:<id>` for a guest order), wrapped by the master key named by
-- `master_key_id`. Erasure sets both to NULL and keeps the row as a tombstone, so no key is
-- made again for an erased subject.
CREATE TABLE data_keys (
    subject       text        PRIMARY KEY,
    master_key_id text,
    wrapped       bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    erased_at     timestamptz,
    CHECK ((wrapped IS NULL) = (master_key_id IS NULL)),
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL))
);
-- Rotation finds the keys still wrapped by an old master key.
CREATE INDEX data_keys_master_key_idx ON data_keys (master_key_id) WHERE wrapped IS NOT NULL;
