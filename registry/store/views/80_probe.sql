-- The probe (issue 8).
-- Every figure of every run, with its interval.
CREATE OR REPLACE VIEW probe_figures AS
SELECT r.blob_sha256, r.id AS run_id, r.finished_at, r.mode, r.base_ref, r.battery, r.embedder,
       m.name, m.grp, m.arm, m.value, m.lo, m.hi, m.level, m.n_prompts, r.blob_sha256 AS sha256
FROM probe_runs r JOIN probe_metrics m ON m.run_id = r.id;

-- The latest run of each probed model, with its headline figures side by side.
CREATE OR REPLACE VIEW probe_latest AS
WITH latest AS (
    SELECT * EXCLUDE (rn) FROM (
        SELECT r.*, row_number() OVER (PARTITION BY r.blob_sha256 ORDER BY r.finished_at DESC, r.id DESC) AS rn
        FROM probe_runs r
    ) WHERE rn = 1
)
SELECT l.blob_sha256, l.id AS run_id, l.finished_at, l.mode, l.base_ref, l.battery, l.n_prompts, l.n_seeds,
       l.embedder, l.device->>'$.name' AS device,
       max(m.value) FILTER (WHERE m.name = 'concentration' AND m.grp = 'all' AND m.arm = 'collapse') AS collapse,
       max(m.lo)    FILTER (WHERE m.name = 'concentration' AND m.grp = 'all' AND m.arm = 'collapse') AS collapse_lo,
       max(m.hi)    FILTER (WHERE m.name = 'concentration' AND m.grp = 'all' AND m.arm = 'collapse') AS collapse_hi,
       max(m.value) FILTER (WHERE m.name = 'vendi' AND m.grp = 'all' AND m.arm = 'ratio') AS vendi_ratio,
       max(m.value) FILTER (WHERE m.name = 'seed_dup_rate' AND m.grp = 'all' AND m.arm = 'on') AS seed_dup_rate,
       max(m.value) FILTER (WHERE m.name = 'fidelity' AND m.grp = 'all' AND m.arm = 'delta') AS fidelity_delta,
       max(m.value) FILTER (WHERE m.name = 'cond_noise' AND m.grp = 'all' AND m.arm = 'ratio') AS cond_noise_ratio,
       max(m.value) FILTER (WHERE m.name = 'reference_mean' AND m.grp = 'all' AND m.arm = 'delta') AS reference_delta,
       max(m.value) FILTER (WHERE m.name = 'concentration' AND m.grp = 'trigger-dependence' AND m.arm = 'delta') AS trigger_delta,
       max(m.value) FILTER (WHERE m.name = 'prompt_dependence' AND m.grp = 'all' AND m.arm = 'ratio') AS prompt_ratio,
       max(m.value) FILTER (WHERE m.name = 'attraction' AND m.grp = 'all' AND m.arm = 'gain') AS attraction_gain,
       max(m.value) FILTER (WHERE m.name = 'seed_dependence' AND m.grp = 'all' AND m.arm = 'ratio') AS seed_ratio,
       l.summary->>'$[0]' AS headline,
       l.sheet_sha256, l.blob_sha256 AS sha256
FROM latest l LEFT JOIN probe_metrics m ON m.run_id = l.id
GROUP BY ALL;
