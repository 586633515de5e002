"""Adapters: settings, event-store wiring, PKI, CLI."""
