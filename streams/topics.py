"""The worker's topics: contract v1 events in; latest task status and raised alerts out.

Values are raw bytes (JSON encoded by us, ``domain.contract.encode`` / orjson), keys the aggregate id as
UTF-8 text (the relay's key), so per-task order holds within a partition."""

from __future__ import annotations

from typing import Any

import faust

from domain.contract import ALERTS_TOPIC, EVENTS_TOPIC, STATUS_TOPIC


def events_topic(app: faust.App) -> Any:
    return app.topic(EVENTS_TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def status_topic(app: faust.App) -> Any:
    return app.topic(STATUS_TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


def alerts_topic(app: faust.App) -> Any:
    return app.topic(ALERTS_TOPIC, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
