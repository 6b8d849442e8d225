-- Training-data declarations (issue 6).
-- Every recorded version, newest first per model.
CREATE OR REPLACE VIEW declaration_history AS
SELECT d.blob_sha256, d.version, d.declared_at, d.sha256 AS document_sha256, d.source_path, d.source_format,
       d.schema_version, d.actor, d.document->>'$.declarant.name' AS declarant,
       d.document->>'$.date' AS declaration_date, d.id AS declaration_id, d.event_hash, d.blob_sha256 AS sha256
FROM declarations d;

-- The latest check of each declaration.
CREATE OR REPLACE VIEW declaration_latest_checks AS
SELECT * EXCLUDE (rn), blob_sha256 AS sha256 FROM (
    SELECT c.*, row_number() OVER (PARTITION BY c.declaration_id ORDER BY c.checked_at DESC, c.id DESC) AS rn
    FROM declaration_checks c
) WHERE rn = 1;

-- One row per declared model: its current declaration and what the latest check of it found.
CREATE OR REPLACE VIEW model_declarations AS
SELECT d.blob_sha256, d.version, d.declared_at, d.sha256 AS document_sha256, d.source_path,
       d.document->>'$.declarant.name' AS declarant,
       d.document->>'$.training.method' AS method,
       d.document->>'$.training.baseArchitecture' AS base_architecture,
       json_array_length(d.document->'$.datasets') AS n_datasets,
       c.checked_at,
       (SELECT count(*) FROM declaration_findings f WHERE f.check_id = c.id) AS n_contradictions,
       (SELECT max(f.severity_rank) FROM declaration_findings f WHERE f.check_id = c.id) AS max_contradiction_rank,
       d.id AS declaration_id, d.blob_sha256 AS sha256
FROM declarations d
LEFT JOIN declaration_latest_checks c ON c.declaration_id = d.id
WHERE d.version = (SELECT max(version) FROM declarations x WHERE x.blob_sha256 = d.blob_sha256);

-- The contradictions of each model's current declaration, from its latest check.
CREATE OR REPLACE VIEW declaration_contradictions AS
SELECT m.blob_sha256, m.version, f.rule_id, f.severity, f.severity_rank, f.message, f.evidence, m.checked_at,
       m.blob_sha256 AS sha256
FROM model_declarations m JOIN declaration_latest_checks c ON c.declaration_id = m.declaration_id
JOIN declaration_findings f ON f.check_id = c.id;
