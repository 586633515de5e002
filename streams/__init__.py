"""Faust stream processors (built in the streams issue)."""
