"""The recorded real-Logto scenarios are complete: every reference inside them resolves."""

from __future__ import annotations

import pytest
from real_logto import SCENARIOS, exchange, load


def test_all_nine_scenarios_are_there() -> None:
    assert len(SCENARIOS) == 9


@pytest.mark.parametrize("name", SCENARIOS)
def test_expectations_name_recorded_exchanges(name: str) -> None:
    doc = load(name)
    ids = [item["id"] for item in doc["exchanges"]]
    assert len(ids) == len(set(ids)), "exchange ids are unique"
    imported = doc.get("imported_tokens", {})
    for entry in doc.get("expect", []):
        assert entry["token"] in ids or entry["token"] in imported
        assert exchange(doc, entry["jwks"])["response"]["status"] == 200
        assert entry["valid"] in (True, False)
    for entry in doc.get("expect_token_endpoint", []) + doc.get("expect_http", []):
        assert exchange(doc, entry["exchange"])["response"]["status"] == entry["status"]
