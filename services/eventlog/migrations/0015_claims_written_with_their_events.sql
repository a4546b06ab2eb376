-- A run of submissions (services/conflict/submission_runs.py) writes its claims, as decided, in the
-- statement of its first append (the event store's `also` expression): the claims and the events
-- in one round trip. The run's other appends carry the same expression with no claims, so that
-- all its appends stay one statement (one pipeline); it then returns at once. A claim stored
-- already fails the statement (its primary key), and with it the run, which is then decided one
-- by one. The claims are inserted in the order given, so their sequence numbers follow it.
CREATE FUNCTION conflict.insert_claims(p_claims jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    inserted integer;
BEGIN
    IF jsonb_array_length(p_claims) = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO conflict.claims (
        claim_id, kind, program_id, partner_id, tier, deal_type, name_key, country, domain, duns, tax_id,
        products, amount, currency, submitted_at, status, customer, protected_until, approved_at, conflict_id,
        attribution_percent, extensions, appeals, decided_at, decided_by, decided_level, policy_version)
    SELECT c.claim_id, c.kind, c.program_id, c.partner_id, c.tier, c.deal_type, c.name_key, c.country, c.domain,
        c.duns, c.tax_id, c.products, c.amount, c.currency, c.submitted_at, c.status, c.customer,
        c.protected_until, c.approved_at, c.conflict_id, c.attribution_percent, c.extensions, c.appeals,
        c.decided_at, c.decided_by, c.decided_level, c.policy_version
    FROM jsonb_populate_recordset(NULL::conflict.claims, p_claims) WITH ORDINALITY AS c
    ORDER BY c.ordinality;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    RETURN inserted;
END
$$;
