-- The statistics keeper (services/eventlog/statistics.py) analyzes tables as they grow. No query
-- filters, joins or sorts on the documents they carry, and sampling them is most of an ANALYZE
-- (registration.events: 210 ms of 30,000 sampled rows, mostly reading their JSON): the planner
-- keeps no statistics for them.
ALTER TABLE registration.events ALTER COLUMN data SET STATISTICS 0;
ALTER TABLE conflict.events ALTER COLUMN data SET STATISTICS 0;
ALTER TABLE registration.registrations ALTER COLUMN resource SET STATISTICS 0;
ALTER TABLE conflict.claims ALTER COLUMN customer SET STATISTICS 0;
