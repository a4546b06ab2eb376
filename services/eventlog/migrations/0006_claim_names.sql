-- Name matching reads one program's names in one country, each distinct name once.
--
-- A program's claims repeat their customers' names (every partner registering the same customer
-- writes the same normalized name), and only names in the claim's own country can match. The
-- trigram search therefore runs over conflict.claim_names: the distinct (program, country, name)
-- of the claims, hash-partitioned by program and country so that each GIN index holds few
-- programs and countries, and its posting lists stay short (two large countries of one program
-- may still share a partition; more partitions make that rarer). The claims of the names found
-- are then read through a b-tree on (program_id, name_key, status).
--
-- Triggers keep the names in step with conflict.claims: inserts (row by row or COPY, in one
-- statement per insert), changes of name, country or program, and TRUNCATE. A name whose claims
-- are all gone stays until the next TRUNCATE: it finds no claim, so it costs a lookup, never a
-- wrong answer.

-- The search table has no key: a unique index would have to hold program_id and country, and the
-- planner could then read all of a country's names through it (skip scan) instead of asking the
-- trigram index. Which names are known is kept apart, in conflict.claim_name_keys: a new claim
-- costs one b-tree probe there, and only a name seen for the first time reaches the search table.
CREATE TABLE conflict.claim_name_keys (
    program_id text NOT NULL,
    country text NOT NULL,
    name_key text NOT NULL,
    PRIMARY KEY (program_id, country, name_key)
);
CREATE TABLE conflict.claim_names (
    program_id text NOT NULL,
    country text NOT NULL,
    name_key text NOT NULL
) PARTITION BY HASH (program_id, country);

DO $$
BEGIN
    FOR i IN 0..60 LOOP
        EXECUTE format(
            'CREATE TABLE conflict.claim_names_%s PARTITION OF conflict.claim_names'
            ' FOR VALUES WITH (MODULUS 61, REMAINDER %s)', i, i);
    END LOOP;
END
$$;

-- a short pending list: new names are merged in batches, and a search reads at most 256 kB of them
CREATE INDEX claim_names_trgm ON conflict.claim_names USING gin (name_key gin_trgm_ops)
    WITH (fastupdate = on, gin_pending_list_limit = 256);
-- Status in the keys: the heap pages of closed claims (most of a long-lived program's) are not read
-- when looking for live ones, whichever key matched.
CREATE INDEX claims_program_name ON conflict.claims (program_id, name_key, status);
DROP INDEX conflict.claims_domain;
CREATE INDEX claims_domain ON conflict.claims (program_id, domain, status) WHERE domain IS NOT NULL;
DROP INDEX conflict.claims_duns;
CREATE INDEX claims_duns ON conflict.claims (program_id, duns, status) WHERE duns IS NOT NULL;
DROP INDEX conflict.claims_tax_id;
CREATE INDEX claims_tax_id ON conflict.claims (program_id, tax_id, status) WHERE tax_id IS NOT NULL;

-- The names of a program in a country whose pg_trgm similarity to `probe` reaches `threshold`.
-- `%` asks the GIN index at pg_trgm.similarity_threshold, set here for the rest of the transaction;
-- similarity() >= threshold then applies the rule exactly. Only the trigram index may answer:
-- a partition that autovacuum has not analyzed yet looks small to the planner, but reading all of
-- its names costs a similarity() per name.
CREATE FUNCTION conflict.similar_names(program text, country_code text, probe text, threshold float8)
RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off SET enable_indexscan = off SET enable_indexonlyscan = off AS $$
BEGIN
    PERFORM set_config('pg_trgm.similarity_threshold', threshold::text, true);
    RETURN ARRAY(
        SELECT n.name_key FROM conflict.claim_names n
        WHERE n.program_id = program AND n.country = country_code
          AND n.name_key % probe AND similarity(n.name_key, probe) >= threshold
    );
END
$$;

CREATE FUNCTION conflict.claim_names_add_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH added AS (
        INSERT INTO conflict.claim_name_keys (program_id, country, name_key)
        SELECT DISTINCT program_id, country, name_key FROM inserted
        ON CONFLICT DO NOTHING
        RETURNING program_id, country, name_key
    )
    INSERT INTO conflict.claim_names (program_id, country, name_key) SELECT * FROM added;
    RETURN NULL;
END
$$;

CREATE FUNCTION conflict.claim_names_add_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    WITH added AS (
        INSERT INTO conflict.claim_name_keys (program_id, country, name_key)
        VALUES (NEW.program_id, NEW.country, NEW.name_key)
        ON CONFLICT DO NOTHING
        RETURNING program_id, country, name_key
    )
    INSERT INTO conflict.claim_names (program_id, country, name_key) SELECT * FROM added;
    RETURN NULL;
END
$$;

CREATE FUNCTION conflict.claim_names_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE conflict.claim_name_keys, conflict.claim_names;
    RETURN NULL;
END
$$;

CREATE TRIGGER claim_names_insert AFTER INSERT ON conflict.claims
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION conflict.claim_names_add_inserted();
CREATE TRIGGER claim_names_update AFTER UPDATE OF program_id, country, name_key ON conflict.claims
    FOR EACH ROW
    WHEN (OLD.program_id IS DISTINCT FROM NEW.program_id OR OLD.country IS DISTINCT FROM NEW.country
          OR OLD.name_key IS DISTINCT FROM NEW.name_key)
    EXECUTE FUNCTION conflict.claim_names_add_updated();
CREATE TRIGGER claim_names_truncate AFTER TRUNCATE ON conflict.claims
    FOR EACH STATEMENT EXECUTE FUNCTION conflict.claim_names_truncate();

INSERT INTO conflict.claim_name_keys (program_id, country, name_key)
SELECT DISTINCT program_id, country, name_key FROM conflict.claims;
INSERT INTO conflict.claim_names (program_id, country, name_key)
SELECT program_id, country, name_key FROM conflict.claim_name_keys;
