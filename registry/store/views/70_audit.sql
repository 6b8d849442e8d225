-- Issue 7: where models came from, by the accounts the audit records.
CREATE OR REPLACE VIEW hf_downloads AS
SELECT
    s.blob_sha256 AS sha256, s.host, s.path, s.seen_at,
    json_extract_string(s.provenance, '$.repo_id')  AS repo_id,
    json_extract_string(s.provenance, '$.revision') AS revision,
    json_extract_string(s.provenance, '$.file')     AS file,
    json_extract_string(s.provenance, '$.blob')     AS blob_name
FROM sightings s
WHERE s.source = 'hf-cache' AND s.provenance IS NOT NULL;

-- the latest reading of every sidecar
CREATE OR REPLACE VIEW sidecars AS
SELECT * EXCLUDE (rn), blob_sha256 AS sha256 FROM (
    SELECT c.*, row_number() OVER (PARTITION BY host, sidecar_path ORDER BY read_at DESC) AS rn
    FROM sidecar_claims c
) WHERE rn = 1;

CREATE OR REPLACE VIEW remote_lookups AS
SELECT id, source, subject, blob_sha256 AS sha256, url, observed_at, status, found, data
FROM remote_observations;
