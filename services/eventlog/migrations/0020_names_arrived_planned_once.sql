-- conflict.names_arrived (0018) runs in the statement that takes a program's lock, once for every
-- batch the intake applies. PL/pgSQL caches its statement's plan, but the cache compared each custom
-- plan (made for the call's arrays) with a generic one costed for arrays of unknown length, found the
-- generic dearer, and planned the statement anew on every call: 0.16 ms of planning for 0.07 ms of
-- reading. The generic plan is the same LATERAL range scan of the arrival index, one per country
-- asked (0018; test_the_names_that_arrived_are_read_through_the_arrival_index_alone checks it).
ALTER FUNCTION conflict.names_arrived(text, text[], bigint[], integer) SET plan_cache_mode = force_generic_plan;
