-- Issue 3: identification, training facts, hash checks and adapter → base links.
CREATE OR REPLACE VIEW model_identity AS
SELECT i.blob_sha256 AS sha256, i.kind, i.adapter_type, i.key_style, i.arch, i.arch_variant, i.confidence,
       i.kind_confidence, i.source, i.components, i.arch_candidates, i.evidence, i.claims, i.details
FROM identity i;

CREATE OR REPLACE VIEW model_training AS
SELECT t.blob_sha256 AS sha256, t.* EXCLUDE (blob_sha256)
FROM training_facts t;

CREATE OR REPLACE VIEW model_hash_checks AS
SELECT h.blob_sha256 AS sha256, h.claim_key, h.claimed, h.computed_kind, h.computed, h.outcome, h.reason
FROM hash_checks h;

-- An adapter whose metadata names its base by hash, and a registered blob with that hash. matched_on
-- says which hash matched, strongest first: sha256 (the whole file), autov2 (first 10 hex of it), autov1
-- (32 bits of a 64 KiB window: weak, and never used for files under 1.06 MiB, whose AutoV1 is the
-- empty-input hash). One row per (adapter, base), with the strongest match.
CREATE OR REPLACE VIEW base_links AS
SELECT * EXCLUDE (rn, strength) FROM (
    SELECT *, row_number() OVER (PARTITION BY adapter_sha256, base_sha256 ORDER BY strength) AS rn FROM (
        SELECT t.blob_sha256 AS adapter_sha256, b.sha256 AS base_sha256, 'sha256' AS matched_on,
               t.base_sha256 AS claimed, t.base_model_name, 1 AS strength
        FROM training_facts t JOIN blobs b ON b.sha256 = t.base_sha256
        UNION ALL
        SELECT t.blob_sha256, b.sha256, 'autov2', t.base_autov2, t.base_model_name, 2
        FROM training_facts t JOIN blobs b ON b.autov2 = t.base_autov2
        UNION ALL
        SELECT t.blob_sha256, b.sha256, 'autov1', t.base_autov1, t.base_model_name, 3
        FROM training_facts t JOIN blobs b ON b.autov1 = t.base_autov1
        WHERE b.size >= 1114112 AND t.base_autov1 <> 'e3b0c442'
    ) WHERE adapter_sha256 <> base_sha256
) WHERE rn = 1;
