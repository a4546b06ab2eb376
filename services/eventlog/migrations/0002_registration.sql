-- The registration service's read models (rebuildable from its event log) and idempotency keys.
CREATE TABLE registration.programs (
    program_id text PRIMARY KEY,
    name text NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE registration.partners (
    program_id text NOT NULL,
    partner_id text NOT NULL,
    name text NOT NULL,
    tier text NOT NULL,
    type text NOT NULL,
    enrolled_at timestamptz NOT NULL,
    PRIMARY KEY (program_id, partner_id)
);

CREATE TABLE registration.registrations (
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    registration_id text PRIMARY KEY,
    program_id text NOT NULL,
    partner_id text NOT NULL,
    external_ref text,
    status text NOT NULL,
    version integer NOT NULL,
    resource jsonb NOT NULL
);
CREATE INDEX ON registration.registrations (program_id, partner_id, seq);
CREATE INDEX ON registration.registrations (program_id, seq);
-- external_ref is unique per partner among its live registrations, enforced by the database
CREATE UNIQUE INDEX registrations_live_external_ref ON registration.registrations (program_id, partner_id, external_ref)
    WHERE external_ref IS NOT NULL
      AND status IN ('pending', 'pending_review', 'info_requested', 'approved', 'waitlisted', 'under_review');

CREATE TABLE registration.idempotency_keys (
    program_id text NOT NULL,
    partner_id text NOT NULL,
    key text NOT NULL,
    request_hash text NOT NULL,
    status_code integer NOT NULL,
    headers jsonb NOT NULL,
    body bytea NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (program_id, partner_id, key)
);
