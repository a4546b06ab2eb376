-- The names of a program that arrived in some of its countries after given numbers (each country
-- with its own), as one row of arrays in (country, seq) order, and the database's oid. The intake
-- reads them in the statement that marks its batch and takes the program's lock
-- (services/conflict/recorder.py, mark_and_lock_program): called lateral to the lock's row
-- (`p_after_lock`, otherwise unused), it runs once the lock is held, and its query, a statement of
-- its own in this VOLATILE function, takes its snapshot then, so it sees the names of the
-- transaction that held the lock before (as `lock_program` sees its policy).
CREATE FUNCTION conflict.names_arrived(
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
    JOIN conflict.claim_name_keys k ON k.program_id = p_program_id AND k.country = w.country AND k.seq > w.since;
END
$$;
