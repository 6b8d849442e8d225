-- Training-data declarations (issue 6). Append-only: a new declaration for a model is a new version;
-- no row of these tables is ever updated or deleted (scan --rehash leaves them alone: they are facts
-- about the world, not derived from the bytes).
CREATE SEQUENCE declaration_id_seq START 1;
CREATE TABLE declarations (
    id             BIGINT PRIMARY KEY DEFAULT nextval('declaration_id_seq'),
    blob_sha256    VARCHAR NOT NULL,       -- the model the declaration was recorded for
    version        INTEGER NOT NULL,       -- 1, 2, … per model; the highest is current
    declared_at    TIMESTAMPTZ NOT NULL,   -- when it was recorded here
    sha256         VARCHAR NOT NULL,       -- sha256 of the RFC 8785 canonical JSON of document
    document       JSON NOT NULL,          -- the validated declaration
    source_path    VARCHAR,                -- the file it was read from, as given
    source_sha256  VARCHAR,                -- sha256 of that file's bytes
    source_format  VARCHAR,                -- json | yaml
    schema_version VARCHAR NOT NULL,       -- schemaVersion of the document
    actor          VARCHAR NOT NULL,       -- who recorded it (user@host)
    event_hash     VARCHAR NOT NULL,       -- hash of its declaration.add event
    UNIQUE (blob_sha256, version)
);
CREATE INDEX declarations_blob_idx ON declarations (blob_sha256);
-- One evaluation of a declaration against the evidence known at that time (at declare time, and again
-- with `modelreg declare --recheck`); its contradictions and overfitting indicators.
CREATE SEQUENCE declaration_check_id_seq START 1;
CREATE TABLE declaration_checks (
    id             BIGINT PRIMARY KEY DEFAULT nextval('declaration_check_id_seq'),
    declaration_id BIGINT NOT NULL,
    blob_sha256    VARCHAR NOT NULL,
    checked_at     TIMESTAMPTZ NOT NULL,
    inputs         JSON NOT NULL,          -- which evidence was available (hashes, metadata families, identification …)
    indicators     JSON NOT NULL,          -- [{id, title, value, formula, inputs, source, missing}]
    event_hash     VARCHAR NOT NULL
);
CREATE INDEX declaration_checks_blob_idx ON declaration_checks (blob_sha256);
CREATE TABLE declaration_findings (
    check_id       BIGINT NOT NULL,
    declaration_id BIGINT NOT NULL,
    blob_sha256    VARCHAR NOT NULL,
    rule_id        VARCHAR NOT NULL,
    severity       VARCHAR NOT NULL,
    severity_rank  TINYINT NOT NULL,
    message        VARCHAR NOT NULL,
    evidence       JSON
);
CREATE INDEX declaration_findings_blob_idx ON declaration_findings (blob_sha256);
