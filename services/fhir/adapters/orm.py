"""The FHIR facade's tables. It keeps no melding or consent of its own (it speaks for the v1 APIs); its
database holds the frame every service has: the outbox and the audit log."""

from shared.audit import audit_tables
from shared.db import new_metadata
from shared.messaging.outbox import outbox_table

metadata = new_metadata()

outbox = outbox_table(metadata)
audit = audit_tables(metadata)
