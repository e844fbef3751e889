"""Actions on the fleet need the fleet token: scripts send it as a bearer token, browsers log in
through the form and get an HttpOnly SameSite=Strict session cookie plus a CSRF token; a form
posted from another site is refused; destructive actions must be confirmed (issue 14, item 3)."""
from __future__ import annotations

import json

import pytest
import requests

from core.instance_manager import InstanceRegistry
from tests.conftest import wait_for
from tests.dashboard.conftest import Dashboard, fleet_home, served_fleet

pytestmark = pytest.mark.slow
IID = "paper_act_01"


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    with served_fleet(fleet_home(tmp_path_factory), (IID,)) as board:
        yield board


def state(dash: Dashboard) -> str:
    return InstanceRegistry(dash.home).get(IID)["state"]


def login(dash: Dashboard) -> tuple[requests.Session, str]:
    s = requests.Session()
    r = s.post(dash.url + "/login", data={"token": dash.token}, allow_redirects=False, timeout=10)
    assert r.status_code == 303, r.text
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "fleet_session=" in cookie
    csrf = s.get(dash.url + "/api/session", timeout=10).json()["csrf"]
    assert csrf
    return s, csrf


@pytest.mark.parametrize("action", ["start", "stop", "restart", "adjust", "flatten"])
def test_every_action_without_the_token_is_401(dash: Dashboard, action):
    r = dash.post(f"/api/instances/{IID}/{action}", json={"confirm": True})
    assert r.status_code == 401 and "fleet token" in r.json()["error"]
    r = dash.post(f"/api/instances/{IID}/{action}", json={"confirm": True}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert state(dash) == "running"


def test_a_cross_site_form_post_is_refused_even_with_a_session(dash: Dashboard):
    s, csrf = login(dash)
    evil = {"Origin": "http://attacker.example", "Content-Type": "application/x-www-form-urlencoded"}
    r = s.post(f"{dash.url}/api/instances/{IID}/stop", data="confirm=true", headers=evil, timeout=10)
    assert r.status_code == 403
    # same origin, but a plain form cannot add the CSRF header
    r = s.post(f"{dash.url}/api/instances/{IID}/stop", data="confirm=true",
               headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert r.status_code == 403 and "CSRF" in r.json()["error"]
    r = s.post(f"{dash.url}/login", data={"token": dash.token}, headers={"Origin": "http://attacker.example"}, timeout=10)
    assert r.status_code == 403
    assert state(dash) == "running"


def test_a_wrong_token_does_not_log_in(dash: Dashboard):
    r = requests.post(dash.url + "/login", data={"token": "guess"}, allow_redirects=False, timeout=10)
    assert r.status_code == 401 and "Set-Cookie" not in r.headers and "Wrong token" in r.text
    assert requests.get(dash.url + "/api/session", timeout=10).json() == {"logged_in": False, "csrf": None}


def test_reading_needs_no_token_on_loopback(dash: Dashboard):
    assert dash.get("/api/fleet").status_code == 200
    assert dash.get("/").status_code == 200
    assert dash.get(f"/bot/{IID}/api/status").status_code == 200


def test_destructive_actions_must_be_confirmed_and_then_stop_and_start_work(dash: Dashboard):
    s, csrf = login(dash)
    headers = {"X-CSRF-Token": csrf}
    for action in ("stop", "restart", "flatten"):
        r = s.post(f"{dash.url}/api/instances/{IID}/{action}", json={}, headers=headers, timeout=10)
        assert r.status_code == 400 and "confirm" in r.json()["error"], action
    assert state(dash) == "running"

    r = s.post(f"{dash.url}/api/instances/{IID}/stop", json={"confirm": True}, headers=headers, timeout=120)
    assert r.status_code == 200 and r.json()["ok"], r.text
    assert state(dash) == "stopped"
    r = s.post(f"{dash.url}/api/instances/{IID}/stop", json={"confirm": True}, headers=headers, timeout=120)
    assert r.status_code == 409                                    # the CLI's own answer: not running
    r = s.post(f"{dash.url}/api/instances/{IID}/start", json={}, headers=headers, timeout=120)
    assert r.status_code == 200 and r.json()["ok"], r.text
    assert state(dash) == "running"


def test_adjust_through_the_dashboard_reaches_the_bot_with_its_own_token(dash: Dashboard):
    wait_for(lambda: (dash.get(f"/bot/{IID}/api/status").json().get("grid") or {}).get("upper"), 60, "a grid")
    auth = {"Authorization": f"Bearer {dash.token}"}
    r = dash.post(f"/api/instances/{IID}/adjust", json={"grid_lower_price": 139, "grid_upper_price": 161}, headers=auth)
    assert r.status_code == 200, r.text
    grid = dash.get(f"/bot/{IID}/api/status").json()["grid"]
    assert (grid["lower"], grid["upper"]) == (139, 161)
    r = dash.post(f"/api/instances/{IID}/adjust", json={"grid_lower_price": 170, "grid_upper_price": 160}, headers=auth)
    assert r.status_code == 400 and r.json()["error"]               # the bot's own validation, relayed
    assert dash.post("/api/instances/nobody/stop", json={"confirm": True}, headers=auth).status_code == 404


def test_flatten_cancels_the_grid_closes_its_position_and_stops_the_bot(dash: Dashboard):
    """Last in this module: the bot ends here."""
    published = dash.home / "logs" / IID / "bot_status.json"
    wait_for(lambda: (json.loads(published.read_text()).get("position") or 0) != 0, 120, "a position to flatten")
    assert dash.post(f"/bot/{IID}/api/flatten").status_code == 401             # the bot's own token guards it
    r = dash.post(f"/api/instances/{IID}/flatten", json={"confirm": True}, headers={"Authorization": f"Bearer {dash.token}"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["state"] == "stopped" and answer["owned"] == 0 and answer["position"] == 0
    wait_for(lambda: state(dash) == "exited", 60, "the bot to end after its flatten")
    assert "flattened by the trader" in (InstanceRegistry(dash.home).get(IID).get("last_error") or "")
    final = json.loads(published.read_text())
    assert final["position"] == 0 and final["open_order_count"] == 0
    assert dash.get("/api/fleet").json()["instances"][0]["attention"]          # an exit with a reason: seen first
