-- Issue 7: audits. What sidecar files claim, what remote services said (Hub catalogs, Civitai lookups),
-- and the files of Hub repositories catalogued without downloading them.
CREATE TABLE sidecar_claims (
    host              VARCHAR NOT NULL,
    model_path        VARCHAR NOT NULL,      -- the model file the sidecar sits next to
    blob_sha256       VARCHAR,               -- that file's content when the sidecar was read
    sidecar_path      VARCHAR NOT NULL,
    kind              VARCHAR NOT NULL,      -- civitai-info, cm-info
    sidecar_size      BIGINT NOT NULL,
    sidecar_mtime_ns  BIGINT NOT NULL,
    verdict           VARCHAR NOT NULL,      -- match, mismatch, edited, no-hashes, unreadable
    name              VARCHAR,
    version_name      VARCHAR,
    creator           VARCHAR,
    base_model        VARCHAR,
    model_type        VARCHAR,
    model_id          BIGINT,
    version_id        BIGINT,
    trained_words     VARCHAR[],
    hashes            JSON,                  -- claimed hashes, lower-case hex, keyed like blobs' columns
    claims            JSON,                  -- everything parsed, verbatim
    read_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX sidecar_claims_blob_idx ON sidecar_claims (blob_sha256);
CREATE INDEX sidecar_claims_path_idx ON sidecar_claims (host, sidecar_path);

CREATE SEQUENCE remote_observation_id_seq START 1;
CREATE TABLE remote_observations (
    id                BIGINT PRIMARY KEY DEFAULT nextval('remote_observation_id_seq'),
    source            VARCHAR NOT NULL,      -- civitai, hf-hub
    subject           VARCHAR NOT NULL,      -- what was asked: a digest, or hf://org/name@commit
    blob_sha256       VARCHAR,               -- the local blob the question was about, if any
    url               VARCHAR NOT NULL,      -- the URL that answered
    observed_at       TIMESTAMPTZ NOT NULL,
    status            INTEGER,               -- HTTP status (0: no answer)
    found             BOOLEAN,
    data              JSON                   -- what the answer said (normalised)
);
CREATE INDEX remote_observations_blob_idx ON remote_observations (blob_sha256);

CREATE TABLE hub_files (
    observation_id    BIGINT NOT NULL,       -- the remote_observations row of the catalog
    repo_id           VARCHAR NOT NULL,
    revision          VARCHAR NOT NULL,      -- the commit
    path              VARCHAR NOT NULL,      -- path in the repository
    url               VARCHAR NOT NULL,      -- resolve URL pinned to the commit
    size              BIGINT,
    sha256            VARCHAR,               -- the LFS object id (the file's SHA-256); NULL for git-stored files
    blob_id           VARCHAR,               -- git blob id
    header_len        BIGINT,
    n_tensors         INTEGER,
    metadata          JSON,                  -- safetensors __metadata__ read by range requests
    tensors           JSON,                  -- [[name, dtype, [shape…]], …] from the remote header
    findings          JSON,
    observed_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX hub_files_sha_idx ON hub_files (sha256);
