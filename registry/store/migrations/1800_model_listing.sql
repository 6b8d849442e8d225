-- Issue 18: the models view's list columns, materialised for `ls` and the web list (registry/store/listing_table.py).
-- Written only from the view's own query: by the writers in the transaction of each change, and filled (and
-- refilled after any later migration) by the migration step once the views exist.
CREATE TABLE model_listing (
    sha256            VARCHAR NOT NULL,
    autov2            VARCHAR,
    name              VARCHAR,          -- file name of the last-seen path
    path              VARCHAR,          -- last-seen path (models.path)
    format            VARCHAR,
    kind              VARCHAR,
    arch              VARCHAR,
    arch_label        VARCHAR,          -- arch with its variant: flux1/dev
    size              BIGINT,
    n_tensors         INTEGER,
    n_findings        BIGINT,
    max_severity_rank TINYINT,
    first_seen        TIMESTAMPTZ,
    path_lc           VARCHAR,          -- lower(path)
    metadata_lc       VARCHAR,          -- lower(metadata as JSON text)
    facts_lc          VARCHAR[],        -- per training_facts row: lower(title, output name, author, trigger words)
    triggers_lc       VARCHAR[]         -- every trigger word, lower-cased
);
