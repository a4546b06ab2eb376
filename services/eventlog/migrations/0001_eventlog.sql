-- The event-sourcing machinery, once per service schema: an append-only event log, stream heads
-- for optimistic concurrency, the transactional outbox, and consumer checkpoints.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE OR REPLACE FUNCTION public.dealreg_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on %.% is refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

DO $$
DECLARE s text;
BEGIN
    FOREACH s IN ARRAY ARRAY['registration', 'conflict'] LOOP
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', s);
        EXECUTE format($f$
            CREATE TABLE %I.events (
                global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_id uuid NOT NULL UNIQUE,
                stream_id text NOT NULL,
                stream_version integer NOT NULL,
                event_type text NOT NULL,
                program_id text NOT NULL,
                data jsonb NOT NULL,
                subject text NOT NULL,
                correlation_id text,
                causation_id text,
                actor text,
                traceparent text,
                occurred_at timestamptz NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
                UNIQUE (stream_id, stream_version)
            )$f$, s);
        EXECUTE format('CREATE INDEX ON %I.events (tx_id, global_position)', s);
        EXECUTE format($f$
            CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON %I.events
            FOR EACH ROW EXECUTE FUNCTION public.dealreg_refuse_change()$f$, s);
        EXECUTE format($f$
            CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON %I.events
            FOR EACH STATEMENT EXECUTE FUNCTION public.dealreg_refuse_change()$f$, s);
        EXECUTE format($f$
            CREATE TABLE %I.streams (
                stream_id text PRIMARY KEY,
                version integer NOT NULL
            )$f$, s);
        EXECUTE format($f$
            CREATE TABLE %I.outbox (
                global_position bigint PRIMARY KEY,
                subject text NOT NULL
            )$f$, s);
        EXECUTE format($f$
            CREATE TABLE %I.processed (
                consumer text NOT NULL,
                event_id uuid NOT NULL,
                processed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (consumer, event_id)
            )$f$, s);
        EXECUTE format($f$
            CREATE TABLE %I.checkpoints (
                name text PRIMARY KEY,
                tx_id xid8 NOT NULL,
                global_position bigint NOT NULL
            )$f$, s);
    END LOOP;
END;
$$;
