-- Every name search now goes through conflict.claim_names (0006), the intake's and the ownership
-- query's alike: the per-claim trigram index only cost each claim insert its GIN entries.
DROP INDEX IF EXISTS conflict.claims_name_trgm;
