"""What every tab of the page shares: how its events are declared and how a refusal reads."""

from __future__ import annotations

from runner.config import ConfigError
from studio.web import forms, history

# The page's own events are private: the public API is studio.web.api's endpoints.
PRIVATE = {"api_visibility": "private"}


def private(**kwargs) -> dict:
    """Options for the page's own events: not part of the public API, no spinner flashing."""
    return {**PRIVATE, **kwargs}


def error_text(exc: ConfigError) -> str:
    """A refusal as the page words it: the setting by its label, not its API or CLI name."""
    return f"⚠ {forms.page_message(exc, history.LABELS)}"
