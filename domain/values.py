"""Value types of SPEC sections 4 and 6: classifications, confidentiality, grades, statuses."""

from __future__ import annotations

from enum import StrEnum


class Confidentiality(StrEnum):
    REGULAR = "regular"
    CONFIDENTIAL = "confidential"
    TOP_SECRET = "top_secret"
    ABSOLUTE_SECRET = "absolute_secret"

    @property
    def is_classified(self) -> bool:
        return self in (Confidentiality.CONFIDENTIAL, Confidentiality.TOP_SECRET)

    @property
    def rank(self) -> int:
        return list(Confidentiality).index(self)


class Priority(StrEnum):
    KEY = "key"
    REGULAR = "regular"
    URGENT = "urgent"


class ScopeKind(StrEnum):
    NATIONAL = "national"
    SECTOR = "sector"
    REGIONAL = "regional"


class AgencyKind(StrEnum):
    CENTRAL_BODY = "central_body"
    PROVINCIAL_COMMITTEE = "provincial_committee"
    MUNICIPAL_COMMITTEE = "municipal_committee"
    OTHER = "other"


class UpdateEvery(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"

    @property
    def months(self) -> int:
        return {"month": 1, "quarter": 3, "year": 12}[self.value]


class Grade(StrEnum):
    """Evaluation classes of Art. 17.1.c."""

    EXCELLENT = "excellent"
    COMPLETED = "completed"
    NOT_FULLY_COMPLETED = "not_fully_completed"
    NOT_COMPLETED = "not_completed"


class FindingKind(StrEnum):
    VIOLATION = "violation"
    DELAY = "delay"
    DATA_ERROR = "data_error"


class Lifecycle(StrEnum):
    AWAITING_RECEIPT = "awaiting_receipt"
    RECEIVED = "received"
    OBJECTED = "objected"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Status(StrEnum):
    """Derived status by result (SPEC section 4), plus lifecycle states."""

    COMPLETED_ON_TIME = "completed_on_time"
    COMPLETED_LATE = "completed_late"
    IN_PROGRESS_ON_TIME = "in_progress_on_time"
    IN_PROGRESS_OVERDUE = "in_progress_overdue"
    NOT_STARTED_ON_TIME = "not_started_on_time"
    NOT_STARTED_OVERDUE = "not_started_overdue"
    AWAITING_RECEIPT = "awaiting_receipt"
    OBJECTED = "objected"
    CANCELLED = "cancelled"


class Cadence(StrEnum):
    """Progress-update cadence of Art. 6.2.b (SPEC section 5)."""

    SHORT = "under_1_month"
    MEDIUM = "1_to_3_months"
    LONG = "3_to_6_months"
    PERIODIC = "periodic"


# Fields that carry task or directive content: forbidden at Confidential and Top Secret (SPEC 6).
CONTENT_FIELDS = (
    "summary",
    "content",
    "note",
    "products",
    "result",
    "causes",
    "proposals",
    "explanation",
    "description",
    "comment",
    "message",
)
