"""The words the studio's pages use, defined once: the page's Glossary (one click
from every tab, below them) and docs/glossary.md are both made from TERMS."""

from __future__ import annotations

TERMS = {
    "round": "One `generate` call on one rank. A run takes as long as its busiest rank's rounds: 100 prompts in "
             "batches of 16 are 7 rounds on 1 GPU, 2 rounds on 4 or 5 GPUs.",
    "quantisation ceiling": "The speedup the rounds alone allow: rounds on 1 GPU over rounds on n. Work comes in "
                            "whole rounds, so adding a GPU that does not remove a round gains nothing.",
    "knee": "The first GPU count where one more GPU adds less than half a GPU's worth of speedup.",
    "USL σ and κ": "The Universal Scalability Law, X(n) = λn / (1 + σ(n−1) + κn(n−1)): σ is contention (a share "
                   "of the work that does not parallelise), κ coherency (a cost growing with every pair of "
                   "GPUs, which makes throughput peak). κ = 0 is Amdahl's law.",
    "roofline": "The time the weights and the KV cache take to read from memory once per decode step at the "
                "device's bandwidth: a floor for a memory-bound step. Utilisation is that floor over the "
                "measured time.",
    "tp and dp": "tp: ranks that share one copy of the model (tensor parallel, an all-reduce every layer). "
                 "dp: copies of the model (replicas), each serving its own prompts. GPUs = tp × dp.",
    "TTFT and TPOT": "Time to first token: from a request's batch start to its first generated token on the "
                     "host. Time per output token: the mean gap between its later tokens.",
    "goodput": "Tokens per second counted only from requests that met the latency limits (TTFT and TPOT).",
    "$ per M tokens": "What a million output tokens cost: the run's GPUs × the price per GPU-hour over the tokens "
                      "it makes in an hour. Within the SLO: over its goodput instead. Example prices are "
                      "placeholders, not market data: give yours.",
    "held-out error": "How far to trust a prediction: each measured setting predicted from the others, and "
                      "the error against what was measured.",
    "agreement": "The share of prompts whose tokens match a reference run's: greedy float32 should agree "
                 "exactly; other layouts or lower precision change the summation order.",
}


def glossary_markdown(heading: str = "") -> str:
    """The terms as a definition list in Markdown."""
    body = "\n\n".join(f"**{term}** — {text}" for term, text in TERMS.items())
    return (heading + "\n\n" if heading else "") + body + "\n"
