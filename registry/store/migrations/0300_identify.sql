-- Issue 3: what a file is (identity), what its embedded training metadata says (training_facts), and how
-- its embedded hash claims compare with the computed hashes (hash_checks). All rows hang off the blob.
CREATE TABLE identity (
    blob_sha256      VARCHAR NOT NULL,
    kind             VARCHAR NOT NULL,   -- checkpoint, lora, lycoris, embedding, vae, text_encoder, controlnet, ip_adapter, t2i_adapter, unknown
    adapter_type     VARCHAR,            -- kohya-lora, peft-lora, diffusers-old-lora, lora_diffusion, xlabs-lora, loha, lokr, dora, ia3, glora, oft, boft, full-diff
    key_style        VARCHAR,            -- kohya, diffusers, peft, comfy, ldm, sgm, bfl, lora_diffusion, xlabs, a1111-embedding, …
    arch             VARCHAR NOT NULL,   -- sd1, sd2, sdxl-base, sdxl-refiner, sd3, flux1, other:<family>, unknown
    arch_variant     VARCHAR,            -- dev, schnell, inpaint, 3.5-large, 14b-i2v, …
    confidence       VARCHAR NOT NULL,   -- of arch: high, medium, low, none
    kind_confidence  VARCHAR,
    source           VARCHAR NOT NULL,   -- shapes, metadata, none
    components       VARCHAR[],          -- unet | transformer, te1, te2, te3, vae
    arch_candidates  VARCHAR[],          -- when the shapes allow several architectures
    evidence         JSON,               -- [{what, key, shape, width}]
    claims           JSON,               -- [{key, value, arch, variant, kind}] from the embedded metadata
    details          JSON
);
CREATE INDEX identity_blob_idx ON identity (blob_sha256);

CREATE TABLE training_facts (
    blob_sha256        VARCHAR NOT NULL,
    trainer            VARCHAR,
    trainer_version    VARCHAR,
    sources            VARCHAR[],        -- kohya, modelspec, diffusers, ai-toolkit, onetrainer, a1111-merge
    base_model_name    VARCHAR,
    base_model_version VARCHAR,
    architecture_claim VARCHAR,
    base_autov1        VARCHAR,          -- normalised base-model hash claims (placeholders dropped)
    base_autov2        VARCHAR,
    base_sha256        VARCHAR,
    network_module     VARCHAR,
    network_dim        BIGINT,
    network_alpha      DOUBLE,
    num_train_images   BIGINT,
    num_reg_images     BIGINT,
    distinct_images    BIGINT,
    epochs             BIGINT,
    epoch              BIGINT,
    steps              BIGINT,
    max_train_steps    BIGINT,
    batch_size         BIGINT,
    resolution         VARCHAR,
    learning_rate      DOUBLE,
    unet_lr            DOUBLE,
    text_encoder_lr    DOUBLE,
    optimizer          VARCHAR,
    seed               BIGINT,
    started_at         VARCHAR,          -- ISO 8601 UTC
    finished_at        VARCHAR,
    title              VARCHAR,
    author             VARCHAR,
    output_name        VARCHAR,
    trigger_words      VARCHAR[],
    facts              JSON              -- the whole TrainingFacts (registry.training), JSON-encoded
);
CREATE INDEX training_facts_blob_idx ON training_facts (blob_sha256);

CREATE TABLE hash_checks (
    blob_sha256    VARCHAR NOT NULL,
    claim_key      VARCHAR NOT NULL,    -- sshs_model_hash, modelspec.hash_sha256, sshs_legacy_hash
    claimed        VARCHAR,             -- verbatim
    computed_kind  VARCHAR,             -- autov3, autov1
    computed       VARCHAR,
    outcome        VARCHAR NOT NULL,    -- match, mismatch, placeholder, unverifiable
    reason         VARCHAR
);
CREATE INDEX hash_checks_blob_idx ON hash_checks (blob_sha256);
