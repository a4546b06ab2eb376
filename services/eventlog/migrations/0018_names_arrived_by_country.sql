-- The names that arrived (0017), read country by country through the arrival index: each country's
-- names after its own number, an index range scan of just those. The join of 0017 left the planner
-- free to hash the countries and scan every name of the program, filtering the numbers afterwards
-- (the number each country starts after is unknown to it, so it expects a third of the names): a
-- program of 6,000 names cost 1.2 ms a call, under the program's lock, where the range scans cost
-- a few hundredths. LATERAL makes each country's read a scan of its own, parameterized by it.
CREATE OR REPLACE FUNCTION conflict.names_arrived(
    p_program_id text, p_countries text[], p_since bigint[], p_after_lock integer,
    OUT database bigint, OUT countries text[], OUT seqs bigint[], OUT names text[])
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT (SELECT d.oid::bigint FROM pg_database d WHERE d.datname = current_database()),
           array_agg(w.country ORDER BY w.country, k.seq),
           array_agg(k.seq ORDER BY w.country, k.seq),
           array_agg(k.name_key ORDER BY w.country, k.seq)
    INTO database, countries, seqs, names
    FROM unnest(p_countries, p_since) AS w(country, since)
    CROSS JOIN LATERAL (
        SELECT a.seq, a.name_key FROM conflict.claim_name_keys a
        WHERE a.program_id = p_program_id AND a.country = w.country AND a.seq > w.since
        ORDER BY a.seq
    ) AS k;
END
$$;
