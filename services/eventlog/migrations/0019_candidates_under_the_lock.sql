-- The candidate claims of a batch's submissions, read in the statement that takes the program's lock
-- (services/conflict/recorder.py, mark_and_lock_program), after the names that arrived (0017, 0018).
-- Probe i (from 0) asks `conflict.candidate_claims` (0012) with its own claim, keys, country, the
-- similar names known before the statement (p_names: a JSON array of arrays) and the products one of
-- which a candidate must hold (p_sharing: an array, or null for any). Called lateral to the lock's
-- row (`p_after_lock`, otherwise unused), it runs once the lock is held; each probe's query is a
-- statement of its own in this VOLATILE function, so it takes its snapshot then, and sees the
-- claims of the transaction that held the lock before.
CREATE FUNCTION conflict.candidates_under_lock(
    p_after_lock integer, p_program text, p_statuses text[], p_own text[], p_domains text[], p_duns text[],
    p_taxes text[], p_countries text[], p_names jsonb, p_sharing jsonb)
RETURNS TABLE (probe integer, claim conflict.claims)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_own, 1), 0) LOOP
        RETURN QUERY
            SELECT i - 1, c FROM conflict.candidate_claims(
                p_program, p_own[i], p_statuses, p_domains[i], p_duns[i], p_taxes[i], p_countries[i],
                ARRAY(SELECT jsonb_array_elements_text(p_names -> (i - 1))),
                CASE WHEN jsonb_typeof(p_sharing -> (i - 1)) = 'array'
                     THEN ARRAY(SELECT jsonb_array_elements_text(p_sharing -> (i - 1))) END
            ) AS c ORDER BY c.seq;
    END LOOP;
END
$$;
