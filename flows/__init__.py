"""Flows: Prefect orchestration of collectors -> cleaners -> writers, and the `midshard` CLI."""
