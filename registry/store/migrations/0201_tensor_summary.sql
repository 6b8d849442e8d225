-- Per-blob, per-dtype totals of the tensors table, written by write_batch beside the tensor rows, so that
-- `modelreg show` (section "tensors") reads a handful of indexed rows instead of scanning the tensors
-- table (800 rows per LoRA: 80 million rows at 100,000 models, ~0.2 s a lookup without it).
CREATE TABLE tensor_summary (
    blob_sha256   VARCHAR NOT NULL,
    dtype         VARCHAR NOT NULL,
    tensors       BIGINT NOT NULL,
    bytes         HUGEINT,
    parameters    HUGEINT
);
CREATE INDEX tensor_summary_blob_idx ON tensor_summary (blob_sha256);
INSERT INTO tensor_summary
SELECT blob_sha256, dtype, count(*), sum(nbytes), sum(list_reduce(list_prepend(1, shape), lambda a, b: a * b))
FROM tensors GROUP BY blob_sha256, dtype;
