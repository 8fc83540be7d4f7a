"""Route maps (routekaarten): a gemeente's coalition agreement on which recipient type receives which risk
domains, whether the note goes along, and how soon contact must follow. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta


@dataclass(frozen=True)
class RecipientRule:
    """What one recipient type receives in a gemeente: the risk domains admitted (None: all) and the note."""

    risk_domains: frozenset[str] | None = None
    note: bool = True

    def admitted(self, domains: Sequence[str]) -> tuple[str, ...]:
        """The melding's domains this recipient may receive, in the melding's order."""
        if self.risk_domains is None:
            return tuple(domains)
        return tuple(d for d in domains if d in self.risk_domains)


DEFAULT_DEADLINES = {"regular": timedelta(days=14), "urgent": timedelta(days=2)}


@dataclass(frozen=True)
class RouteMap:
    """One version of a gemeente's route map. A recipient type absent from `recipients` receives nothing."""

    effective_from: date | None  # None: the platform's default, in force wherever a gemeente has none
    recipients: Mapping[str, RecipientRule]
    contact_deadline: Mapping[str, timedelta] = field(default_factory=lambda: dict(DEFAULT_DEADLINES))

    def rule_for(self, recipient_type: str) -> RecipientRule | None:
        return self.recipients.get(recipient_type)

    def share_for(self, recipient_type: str, domains: Sequence[str]) -> tuple[RecipientRule, tuple[str, ...]] | None:
        """This type's rule and what it admits of the melding's domains; None when the route map gives the type
        none of them (the type is skipped)."""
        rule = self.rule_for(recipient_type)
        admitted = rule.admitted(domains) if rule is not None else ()
        return (rule, admitted) if rule is not None and admitted else None

    def deadline_for(self, urgency: str) -> timedelta:
        return self.contact_deadline.get(urgency, DEFAULT_DEADLINES[urgency])

    @property
    def is_default(self) -> bool:
        return self.effective_from is None


# A gemeente without a route map: every type receives every domain and the note (contract v1.1).
DEFAULT_ROUTE_MAP = RouteMap(
    effective_from=None, recipients={"jgz": RecipientRule(), "wijkteam": RecipientRule()}, contact_deadline={}
)


def in_force(versions: Sequence[RouteMap], today: date) -> RouteMap:
    """The version in force on `today`: the latest that took effect by then; the default if none did.
    A version scheduled for a later day does not apply before it."""
    started = [v for v in versions if v.effective_from is not None and v.effective_from <= today]
    return max(started, key=lambda v: v.effective_from or date.min) if started else DEFAULT_ROUTE_MAP
