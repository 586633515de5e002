"""Settings: the one place that reads the environment (TASKLEDGER_*)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All configuration; every field can be set as TASKLEDGER_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="TASKLEDGER_", extra="ignore")

    home: Path = Field(Path("./var"), description="Data directory: event store, dev PKI, ClickHouse")
    database_url: str | None = Field(
        None, description="postgresql://user@host:port/db for PostgreSQL; unset = SQLite under home"
    )
    postgres_schema: str | None = Field(None, description="PostgreSQL schema for the event tables")
    cipher_key: str | None = Field(
        None, description="base64 AES key (16/24/32 bytes): encrypts the event store at rest"
    )
    trusted_roots: str | None = Field(
        None, description="PEM file(s) of trusted signing roots, ':'-separated; default home/pki/trusted_roots.pem"
    )
    calendar_overrides: Path | None = Field(
        None, description="JSON file {'days_off': [...], 'working_days': [...]} of announced changes"
    )
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers; unset = the dev broker on 127.0.0.1:broker_port"
    )
    broker_port: int = Field(9092, description="port of the dev broker (taskledger broker)")
    events_partitions: int = Field(6, description="partitions of taskledger.events.v1 when the relay creates it")
    eventsourcing_module: str | None = Field(
        None,
        validation_alias="PERSISTENCE_MODULE",
        description="when set (and no database_url), eventsourcing's own variables configure the store",
    )
    clickhouse_url: str | None = Field(
        None,
        description="chdb://<dir> (default chdb://$TASKLEDGER_HOME/olap) or http(s)://user:pw@host:port/db",
    )
    olap_port: int = Field(
        0,
        description="port of the worker's read-only ClickHouse-HTTP endpoint on 127.0.0.1 (chdb store); 0 = ephemeral",
    )
    worker_batch: int = Field(
        10_000,
        ge=1,
        description="most events the stream worker takes per batch (it waits at most 0.5 s to fill one): "
        "larger batches give more throughput, smaller ones less work consumed again after a crash",
    )
    worker_evaluators: int = Field(
        2,
        ge=0,
        description="processes the stream worker's projector shards the task evaluation over (task id mod N); "
        "0 = it evaluates itself. Default 2: measured best on 2 cores (bench/README.md)",
    )
    audit_checkpoint_every: int = Field(
        10_000, description="seal a signed audit checkpoint every N events (taskledger up, demo); 0 = only on demand"
    )
    alert_warning_share: float = Field(
        0.5, description="share of a clock's working time after which its 'warning' alert is raised"
    )
    alert_due_soon_share: float = Field(
        0.9, description="share of a clock's working time after which its 'due_soon' alert is raised"
    )
    actor: str | None = Field(None, description="default --actor ROLE:AGENCY:USER")
    clock: str | None = Field(None, description="fixed or accelerated clock: ISO instant[@speed]")

    def alert_policy(self) -> Any:
        """``domain.alerts.AlertPolicy`` of TASKLEDGER_ALERT_WARNING_SHARE / TASKLEDGER_ALERT_DUE_SOON_SHARE
        (the worker and ``projections rebuild`` must use the same one)."""
        from domain.alerts import AlertPolicy
        from domain.errors import ValidationError

        try:
            return AlertPolicy(self.alert_warning_share, self.alert_due_soon_share)
        except ValidationError as error:
            name = {"warning_share": "alert_warning_share", "due_soon_share": "alert_due_soon_share"}.get(
                error.field, error.field
            )
            raise ValidationError(f"TASKLEDGER_{name.upper()}", error.rule) from None

    @property
    def sqlite_path(self) -> Path:
        return self.home / "taskledger.sqlite"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def pki_dir(self) -> Path:
        return self.home / "pki"

    def trusted_root_paths(self) -> list[Path]:
        if self.trusted_roots:
            return [Path(p) for p in self.trusted_roots.split(":") if p]
        return [self.pki_dir / "trusted_roots.pem"]

    def overrides(self) -> dict[str, list[date]]:
        if self.calendar_overrides is None:
            return {}
        data: dict[str, Any] = json.loads(self.calendar_overrides.read_text())
        return {key: [date.fromisoformat(d) for d in data.get(key, [])] for key in ("days_off", "working_days")}


def make_clock(spec: str | None):  # type: ignore[no-untyped-def]
    """TASKLEDGER_CLOCK=<ISO instant>[@<speed>]: start the clock at that instant, run speed× wall time."""
    if not spec:
        return lambda: datetime.now(timezone.utc)
    import time

    instant, _, speed = spec.partition("@")
    start = datetime.fromisoformat(instant)
    if start.tzinfo is None:
        raise ValueError("TASKLEDGER_CLOCK: the instant must carry a time zone offset")
    factor = float(speed or 1)
    t0 = time.monotonic()
    from datetime import timedelta

    return lambda: (start + timedelta(seconds=(time.monotonic() - t0) * factor)).astimezone(timezone.utc)
