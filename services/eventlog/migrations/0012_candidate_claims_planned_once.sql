-- The candidate query of collision detection (services/conflict/name_index.py), planned once per
-- session instead of once per call.
--
-- Its best plan does not depend on the values: one bitmap heap scan over the OR of four index
-- reads (domain, DUNS, tax id, the similar names), an absent key costing an index search of none.
-- Planned afresh for each call (a custom plan, which the plan cache kept choosing: the generic
-- plan's estimates for an array of unknown length look dearer) it cost 0.1 to 0.2 ms, about as
-- much as running it on a program of a million claims. The plan is still made again whenever the
-- claims' statistics change (ANALYZE invalidates it), as a custom plan would follow them.
-- `sharing` NULL: any products.
CREATE FUNCTION conflict.candidate_claims(
    program text, own_claim text, statuses text[], domain_key text, duns_key text, tax_key text,
    country_code text, names text[], sharing text[]
) RETURNS SETOF conflict.claims
LANGUAGE sql STABLE
SET plan_cache_mode = force_generic_plan AS $$
    SELECT * FROM conflict.claims c
    WHERE c.program_id = program AND c.claim_id <> own_claim AND c.status = ANY(statuses) AND (
        c.domain = domain_key OR c.duns = duns_key OR c.tax_id = tax_key
        OR (c.country = country_code AND c.name_key = ANY(names))
    ) AND (sharing IS NULL OR c.products && sharing)
$$;
