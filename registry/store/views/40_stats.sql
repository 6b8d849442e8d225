-- Weight statistics (issue 4). One row per adapter module / per checkpoint tensor, and per-file summaries.
CREATE OR REPLACE VIEW model_lora_modules AS SELECT *, blob_sha256 AS sha256 FROM lora_modules;
CREATE OR REPLACE VIEW model_lora_profile AS SELECT *, blob_sha256 AS sha256 FROM lora_profile;
CREATE OR REPLACE VIEW model_tensor_stats AS SELECT *, blob_sha256 AS sha256 FROM tensor_stats;

-- One row per analysed file: 'adapter' rows carry the LoRA figures, 'checkpoint' rows the tensor totals.
CREATE OR REPLACE VIEW model_weight_stats AS
SELECT s.blob_sha256 AS sha256, 'adapter' AS kind, s.n_modules, s.total_fro, s.max_spectral, s.mean_eff_rank,
       s.median_eff_rank, s.mean_rank_use, s.sum_rank, s.sum_rank90, s.sum_rank99, s.sum_max_rank, s.rank_modules,
       s.per_module, s.approximate_modules, s.max_sv_error, s.ranks, s.alphas, s.forms,
       s.components, s.nonfinite_modules AS nonfinite, s.zero_modules,
       CAST(NULL AS INTEGER) AS n_tensors, CAST(NULL AS DOUBLE) AS l2, CAST(NULL AS DOUBLE) AS absmax
FROM lora_summary s
UNION ALL BY NAME
SELECT c.blob_sha256 AS sha256, 'checkpoint' AS kind, c.n_tensors, c.l2, c.absmax, c.nonfinite_tensors AS nonfinite,
       c.components
FROM checkpoint_summary c;
