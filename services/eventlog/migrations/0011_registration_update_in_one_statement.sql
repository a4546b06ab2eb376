-- A registration's later events (amendments, withdrawals, statuses the conflict service decided)
-- are written in one statement too: the event appended at its expected version and, through this
-- function, the read model that follows from it (no external_ref check: a status decided later is
-- always recorded, see 0004).
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
