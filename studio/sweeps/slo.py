"""Latency limits (SLOs) for goodput, as MLPerf and AIPerf define them."""

from __future__ import annotations

import re

from runner.config import ConfigError

# MLPerf Inference's server-scenario limits for Llama-2-70B: TTFT 2 s, TPOT 200 ms (99th percentile)
PRESETS = {"mlperf-llama2-70b": {"ttft_ms": 2000.0, "tpot_ms": 200.0}}


def parse_slo(text: str | None) -> dict | None:
    """`ttft=MS,tpot=MS` (milliseconds) or a preset name; None for none."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    if text in PRESETS:
        return {**PRESETS[text], "name": text}
    parts = dict(re.findall(r"(\w+)\s*=\s*([^,]+)", text))
    rebuilt = ",".join(f"{k}={v}" for k, v in parts.items())
    if set(parts) != {"ttft", "tpot"} or rebuilt.replace(" ", "") != text.replace(" ", ""):
        raise ConfigError("slo", f"{text!r} is not ttft=MS,tpot=MS (milliseconds, e.g. ttft=2000,tpot=200) "
                          f"or a preset ({', '.join(PRESETS)})")
    limits = {}
    for key in ("ttft", "tpot"):
        try:  # float() also reads '５' and '٥'; a limit is written in ASCII like every number here
            value = float(parts[key]) if parts[key].isascii() else float("nan")
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise ConfigError("slo", f"{key}={parts[key]} is not a positive number of milliseconds; "
                              f"write it in the digits 0-9, e.g. {key}=200")
        limits[f"{key}_ms"] = value
    return {**limits, "name": f"ttft={limits['ttft_ms']:g} ms, tpot={limits['tpot_ms']:g} ms"}


def meets(run: dict, slo: dict) -> bool:
    """A run meets the SLO when its 99th percentiles do, as MLPerf's server scenario asks."""
    ttft, tpot = run.get("ttft_ms_p99"), run.get("tpot_ms_p99")
    return ttft is not None and ttft <= slo["ttft_ms"] and (tpot is None or tpot <= slo["tpot_ms"])
