"""The glossary is one list: the page's and docs/glossary.md say the same."""

from __future__ import annotations

from conftest import ROOT

from studio.web.glossary import TERMS, glossary_markdown


def test_the_docs_glossary_is_the_pages():
    doc = (ROOT / "docs" / "glossary.md").read_text()
    assert doc == glossary_markdown("# Glossary"), (
        "docs/glossary.md is out of date: python -c \"from studio.web.glossary import glossary_markdown; "
        "print(glossary_markdown('# Glossary'), end='')\" > docs/glossary.md")


def test_every_term_the_issue_names_is_defined():
    wanted = ("round", "knee", "σ", "κ", "roofline", "tp", "dp", "goodput", "TTFT", "TPOT", "held-out", "agreement")
    text = " ".join(TERMS)
    assert all(word in text for word in wanted), [w for w in wanted if w not in text]
