-- Static pickle scans (issue 5): one row per scanned blob, and one row per distinct imported name.
-- Derived from the bytes: `scan --rehash` clears and rewrites both for a blob.
CREATE TABLE pickle_scans (
    blob_sha256        VARCHAR NOT NULL,
    verdict            VARCHAR NOT NULL,   -- safe, suspicious, dangerous, unscannable
    verdict_rank       TINYINT NOT NULL,   -- 0 safe, 1 suspicious, 2 unscannable, 3 dangerous
    reason             VARCHAR NOT NULL,   -- the deciding fact in words
    format             VARCHAR NOT NULL,   -- container as read by the scanner (pytorch-zip, torchscript, npz …)
    deciding           JSON,               -- [{module, name, offset, absolute, member, opcode, safety, reason}]
    globals            JSON,               -- every distinct import, first occurrence, same fields
    streams            JSON,               -- [{member, role, offset, protocol, ops, complete, error, globals}]
    members            VARCHAR[],          -- archive members looked at
    unscannable        VARCHAR[],          -- why parts could not be scanned
    evasions           VARCHAR[],          -- tricks seen (zip flag/name/CRC quirks, hidden pickles, polyglots)
    container          JSON,               -- kind, archive prefix, byte order, TorchScript code files …
    tensors_recovered  INTEGER,            -- tensors found by the symbolic reader (safe/suspicious files)
    tensors_readable   INTEGER,            -- of which dense, in-bounds and stored uncompressed
    state_dict_key     VARCHAR,            -- 'state_dict' when the model's tensors sit under that key
    elapsed_ms         DOUBLE,
    scanner_version    VARCHAR NOT NULL
);
CREATE INDEX pickle_scans_blob_idx ON pickle_scans (blob_sha256);
CREATE TABLE pickle_globals (
    blob_sha256        VARCHAR NOT NULL,
    module             VARCHAR NOT NULL,
    name               VARCHAR NOT NULL,
    member             VARCHAR,            -- archive member (NULL: the file itself)
    first_offset       BIGINT NOT NULL,    -- byte offset of the first import opcode
    absolute           BOOLEAN NOT NULL,   -- first_offset is in the file (else inside the member)
    opcode             VARCHAR NOT NULL,   -- GLOBAL, INST, STACK_GLOBAL, EXT1/2/4
    occurrences        INTEGER NOT NULL,
    safety             VARCHAR NOT NULL,   -- safe, suspicious, dangerous
    reason             VARCHAR NOT NULL
);
CREATE INDEX pickle_globals_blob_idx ON pickle_globals (blob_sha256);
