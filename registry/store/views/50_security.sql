-- Security of pickle-based files (issue 5).
-- One row per scanned model: the verdict, why, and the names that decided it.
CREATE OR REPLACE VIEW model_security AS
SELECT p.blob_sha256 AS sha256, b.format AS sniffed_format, p.format, p.verdict, p.verdict_rank, p.reason,
       p.deciding, p.tensors_recovered, p.tensors_readable, p.state_dict_key,
       len(p.unscannable) AS n_unscannable, len(p.evasions) AS n_evasions,
       (SELECT count(*) FROM pickle_globals g WHERE g.blob_sha256 = p.blob_sha256) AS n_imports,
       (SELECT count(*) FROM pickle_globals g WHERE g.blob_sha256 = p.blob_sha256 AND g.safety = 'dangerous') AS n_dangerous,
       (SELECT s.path FROM sightings s WHERE s.blob_sha256 = p.blob_sha256 ORDER BY s.seen_at DESC, s.id DESC LIMIT 1) AS path
FROM pickle_scans p JOIN blobs b ON b.sha256 = p.blob_sha256;

-- Every imported name of every scanned model, with the policy's judgement.
CREATE OR REPLACE VIEW model_imports AS
SELECT g.blob_sha256 AS sha256, g.module, g.name, g.module || '.' || g.name AS qualname, g.member,
       g.first_offset, g.absolute, g.opcode, g.occurrences, g.safety, g.reason
FROM pickle_globals g;
