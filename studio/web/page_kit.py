"""What every tab of the page shares: how its events are declared and how a refusal reads."""

from __future__ import annotations

from runner.config import ConfigError
from studio.web import forms

# The page's own events are private: the public API is studio.web.api's endpoints.
PRIVATE = {"api_visibility": "private"}


def private(**kwargs) -> dict:
    """Options for the page's own events: not part of the public API, no spinner flashing."""
    return {**PRIVATE, **kwargs}


def error_text(exc: ConfigError) -> str:
    return f"⚠ {forms.field_message(exc)}"
