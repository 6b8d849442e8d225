-- Issue 17: images traced to the models that made them. An image is keyed by the SHA-256 of its bytes;
-- its generation facts (registry.trace) are kept as JSON; image_models links it to registered models with
-- the way each reference matched. A re-trace replaces the image's row and links.
CREATE TABLE images (
    sha256        VARCHAR NOT NULL,      -- 64 hex, whole image file
    size          BIGINT NOT NULL,
    format        VARCHAR NOT NULL,      -- png, jpeg, webp
    width         INTEGER,
    height        INTEGER,
    generator     VARCHAR,               -- A1111, Forge, ComfyUI, InvokeAI, Fooocus, NovelAI, SwarmUI ('+'-joined)
    prompt        VARCHAR,
    seed          VARCHAR,               -- text: ComfyUI seeds reach 2**64
    steps         INTEGER,
    sampler       VARCHAR,
    facts         JSON,                  -- {"facts": [GenerationFacts], "matches": [RefMatch], "metadata_keys": [...]}
    c2pa          JSON,                  -- C2PA manifest presence (and unverified claim generator)
    findings      JSON,                  -- hostile or malformed metadata, as findings
    host          VARCHAR NOT NULL,
    path          VARCHAR NOT NULL,      -- where it was traced
    traced_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX images_sha256_idx ON images (sha256);
CREATE TABLE image_models (
    image_sha256  VARCHAR NOT NULL,
    model_sha256  VARCHAR NOT NULL,
    role          VARCHAR NOT NULL,      -- checkpoint, lora, lycoris, embedding, vae, refiner, unet, …
    ref_name      VARCHAR,               -- the name the image gives
    ref_hash      VARCHAR,               -- the hash(es) the image gives, comma-separated
    weight        DOUBLE,
    status        VARCHAR NOT NULL,      -- matched, conflict, weak
    match_kind    VARCHAR,               -- "AutoV3 prefix of 12", "the file's embedded sshs hash claim", "name only: weak" …
    note          VARCHAR,
    traced_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX image_models_model_idx ON image_models (model_sha256);
CREATE INDEX image_models_image_idx ON image_models (image_sha256);
