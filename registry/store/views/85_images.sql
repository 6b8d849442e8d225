-- Issue 17: images traced to models (modelreg trace).
CREATE OR REPLACE VIEW traced_images AS
SELECT sha256, size, format, width, height, generator, prompt, seed, steps, sampler, facts, c2pa, findings, host, path,
       traced_at
FROM images;

CREATE OR REPLACE VIEW image_links AS
SELECT l.image_sha256, i.path AS image_path, i.generator, l.model_sha256, l.role, l.ref_name, l.ref_hash, l.weight,
       l.status, l.match_kind, l.note, l.traced_at
FROM image_models l JOIN images i ON i.sha256 = l.image_sha256;
