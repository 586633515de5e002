"""Who acts: roles of SPEC section 1 and the actor value object recorded on every event."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from domain.errors import ValidationError


class Role(StrEnum):
    CENTRAL_OFFICE = "central_office"
    ASSIGNEE = "assignee"
    APPROVER = "approver"
    MONITOR = "monitor"
    INSPECTOR = "inspector"
    AUDITOR = "auditor"
    SYSTEM = "system"


_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Actor:
    """An agency's user acting in a role. Recorded on every event."""

    role: Role
    agency: str
    user: str

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            try:
                object.__setattr__(self, "role", Role(self.role))
            except ValueError:
                allowed = ", ".join(r.value for r in Role)
                raise ValidationError("actor.role", f"must be one of {allowed}") from None
        if not _CODE.match(self.agency or ""):
            raise ValidationError("actor.agency", "must be an agency code of letters, digits, '.', '_' or '-'")
        if not _CODE.match(self.user or ""):
            raise ValidationError("actor.user", "must be a user id of letters, digits, '.', '_' or '-'")

    @classmethod
    def parse(cls, text: str) -> Actor:
        """Parse ``ROLE:AGENCY:USER``."""
        parts = (text or "").split(":")
        if len(parts) != 3:
            raise ValidationError("actor", "must be ROLE:AGENCY:USER, e.g. central_office:VPTW:an")
        return cls(Role(parts[0]) if parts[0] in Role._value2member_map_ else parts[0], parts[1], parts[2])  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role.value, "agency": self.agency, "user": self.user}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Actor:
        return cls(Role(data["role"]), data["agency"], data["user"])

    def __str__(self) -> str:
        return f"{self.role.value}:{self.agency}:{self.user}"
