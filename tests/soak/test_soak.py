"""Soak: uvicorn on loopback under concurrent valid and invalid traffic, while a real provider
rotates its keys in stages and is stopped and restarted once.

`test_soak` is marked `soak` (run with `--soak`; `LOGTO_GUARD_SOAK_SECONDS`, default 60).
`test_soak_quick` runs the same logic for 5 s in the normal suite.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from .harness import SoakReport, run_soak

if TYPE_CHECKING:
    from oidc_provider import OidcProvider

# RSS growth allowed over a run (MiB): the verified-token LRU, pools and allocator noise.
# Measured growth is a few MiB; a leak per request (hundreds of thousands of them) is far more.
RSS_GROWTH_LIMIT_MB = 48.0


def check(report: SoakReport) -> None:
    assert report.failures() == dict.fromkeys(report.failures(), 0), report.summary()
    assert report.valid_accepted > 100 and report.invalid_sent > 100, report.summary()
    # Both keys verified tokens, and the removal took effect during the run (R30).
    assert len(report.kids) >= 2, report.summary()
    assert report.removed_key_rejected > 0, report.summary()
    assert "schedule NOT finished" not in " ".join(report.events), report.summary()
    rss = report.rss_mb
    assert rss["end"] - rss["start"] < RSS_GROWTH_LIMIT_MB, report.summary()
    # Unknown-kid floods and revalidation stay bounded by cooldown and TTL.
    assert report.jwks_fetches < 3 * report.duration + 20, report.summary()


async def test_soak_quick(fresh_provider: OidcProvider) -> None:
    report = await run_soak(fresh_provider, duration=5.0, workers=8, ttl=0.5, cooldown=0.25)
    print(report.summary())
    check(report)


@pytest.mark.soak
async def test_soak(fresh_provider: OidcProvider, capsys: pytest.CaptureFixture[str]) -> None:
    duration = float(os.environ.get("LOGTO_GUARD_SOAK_SECONDS", "60"))
    report = await run_soak(fresh_provider, duration=duration, workers=32, ttl=2.0, cooldown=1.0)
    with capsys.disabled():
        print("\n" + report.summary())
    check(report)
