-- Core registry: content (blobs) is the identity; sightings say where a blob was seen.
CREATE TABLE blobs (
    sha256        VARCHAR PRIMARY KEY,   -- 64 hex, whole file
    size          BIGINT NOT NULL,
    autov1        VARCHAR,               -- 8 hex: sha256 of bytes [0x100000, 0x110000)
    autov2        VARCHAR,               -- 10 hex: first 10 of sha256
    autov3        VARCHAR,               -- 64 hex: sha256 of safetensors tensor data; NULL for other formats
    blake3        VARCHAR,               -- 64 hex, whole file
    crc32         VARCHAR,               -- 8 hex, zlib's value (Civitai prints the bytes reversed)
    git_sha1      VARCHAR,               -- 40 hex git blob sha1, for files up to 10 MiB (HF cache small files)
    format        VARCHAR NOT NULL,      -- sniffed container: safetensors, pytorch-zip, pickle, …
    header_len    BIGINT,                -- safetensors N
    n_tensors     INTEGER,
    metadata      JSON,                  -- safetensors __metadata__ verbatim (any JSON value), or NULL
    analyzers     VARCHAR,               -- analyzer versions that produced the derived rows
    first_seen    TIMESTAMPTZ NOT NULL
);
CREATE SEQUENCE sighting_id_seq START 1;
CREATE TABLE sightings (
    id            BIGINT PRIMARY KEY DEFAULT nextval('sighting_id_seq'),
    blob_sha256   VARCHAR NOT NULL,
    host          VARCHAR NOT NULL,
    path          VARCHAR NOT NULL,      -- absolute path as given (symlinks not resolved)
    size          BIGINT NOT NULL,
    mtime_ns      BIGINT NOT NULL,
    inode         BIGINT,
    device        BIGINT,
    seen_at       TIMESTAMPTZ NOT NULL,
    source        VARCHAR NOT NULL DEFAULT 'scan',   -- scan, audit, hf-cache, hub …
    provenance    JSON                   -- e.g. {"repo_id": …, "revision": …, "file": …}
);
CREATE INDEX sightings_path_idx ON sightings (host, path);
CREATE INDEX sightings_blob_idx ON sightings (blob_sha256);
CREATE TABLE tensors (
    blob_sha256   VARCHAR NOT NULL,
    idx           INTEGER NOT NULL,      -- order in the header
    name          VARCHAR NOT NULL,
    dtype         VARCHAR NOT NULL,
    shape         BIGINT[] NOT NULL,
    data_begin    BIGINT,                -- safetensors data_offsets (relative to the data section)
    data_end      BIGINT,
    file_offset   BIGINT,                -- absolute offset of the first byte in the file
    nbytes        BIGINT
);
CREATE SEQUENCE finding_id_seq START 1;
CREATE TABLE findings (
    id            BIGINT PRIMARY KEY DEFAULT nextval('finding_id_seq'),
    blob_sha256   VARCHAR,               -- content findings; NULL for files that could not be read
    host          VARCHAR,
    path          VARCHAR,               -- where it was seen (for unreadable files the only key)
    rule_id       VARCHAR NOT NULL,
    severity      VARCHAR NOT NULL,      -- info, low, medium, high, critical
    severity_rank TINYINT NOT NULL,      -- 0..4
    message       VARCHAR NOT NULL,
    evidence      JSON,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX findings_blob_idx ON findings (blob_sha256);
-- Append-only, hash-chained log of every change (the chain of custody an exhibit cites).
CREATE TABLE events (
    seq           BIGINT PRIMARY KEY,
    event_at      TIMESTAMPTZ NOT NULL,
    actor         VARCHAR NOT NULL,
    action        VARCHAR NOT NULL,      -- blob.add, sighting.add, unreadable, declaration.add, …
    subject       VARCHAR,               -- usually a blob sha256
    payload       JSON NOT NULL,
    prev_hash     VARCHAR NOT NULL,
    hash          VARCHAR NOT NULL
);
CREATE INDEX events_subject_idx ON events (subject);
