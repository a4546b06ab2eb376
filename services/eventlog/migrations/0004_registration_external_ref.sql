-- external_ref is unique among a partner's live registrations when the partner submits (checked
-- under a lock by the registration service). A status the conflict service decides later is always
-- recorded, even one that makes a registration live again after its reference was reused, so the
-- read model no longer refuses two live rows with one reference; it only needs to find them.
DROP INDEX registration.registrations_live_external_ref;
CREATE INDEX registrations_live_external_ref ON registration.registrations (program_id, partner_id, external_ref)
    WHERE external_ref IS NOT NULL
      AND status IN ('pending', 'pending_review', 'info_requested', 'approved', 'waitlisted', 'under_review');
