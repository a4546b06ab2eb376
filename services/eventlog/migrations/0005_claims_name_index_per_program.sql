-- Name matching reads only the program's own claims: the trigram index leads with program_id
-- (btree_gin lets a GIN index hold the equality column next to the trigrams).
CREATE EXTENSION IF NOT EXISTS btree_gin;
DROP INDEX conflict.claims_name_trgm;
CREATE INDEX claims_name_trgm ON conflict.claims USING gin (program_id, name_key gin_trgm_ops);
