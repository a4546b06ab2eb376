-- Similar names are searched in the conflict service's memory (services/conflict/name_search.py),
-- which reads each program's and country's names once and then only those added since: the
-- arrival number `seq` says which. A program's names are added under its lock, so their numbers
-- are in commit order within the program, and a reader that has seen one has seen all before it.
-- The GIN-indexed copy of the names and its search function are no longer read.
ALTER TABLE conflict.claim_name_keys ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
CREATE INDEX claim_name_keys_arrival ON conflict.claim_name_keys (program_id, country, seq) INCLUDE (name_key);

CREATE OR REPLACE FUNCTION conflict.claim_names_add_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conflict.claim_name_keys (program_id, country, name_key)
    SELECT DISTINCT program_id, country, name_key FROM inserted
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION conflict.claim_names_add_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conflict.claim_name_keys (program_id, country, name_key)
    VALUES (NEW.program_id, NEW.country, NEW.name_key)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION conflict.claim_names_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE conflict.claim_name_keys;
    RETURN NULL;
END
$$;

DROP FUNCTION conflict.similar_names(text, text, text, float8);
DROP TABLE conflict.claim_names;
