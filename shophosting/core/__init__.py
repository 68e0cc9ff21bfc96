"""Shared helpers below every app: e-mail sending, rate limits, client IP, request ids, status transitions,
queue helpers, input validators. Every app may import them; they import no app (the import-linter contract
in .importlinter holds both)."""
