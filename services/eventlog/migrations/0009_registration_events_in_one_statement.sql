-- A registration's event is written in one statement (services/registration/repository.py): the
-- stream head, the event and its outbox row, and, through these functions evaluated in the same
-- statement once the head moved, the registration's read model.
--
-- record_registration writes the read model of any event. A status decided later is always
-- recorded, even one that makes a registration live again after its reference was reused (0004).
CREATE FUNCTION registration.record_registration(
    p_registration_id text,
    p_program_id text,
    p_partner_id text,
    p_external_ref text,
    p_status text,
    p_version integer,
    p_resource jsonb
) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    INSERT INTO registration.registrations
        (registration_id, program_id, partner_id, external_ref, status, version, resource)
    VALUES (p_registration_id, p_program_id, p_partner_id, p_external_ref, p_status, p_version, p_resource)
    ON CONFLICT (registration_id) DO UPDATE SET
        external_ref = excluded.external_ref, status = excluded.status,
        version = excluded.version, resource = excluded.resource
    RETURNING true;
$$;

-- record_submission refuses a submission whose external_ref another live registration of the
-- partner uses (SQLSTATE DR409, the holder's id in DETAIL; the error undoes the whole statement).
-- The lock on the reference is taken first and the check then reads with a snapshot of its own
-- (each statement of a VOLATILE function takes one under READ COMMITTED), so concurrent
-- submissions of one reference see each other's commits.
CREATE FUNCTION registration.record_submission(
    p_registration_id text,
    p_program_id text,
    p_partner_id text,
    p_external_ref text,
    p_status text,
    p_version integer,
    p_resource jsonb
) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    holder text;
BEGIN
    IF p_external_ref IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(
            hashtextextended(p_program_id || '/' || p_partner_id || '/' || p_external_ref, 0));
        SELECT registration_id INTO holder FROM registration.registrations
        WHERE program_id = p_program_id AND partner_id = p_partner_id AND external_ref = p_external_ref
          AND registration_id <> p_registration_id
          AND status IN ('pending', 'pending_review', 'info_requested', 'approved', 'waitlisted', 'under_review')
        LIMIT 1;
        IF holder IS NOT NULL THEN
            RAISE EXCEPTION 'external_ref % is in use', p_external_ref USING ERRCODE = 'DR409', DETAIL = holder;
        END IF;
    END IF;
    RETURN registration.record_registration(
        p_registration_id, p_program_id, p_partner_id, p_external_ref, p_status, p_version, p_resource);
END
$$;
