-- Stable query surface (documented in the README). Views never change meaning; they only gain columns.
CREATE OR REPLACE VIEW latest_sightings AS
SELECT * EXCLUDE (rn), blob_sha256 AS sha256 FROM (
    SELECT s.*, row_number() OVER (PARTITION BY host, path, path_raw ORDER BY seen_at DESC, id DESC) AS rn
    FROM sightings s
) WHERE rn = 1;

-- `models` (one row per registered content) is defined in 95_models.sql, after every feature's tables.

CREATE OR REPLACE VIEW model_files AS
SELECT s.host, s.path, s.size, s.mtime_ns, s.seen_at, s.source, s.provenance, b.*
EXCLUDE (size)
FROM latest_sightings s JOIN blobs b ON b.sha256 = s.blob_sha256;

CREATE OR REPLACE VIEW model_tensors AS SELECT *, blob_sha256 AS sha256 FROM tensors;
CREATE OR REPLACE VIEW model_findings AS SELECT *, blob_sha256 AS sha256 FROM findings;
CREATE OR REPLACE VIEW event_log AS SELECT * FROM events ORDER BY seq;
