"""Test helpers for Hangar: in-process fakes of external services (e.g. an OpenAI-compatible HTTP server)."""
