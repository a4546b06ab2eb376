-- A submission states its partner's tier and type (the event carries them). The service may take
-- them from its cache of partners, so the statement that records the submission checks them: a
-- partner enrolled anew with another tier or type since is refused with SQLSTATE DR412, and the
-- service reads the partner again and submits once more. The rest is record_submission (0009).
CREATE FUNCTION registration.record_submission_of(
    p_registration_id text,
    p_program_id text,
    p_partner_id text,
    p_external_ref text,
    p_status text,
    p_version integer,
    p_resource jsonb,
    p_partner_tier text,
    p_partner_type text
) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM FROM registration.partners
    WHERE program_id = p_program_id AND partner_id = p_partner_id
      AND tier = p_partner_tier AND type = p_partner_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'partner % of program % is not as the submission states', p_partner_id, p_program_id
            USING ERRCODE = 'DR412';
    END IF;
    RETURN registration.record_submission(
        p_registration_id, p_program_id, p_partner_id, p_external_ref, p_status, p_version, p_resource);
END
$$;
