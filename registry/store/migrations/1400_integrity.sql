-- Issue 14: names that are not UTF-8 stored losslessly; findings tied to the event that created them.
-- path holds the display form (registry/paths.py); path_raw the exact bytes when they differ from it.
ALTER TABLE sightings ADD COLUMN path_raw BLOB;
ALTER TABLE findings ADD COLUMN path_raw BLOB;
-- seq of the blob.add / blob.reanalyze / path.unreadable event whose payload digests this finding
ALTER TABLE findings ADD COLUMN event_seq BIGINT;
