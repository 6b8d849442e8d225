-- Lookups that stay fast as the registry grows (registry.store.read.resolve_ref, `modelreg show REF`).
-- DuckDB's ART indexes serve equality, not ranges or LIKE, so a hash prefix is found through an index
-- on its first 8 hex digits, and a file name through an index on the last path component. The index
-- expressions must match the ones in read.py character for character, or DuckDB scans the table.
CREATE INDEX blobs_sha256_key_idx ON blobs ((regexp_extract(sha256, '^[0-9a-f]{8}')));
CREATE INDEX blobs_autov3_key_idx ON blobs ((regexp_extract(autov3, '^[0-9a-f]{8}')));
CREATE INDEX blobs_blake3_key_idx ON blobs ((regexp_extract(blake3, '^[0-9a-f]{8}')));
CREATE INDEX blobs_autov1_idx ON blobs (autov1);
CREATE INDEX blobs_crc32_idx ON blobs (crc32);
CREATE INDEX sightings_path_any_host_idx ON sightings (path);
CREATE INDEX sightings_name_idx ON sightings ((regexp_extract(path, '[^/]*$')));
