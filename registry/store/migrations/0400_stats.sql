-- Weight statistics (issue 4): exact update spectra of LoRA/LyCORIS modules, per-file summary and
-- profile; per-tensor statistics of checkpoints (with a BLAKE3 of each tensor's bytes, for diffs).
CREATE TABLE lora_modules (
    blob_sha256     VARCHAR NOT NULL,
    module          VARCHAR NOT NULL,      -- key as in the file (e.g. lora_unet_down_blocks_1_…_to_q)
    form            VARCHAR NOT NULL,      -- lora, loha, lokr, ia3, glora, oft, boft, diff, norm
    convention      VARCHAR,               -- kohya, peft, diffusers-old, lora_diffusion, lycoris
    component       VARCHAR,               -- unet, transformer, te1, te2, te3, vae, model
    block           VARCHAR,               -- down.1, mid, up.0, input.4, middle, output.3, double.7, single.3, layer.5 … or NULL
    dtype           VARCHAR,               -- stored dtype(s) of the module's tensors
    n_out           BIGINT,                -- ΔW as a matrix: rows
    n_in            BIGINT,                -- … and columns (inputs × kernel)
    rank            INTEGER,
    alpha           DOUBLE,
    scale           DOUBLE,                -- alpha / rank (1 without alpha); included in every figure below
    fro             DOUBLE,                -- ‖ΔW‖_F
    spectral        DOUBLE,                -- σ1
    stable_rank     DOUBLE,                -- ‖ΔW‖_F² / σ1²
    eff_rank_energy DOUBLE,                -- exp(H(σ²/Σσ²))
    eff_rank_rv     DOUBLE,                -- Roy–Vetterli exp(H(σ/Σσ))
    top1_share      DOUBLE,                -- σ1² / Σσ²
    rank90          INTEGER,               -- kohya sv_fro rule, 0.9 of the Frobenius norm
    rank99          INTEGER,               -- … 0.99
    balance         DOUBLE,                -- ‖up‖_F / ‖down‖_F (unscaled)
    sv              DOUBLE[],              -- leading singular values (up to 64), descending
    n_sv            INTEGER,               -- how many singular values ΔW has in all (≤ rank)
    method          VARCHAR,               -- factored, formed, kronecker, blocks, vector, randomized, none
    exact           BOOLEAN,
    nonfinite       BIGINT,                -- NaN/Inf values in the module's tensors
    error           VARCHAR,
    extra           JSON                   -- form-specific figures (DoRA magnitudes, LoKr factors, OFT angles …)
);
CREATE INDEX lora_modules_blob_idx ON lora_modules (blob_sha256);
CREATE TABLE lora_summary (
    blob_sha256         VARCHAR NOT NULL,
    n_modules           INTEGER,
    forms               JSON,
    conventions         JSON,
    components          JSON,
    ranks               INTEGER[],
    alphas              DOUBLE[],
    total_fro           DOUBLE,            -- sqrt(Σ ‖ΔW‖_F²) over modules: the total update norm
    max_spectral        DOUBLE,
    mean_eff_rank       DOUBLE,
    median_eff_rank     DOUBLE,
    mean_rank_use       DOUBLE,            -- mean of eff_rank_energy / rank over low-rank modules
    sum_rank            BIGINT,
    sum_rank90          BIGINT,
    sum_rank99          BIGINT,
    dora                INTEGER,
    nonfinite_modules   INTEGER,
    zero_modules        INTEGER,
    failed_modules      INTEGER,
    approximate_modules INTEGER,
    incomplete_modules  INTEGER,
    unassigned_tensors  INTEGER,
    seconds             DOUBLE
);
CREATE INDEX lora_summary_blob_idx ON lora_summary (blob_sha256);
CREATE TABLE lora_profile (
    blob_sha256     VARCHAR NOT NULL,
    component       VARCHAR NOT NULL,
    block           VARCHAR NOT NULL,      -- '(all)' for the whole component, '(other)' for unplaced modules
    n_modules       INTEGER,
    fro             DOUBLE,
    energy_share    DOUBLE,                -- share of the file's Σ‖ΔW‖_F²
    mean_eff_rank   DOUBLE,
    max_spectral    DOUBLE
);
CREATE INDEX lora_profile_blob_idx ON lora_profile (blob_sha256);
CREATE TABLE tensor_stats (
    blob_sha256     VARCHAR NOT NULL,
    tensor          VARCHAR NOT NULL,
    dtype           VARCHAR,
    shape           BIGINT[],
    numel           BIGINT,
    l2              DOUBLE,                -- over finite values
    mean            DOUBLE,
    std             DOUBLE,                -- population standard deviation
    absmax          DOUBLE,
    zero_frac       DOUBLE,
    nan             BIGINT,
    inf             BIGINT,
    digest          VARCHAR,               -- blake3:<hex> of the tensor's bytes
    component       VARCHAR,
    block           VARCHAR,
    error           VARCHAR
);
CREATE INDEX tensor_stats_blob_idx ON tensor_stats (blob_sha256);
CREATE TABLE checkpoint_summary (
    blob_sha256         VARCHAR NOT NULL,
    n_tensors           INTEGER,
    numel               BIGINT,
    dtypes              JSON,
    l2                  DOUBLE,
    absmax              DOUBLE,
    nonfinite_tensors   INTEGER,
    nan                 BIGINT,
    inf                 BIGINT,
    zero_tensors        INTEGER,
    undecodable_tensors INTEGER,
    components          JSON,
    seconds             DOUBLE
);
CREATE INDEX checkpoint_summary_blob_idx ON checkpoint_summary (blob_sha256);
