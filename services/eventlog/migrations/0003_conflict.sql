-- The conflict service's projections (rebuildable from the logs), its policies and durable timers.
CREATE TABLE conflict.claims (
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    claim_id text PRIMARY KEY,
    kind text NOT NULL,
    program_id text NOT NULL,
    partner_id text,
    tier text,
    deal_type text,
    name_key text NOT NULL,
    country text NOT NULL,
    domain text,
    duns text,
    tax_id text,
    products text[] NOT NULL,
    amount numeric,
    currency text,
    submitted_at timestamptz NOT NULL,
    status text NOT NULL,
    protected_until timestamptz,
    approved_at timestamptz,
    conflict_id text,
    attribution_percent integer,
    extensions integer NOT NULL DEFAULT 0,
    appeals integer NOT NULL DEFAULT 0,
    decided_at timestamptz,
    decided_by text,
    decided_level integer,
    policy_version integer NOT NULL DEFAULT 0,
    customer jsonb NOT NULL DEFAULT '{}'
);
-- matching is indexed: equality keys per program, trigram similarity on normalized names
CREATE INDEX claims_domain ON conflict.claims (program_id, domain) WHERE domain IS NOT NULL;
CREATE INDEX claims_duns ON conflict.claims (program_id, duns) WHERE duns IS NOT NULL;
CREATE INDEX claims_tax_id ON conflict.claims (program_id, tax_id) WHERE tax_id IS NOT NULL;
CREATE INDEX claims_name_trgm ON conflict.claims USING gin (name_key gin_trgm_ops);
CREATE INDEX claims_program_status ON conflict.claims (program_id, status);

CREATE TABLE conflict.conflicts (
    conflict_id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    program_id text NOT NULL,
    state text NOT NULL,
    level integer NOT NULL,
    authority_role text,
    due_at timestamptz,
    policy_version integer NOT NULL,
    opened_at timestamptz NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX ON conflict.conflicts (program_id, state, seq);

CREATE TABLE conflict.policies (
    program_id text NOT NULL,
    version integer NOT NULL,
    policy jsonb NOT NULL,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (program_id, version)
);

CREATE TABLE conflict.timers (
    timer_id text PRIMARY KEY,
    program_id text NOT NULL,
    kind text NOT NULL,
    ref_id text NOT NULL,
    due_at timestamptz NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX ON conflict.timers (due_at);
CREATE INDEX ON conflict.timers (ref_id);

-- open tie groups (tie_window_minutes > 0): decided as a whole when the window closes
CREATE TABLE conflict.tie_groups (
    group_id text PRIMARY KEY,
    program_id text NOT NULL,
    closes_at timestamptz NOT NULL,
    members text[] NOT NULL
);
