-- Which samples were generated together. On a GPU a sample's pixels depend on its batch (its size and the
-- order of the samples in it; measured on an H200, docs/probe.md), so regenerating a sample hash exactly
-- needs the batch: batch_key is the first 16 hex digits of the SHA-256 of the grid's key and the batch's job
-- keys in order (one line of the grid journal), batch_position the sample's place in it (from 0). NULL for runs
-- recorded before.
ALTER TABLE probe_samples ADD COLUMN batch_key VARCHAR;
ALTER TABLE probe_samples ADD COLUMN batch_position INTEGER;
