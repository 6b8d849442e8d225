-- Exhibits issued (issue 9), newest first.
CREATE OR REPLACE VIEW model_exhibits AS
SELECT id, blob_sha256 AS sha256, record_sha256, manifest_sha256, created_at, host, folder, signer_method,
       signer_fingerprint, chain_head_seq, chain_head_hash, tool_version
FROM exhibits ORDER BY created_at DESC, id DESC;
