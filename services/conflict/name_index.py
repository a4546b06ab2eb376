"""Which claims of a program may name the same customer: the candidate query of the matching indexes.

Equal domain, DUNS or tax id come from b-tree indexes. Similar names come from
``conflict.claim_names`` (migration 0006): each distinct name of the program's claims in the
claim's country once, in a partition of its own program and country with a GIN trigram index, so
the trigram search reads posting lists of one country's distinct names rather than of every claim
of the program. The names found lead to their claims through a b-tree on (program_id, name_key,
status).

``conflict.similar_names`` asks the GIN index with `%` at the policy's threshold (it sets
pg_trgm.similarity_threshold for the rest of the transaction) and ``similarity() >= threshold``
then applies the rule exactly. Nothing stored depends on the threshold, so a policy may change it
at any time: no claim that the pure rules would accept is missed.
"""

from __future__ import annotations

# $1 program, $2 own claim id, $3 statuses, $4 domain, $5 duns, $6 tax id, $7 country, $8 name key,
# $9 threshold. The names come back as one array (an init plan) for the claims' (program_id,
# name_key, status) index, so the whole OR stays one bitmap scan over four small index reads.
CANDIDATE_FILTER = """
    WHERE program_id = $1 AND claim_id <> $2 AND status = ANY($3::text[]) AND (
        domain = $4 OR duns = $5 OR tax_id = $6
        OR (country = $7 AND name_key = ANY((SELECT conflict.similar_names($1, $7, $8, $9::float8))::text[]))
    )
"""
