"""`taskledger audit ...`: the auditors' commands. Integrity (verify, checkpoint, export) lives in
connectors/audit_integrity.py, the timeline (history, as-of) in connectors/audit_timeline.py; both
register their commands on ``audit_app``."""

from __future__ import annotations

import typer

audit_app = typer.Typer(
    help="Auditors: replay full histories, time travel, verify that no fact was altered or removed.",
    no_args_is_help=True,
)


def register_commands() -> None:
    """Import the modules that add their commands to ``audit_app`` (after it exists)."""
    import importlib

    for module in ("connectors.audit_integrity", "connectors.audit_timeline"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
