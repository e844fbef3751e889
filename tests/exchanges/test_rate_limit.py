"""The shared budget: a token bucket in a file, one per account, never holding the key."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from exchanges.base import RateLimited
from exchanges.rate_limit import Budget, SharedRateLimiter, account_fingerprint
from tests.conftest import REPO, home_env
from tests.exchanges.backpack_server import TEST_PUBLIC_B64, BackpackServer

SECRET_KEY = "super-secret-api-key-123456"


def test_fingerprint_is_per_account_and_hides_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("GRIDBOT_STATE_DIR", str(tmp_path / "state"))
    limiter = SharedRateLimiter.for_account("backpack", SECRET_KEY, Budget(100, 60))
    limiter.acquire()
    assert limiter.path.parent == tmp_path / "state" / "ratelimit"  # per user, outside every home
    assert SECRET_KEY not in limiter.path.name and SECRET_KEY not in limiter.path.read_text()
    assert account_fingerprint("backpack", SECRET_KEY) != account_fingerprint("backpack", SECRET_KEY + "x")
    assert account_fingerprint("backpack", SECRET_KEY) != account_fingerprint("aster", SECRET_KEY)
    assert oct(limiter.path.stat().st_mode & 0o777) == "0o600"


def test_burst_is_capped_and_a_long_wait_raises_rate_limited(tmp_path):
    # 20 per hour: burst 1 token, then one every ~3 minutes; max_wait 0.2 s -> the second call must refuse.
    limiter = SharedRateLimiter(tmp_path / "b.json", Budget(20, 3600, max_wait=0.2))
    limiter.acquire()
    with pytest.raises(RateLimited) as info:
        limiter.acquire()
    assert info.value.retry_after > 60


def test_budget_keeps_any_window_within_the_limit():
    budget = Budget(2000, 60)
    assert budget.capacity + budget.rate * 60 <= 2000
    with pytest.raises(ValueError, match="burst_share"):
        Budget(10, 1, burst_share=0.5, refill_share=0.9)
    with pytest.raises(ValueError, match="positive"):
        Budget(0, 60)


def test_penalty_from_one_process_holds_back_the_others(tmp_path):
    first = SharedRateLimiter(tmp_path / "b.json", Budget(1000, 1, max_wait=0.1))
    second = SharedRateLimiter(tmp_path / "b.json", Budget(1000, 1, max_wait=0.1))
    first.penalize(30)
    with pytest.raises(RateLimited) as info:
        second.acquire()
    assert 29 < info.value.retry_after <= 30


def test_torn_state_file_starts_a_fresh_bucket(tmp_path):
    path = tmp_path / "b.json"
    path.write_text("{not json")
    SharedRateLimiter(path, Budget(100, 1)).acquire()
    assert set(json.loads(path.read_text())) == {"tokens", "ts", "blocked_until"}


def _hammer(home, url: str, n: int, limit: int, window: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.exchanges.hammer", "--url", url, "--requests", str(n),
         "--limit", str(limit), "--window", str(window)],
        cwd=str(REPO), env=home_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_processes_on_one_key_stay_within_the_servers_window(tmp_path):
    """Shared home -> shared bucket -> the server never counts more than the limit in a window.
    Control: two homes (two buckets) on the same key do overspend, so the first assertion can fail."""
    limit, window = 40, 1.0
    with BackpackServer(price=150.0) as server:
        server.budget = (limit, window)
        procs = [_hammer(tmp_path / "shared", server.url, 60, limit, window) for _ in range(2)]
        outputs = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), outputs
        assert all("answered=60" in out for out, _ in outputs), outputs
        assert server.over_budget == 0
        assert server.max_window_count(TEST_PUBLIC_B64) <= limit

        server.window_counts.clear()
        procs = [_hammer(tmp_path / f"apart{i}", server.url, 60, limit // 2 * 3, window) for i in range(2)]
        for p in procs:
            p.communicate(timeout=60)
        assert server.max_window_count(TEST_PUBLIC_B64) > limit
