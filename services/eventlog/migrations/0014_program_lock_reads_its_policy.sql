-- A deciding transaction takes its program's lock, then reads the policy in force: one round trip
-- for both (services/conflict/recorder.py, lock_program). The lock is taken first; the read is a
-- statement of its own in this VOLATILE function, so under READ COMMITTED it takes its snapshot once
-- the lock is held and sees a policy published by the transaction that held the lock before.
CREATE FUNCTION conflict.lock_program(p_key bigint, p_program_id text)
RETURNS TABLE (version integer, policy text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_key);
    RETURN QUERY
        SELECT p.version, p.policy::text FROM conflict.policies p
        WHERE p.program_id = p_program_id ORDER BY p.version DESC LIMIT 1;
END
$$;
