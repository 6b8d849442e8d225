-- Stable query surface (documented in the README). Views never change meaning; they only gain columns.
CREATE OR REPLACE VIEW latest_sightings AS
SELECT * EXCLUDE (rn) FROM (
    SELECT s.*, row_number() OVER (PARTITION BY host, path ORDER BY seen_at DESC, id DESC) AS rn
    FROM sightings s
) WHERE rn = 1;

CREATE OR REPLACE VIEW models AS
SELECT
    b.sha256, b.autov1, b.autov2, b.autov3, b.blake3, b.crc32, b.size, b.format, b.n_tensors,
    b.first_seen,
    (SELECT count(*) FROM sightings s WHERE s.blob_sha256 = b.sha256) AS n_sightings,
    (SELECT s.path FROM sightings s WHERE s.blob_sha256 = b.sha256 ORDER BY s.seen_at DESC, s.id DESC LIMIT 1) AS path,
    (SELECT count(*) FROM findings f WHERE f.blob_sha256 = b.sha256) AS n_findings,
    (SELECT max(f.severity_rank) FROM findings f WHERE f.blob_sha256 = b.sha256) AS max_severity_rank,
    b.metadata
FROM blobs b;

CREATE OR REPLACE VIEW model_files AS
SELECT s.host, s.path, s.size, s.mtime_ns, s.seen_at, s.source, s.provenance, b.*
EXCLUDE (size)
FROM latest_sightings s JOIN blobs b ON b.sha256 = s.blob_sha256;

CREATE OR REPLACE VIEW model_tensors AS SELECT * FROM tensors;
CREATE OR REPLACE VIEW model_findings AS SELECT * FROM findings;
CREATE OR REPLACE VIEW event_log AS SELECT * FROM events ORDER BY seq;
