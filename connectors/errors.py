"""Errors of the adapters (broker, Kafka, relay): messages say what to do."""

from __future__ import annotations


class ConnectorError(RuntimeError):
    """An external part (broker, database) is unreachable or misbehaved."""
