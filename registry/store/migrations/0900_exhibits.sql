-- Exhibits issued (issue 9): one row per exhibit folder written by `modelreg exhibit`.
CREATE SEQUENCE exhibit_id_seq START 1;
CREATE TABLE exhibits (
    id                 BIGINT PRIMARY KEY DEFAULT nextval('exhibit_id_seq'),
    blob_sha256        VARCHAR NOT NULL,      -- the model the exhibit is about
    record_sha256      VARCHAR NOT NULL,      -- SHA-256 of its record.json
    manifest_sha256    VARCHAR NOT NULL,      -- SHA-256 of its MANIFEST
    created_at         TIMESTAMPTZ NOT NULL,  -- as written in its envelope.json
    host               VARCHAR NOT NULL,
    folder             VARCHAR NOT NULL,      -- absolute path where it was written
    signer_method      VARCHAR NOT NULL,      -- ecdsa-key, sigstore, none
    signer_fingerprint VARCHAR,               -- SHA-256 of the public key (ecdsa-key)
    chain_head_seq     BIGINT,                -- the event-log head the record cites
    chain_head_hash    VARCHAR,
    tool_version       VARCHAR NOT NULL
);
CREATE INDEX exhibits_blob_idx ON exhibits (blob_sha256);
