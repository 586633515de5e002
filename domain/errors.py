"""The domain's error hierarchy: every refusal names the field and the rule it broke."""

from __future__ import annotations


class DomainError(Exception):
    """A command was refused. ``field`` is what was wrong, ``rule`` the rule it broke."""

    kind = "refused"

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule

    def to_dict(self) -> dict[str, str]:
        return {"error": self.kind, "field": self.field, "rule": self.rule}


class ValidationError(DomainError):
    """Input does not have the required form (missing, malformed, out of range)."""

    kind = "invalid"


class InvariantViolation(DomainError):
    """The command is well-formed but the aggregate's state forbids it."""

    kind = "invariant"


class NotAuthorized(DomainError):
    """The actor's role or agency may not do this (SPEC section 1)."""

    kind = "not_authorized"


class ConfidentialityViolation(DomainError):
    """The confidentiality level forbids this field or this data (SPEC section 6)."""

    kind = "confidentiality"


class SignatureInvalid(DomainError):
    """A digital signature is missing, malformed, untrusted or does not verify."""

    kind = "signature"


class NotFound(DomainError):
    """The referenced aggregate does not exist."""

    kind = "not_found"


class Conflict(DomainError):
    """The command clashes with recorded facts (duplicate key, reused command id)."""

    kind = "conflict"


class CalendarRangeError(DomainError):
    """An instant lies outside the years the working calendar covers."""

    kind = "calendar_range"
