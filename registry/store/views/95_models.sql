-- The main query surface: one row per registered content (blob), with the key facts of every analysis.
-- Stable: columns may be added, never renamed or given another meaning.
CREATE OR REPLACE VIEW models AS
SELECT
    b.sha256, b.autov1, b.autov2, b.autov3, b.blake3, b.crc32, b.size, b.format, b.n_tensors,
    b.first_seen,
    coalesce(sg.n_sightings, 0) AS n_sightings,
    sg.path,                        -- where it was seen last (latest seen_at, then highest sighting id)
    coalesce(fs.n_findings, 0) AS n_findings,
    fs.max_severity_rank,
    b.metadata,
    -- identification (issue 3)
    i.kind, i.adapter_type, i.arch, i.arch_variant, i.confidence AS arch_confidence, i.source AS arch_source,
    -- training metadata (issue 3)
    t.trainer, t.trigger_words,
    -- weight statistics (issue 4)
    ls.n_modules, ls.total_fro, ls.mean_eff_rank, ls.max_spectral,
    -- declarations (issue 6)
    d.version AS declaration_version, d.n_contradictions,
    -- pickle security (issues 5, 12): the scan's verdict; safetensors and GGUF content without a scan row
    -- (GGUF, and safetensors scanned before every safetensors file got one) holds data only: 'safe'.
    -- NULL only for formats that were not scanned for code.
    COALESCE(p.verdict, CASE WHEN b.format IN ('safetensors', 'gguf') THEN 'safe' END) AS security_verdict
FROM blobs b
-- per-blob aggregates joined once (correlated subqueries per row took seconds at 100,000 models)
LEFT JOIN (
    SELECT blob_sha256, count(*) AS n_sightings, arg_max(path, (seen_at, id)) AS path
    FROM sightings GROUP BY blob_sha256
) sg ON sg.blob_sha256 = b.sha256
LEFT JOIN (
    SELECT blob_sha256, count(*) AS n_findings, max(severity_rank) AS max_severity_rank
    FROM findings WHERE blob_sha256 IS NOT NULL GROUP BY blob_sha256
) fs ON fs.blob_sha256 = b.sha256
LEFT JOIN identity i ON i.blob_sha256 = b.sha256
LEFT JOIN training_facts t ON t.blob_sha256 = b.sha256
LEFT JOIN lora_summary ls ON ls.blob_sha256 = b.sha256
LEFT JOIN model_declarations d ON d.blob_sha256 = b.sha256
LEFT JOIN pickle_scans p ON p.blob_sha256 = b.sha256;
