-- A run of submissions (services/conflict/submission_runs.py) writes the expiry timers of the
-- ownership it grants to its own claims in the statement of its first append, with the claims
-- (0015): one round trip fewer for every run that approves. Each element is what
-- `timers.expiry_statement` takes, by name: program_id, claim_id, until_text (the window end as the
-- timer ids spell it), until, now, warning_days (the default when the program's latest policy says
-- nothing); the timers are those that statement writes.
CREATE FUNCTION conflict.insert_expiry_timers(p_timers jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    inserted integer;
BEGIN
    IF jsonb_array_length(p_timers) = 0 THEN
        RETURN 0;
    END IF;
    WITH t AS (
        SELECT x.program_id, x.claim_id, x.until_text, x.until, x.now,
               x.until - make_interval(secs => 86400 * coalesce(
                   (SELECT (p.policy->>'expiry_warning_days')::float8 FROM conflict.policies p
                    WHERE p.program_id = x.program_id ORDER BY p.version DESC LIMIT 1), x.warning_days)) AS warning_at
        FROM jsonb_to_recordset(p_timers)
            AS x(program_id text, claim_id text, until_text text, until timestamptz, now timestamptz, warning_days float8)
    )
    INSERT INTO conflict.timers (timer_id, program_id, kind, ref_id, due_at)
    SELECT 'expiry:' || t.claim_id || ':' || t.until_text, t.program_id, 'expiry', t.claim_id, t.until FROM t
    UNION ALL
    SELECT 'expiring:' || t.claim_id || ':' || t.until_text, t.program_id, 'expiring', t.claim_id, t.warning_at
    FROM t WHERE t.warning_at > t.now
    ON CONFLICT (timer_id) DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END
$$;
