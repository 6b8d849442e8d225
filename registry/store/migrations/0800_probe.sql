-- The probe (issue 8): generation with an adapter off and on (or a checkpoint against its base).
-- Facts about the world (what a model did on some device at some time), so append-only: a new probe is
-- a new run; scan --rehash leaves these tables alone. Sample images live in the content-addressed
-- store beside the registry (store_root/samples/<sha256[:2]>/<sha256>.png).
CREATE SEQUENCE probe_run_id_seq START 1;
CREATE TABLE probe_runs (
    id              BIGINT PRIMARY KEY DEFAULT nextval('probe_run_id_seq'),
    blob_sha256     VARCHAR NOT NULL,      -- the probed model (LoRA, or checkpoint in mode 'checkpoint')
    mode            VARCHAR NOT NULL,      -- lora | checkpoint
    base_ref        VARCHAR NOT NULL,      -- the base as given (registry ref, folder, file or Hub id)
    base_key        VARCHAR NOT NULL,      -- its content identity (sha256:… of a file, tree-sha256:… of a folder)
    base_sha256     VARCHAR,               -- the base's blob when it is a registered file
    battery         VARCHAR NOT NULL,
    n_prompts       INTEGER NOT NULL,
    n_seeds         INTEGER NOT NULL,
    embedder        VARCHAR NOT NULL,      -- embedder key (architecture + weights digest)
    started_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL,
    config          JSON NOT NULL,         -- prompts, seeds, scheduler, steps, guidance, size, dtype, grids …
    versions        JSON NOT NULL,         -- python, torch, diffusers, transformers, peft, open_clip …
    device          JSON NOT NULL,
    timings         JSON NOT NULL,         -- seconds per stage
    adapter         JSON,                  -- what loading the adapter matched (layers per component)
    summary         JSON NOT NULL,         -- the plain-words summary, sentence by sentence
    skipped         JSON NOT NULL,         -- figures not measured and why
    notes           JSON NOT NULL,         -- e.g. out-of-memory batch halvings
    sheet_sha256    VARCHAR,               -- the contact sheet (a PNG in the sample store)
    store_root      VARCHAR NOT NULL,
    actor           VARCHAR NOT NULL,
    event_hash      VARCHAR NOT NULL
);
CREATE INDEX probe_runs_blob_idx ON probe_runs (blob_sha256);
CREATE TABLE probe_samples (
    run_id          BIGINT NOT NULL,
    blob_sha256     VARCHAR NOT NULL,
    arm             VARCHAR NOT NULL,      -- off | on
    prompt_id       VARCHAR NOT NULL,
    prompt          VARCHAR NOT NULL,
    seed            BIGINT NOT NULL,
    sha256          VARCHAR NOT NULL,      -- the PNG file in the sample store
    cond_noise      DOUBLE,                -- conditional-noise magnitude (RMS over the first steps)
    batch_size      INTEGER,
    cached          BOOLEAN NOT NULL,      -- taken from an earlier run's grid
    embedding       FLOAT[]                -- under the run's embedder
);
CREATE INDEX probe_samples_run_idx ON probe_samples (run_id);
CREATE TABLE probe_metrics (
    run_id          BIGINT NOT NULL,
    blob_sha256     VARCHAR NOT NULL,
    name            VARCHAR NOT NULL,      -- concentration, vendi, seed_dup_rate, fidelity, cond_noise, …
    grp             VARCHAR NOT NULL,      -- all | a category | trigger
    arm             VARCHAR NOT NULL,      -- on | off | delta | ratio | collapse | with | without
    value           DOUBLE,
    lo              DOUBLE,                -- bootstrap interval over prompts
    hi              DOUBLE,
    level           DOUBLE NOT NULL,
    n_prompts       INTEGER NOT NULL
);
CREATE INDEX probe_metrics_run_idx ON probe_metrics (run_id);
