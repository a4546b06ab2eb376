-- A status recorded later rewrites a registration's read-model row and moves its stream's head.
-- PostgreSQL writes such an update in place, without a new entry in any index of the table (a
-- heap-only update), when no index covers a changed column and the row's page has room for the
-- new version. So:
-- - the external_ref index no longer names the live statuses in its predicate (a status change
--   then touched all five indexes of the read model); the live check reads the status from the
--   row, among the few rows of one partner with one reference;
-- - both tables leave room on each page for the versions a status writes.
DROP INDEX registration.registrations_live_external_ref;
CREATE INDEX registrations_external_ref ON registration.registrations (program_id, partner_id, external_ref)
    WHERE external_ref IS NOT NULL;
ALTER TABLE registration.registrations SET (fillfactor = 70);
ALTER TABLE registration.streams SET (fillfactor = 70);
