"""Whole numbers and lists of them, as every entry point reads them.

One parser, so the CLI, the page, the API and RunConfig agree on what a number
is: an int, a float with no fraction, or ASCII digits. Python's int() and the
regex \\d also take '１', '١' and '𝟙', which no user means as a GPU count and
which no other tool reading the database would. Lists are capped in characters
and in values before they are split or checked, and duplicates are found with a
set, so no request costs more than its length."""

from __future__ import annotations

import math
import re

from runner.config import ConfigError

LARGEST = 2**63 - 1  # SQLite's INTEGER: no stored setting or id is larger
# A grid runs at most 200 runs (studio.grid.MAX_RUNS) and every listed value is at
# least one run, so a longer list is always refused; its text is capped to match.
MAX_VALUES = 200
MAX_LIST_CHARS = 4096
_DIGITS = re.compile(r"[+-]?[0-9]{1,19}")


def whole(name: str, value, low: int = 0, high: int = LARGEST, *, example: str = "8",
          text: bool = True, listed: bool = False) -> int:
    """`value` as an int from `low` to `high`, or a ConfigError naming `name` and
    saying what to type. `text=False` refuses strings (RunConfig's typed fields);
    `listed` words the refusal for one value of a comma list."""
    number = None
    if isinstance(value, bool):
        pass  # True is an int to Python, not a number to the user
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif text and isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None:
        if not listed and (value is None or (isinstance(value, str) and not value.strip())):
            raise ConfigError(name, f"is missing; write a whole number such as {example}")
        shown = repr(value) if not isinstance(value, str) or len(value) <= 40 else repr(value[:40] + "…")
        digits = "the digits 0-9 only" if isinstance(value, str) and not value.isascii() else "digits"
        if listed:
            raise ConfigError(name, f"{shown} is not a whole number; write values like {example} ({digits})")
        raise ConfigError(name, f"must be a whole number, got {shown}; write {digits} such as {example}")
    if number < low:
        raise ConfigError(name, f"must be at least {low}, got {number}")
    if number > high:
        raise ConfigError(name, f"must be at most {high}, got {number}")
    return number


def list_items(name: str, value, example: str = "1,8,32") -> list:
    """The items of '1,8,32', of a list, or of a single value, capped before splitting."""
    if isinstance(value, str):
        if len(value) > MAX_LIST_CHARS:
            raise ConfigError(name, f"the list is {len(value)} characters long, more than {MAX_LIST_CHARS}; "
                              f"give at most {MAX_VALUES} values, such as {example}")
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    if not items or items == [""]:
        raise ConfigError(name, f"no value given; write one value or a comma list such as {example}")
    if len(items) > MAX_VALUES:
        raise ConfigError(name, f"lists {len(items)} values, more than {MAX_VALUES} (a sweep runs at most "
                          f"{MAX_VALUES} runs); give fewer, such as {example}")
    return items


def unique(name: str, values: list) -> list:
    """`values` unchanged, or refused at the first one listed twice."""
    seen = set()
    for value in values:
        if value in seen:
            raise ConfigError(name, f"lists {value} twice; give each value once")
        seen.add(value)
    return values


def whole_list(name: str, value, low: int = 1, high: int = LARGEST, example: str = "1,8,32") -> list[int]:
    """Whole numbers from '1,8,32' or a list: each once, each from `low` to `high`."""
    items = list_items(name, value, example)
    return unique(name, [whole(name, item, low, high, example=example, listed=True) for item in items])
