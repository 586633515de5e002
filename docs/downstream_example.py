"""Read taskledger.events.v1 from the beginning, drop re-deliveries by event_id, print type and aggregate id.

    pip install kafka-python crc32c
    BOOTSTRAP=kafka.example:9092 GROUP=my-system python downstream_example.py

Optional: MAX_MESSAGES (stop after that many messages received), IDLE_TIMEOUT_S (stop after that many
seconds without a message), SESSION_TIMEOUT_MS (default 10000; the taskledger dev broker wants 2000).
"""

import json
import os
import time

from kafka import KafkaConsumer

TOPIC = "taskledger.events.v1"


def main() -> int:
    session_ms = int(os.environ.get("SESSION_TIMEOUT_MS", "10000"))
    max_messages = int(os.environ.get("MAX_MESSAGES", "0")) or None
    idle_s = float(os.environ.get("IDLE_TIMEOUT_S", "0")) or None
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=os.environ["BOOTSTRAP"],
        group_id=os.environ.get("GROUP", "downstream-example"),
        auto_offset_reset="earliest",  # a new group starts at the beginning of the log
        enable_auto_commit=False,  # commit only after handling: at-least-once, never at-most-once
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=session_ms // 4,
        value_deserializer=json.loads,
    )
    seen: set[str] = set()  # a real system keeps this durably (e.g. a unique column event_id)
    received = 0
    last_message = time.monotonic()
    try:
        while max_messages is None or received < max_messages:
            batches = consumer.poll(timeout_ms=200)
            if not batches:
                if idle_s is not None and time.monotonic() - last_message >= idle_s:
                    break
                continue
            last_message = time.monotonic()
            for records in batches.values():
                for record in records:  # in offset order within a partition = per-task order
                    received += 1
                    event = record.value
                    if event["event_id"] in seen:
                        continue  # a re-delivery of an event already handled
                    seen.add(event["event_id"])
                    print(event["type"], event["aggregate_id"], flush=True)
            consumer.commit()
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
