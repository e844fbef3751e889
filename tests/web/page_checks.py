"""Layout checks a trader's eye makes, run inside a real Chromium page (shared by the bot page and
the dashboard tests): nothing wider than the screen, nothing overlapping, nothing cut or covered."""
from __future__ import annotations

from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
PHONE = {"width": 400, "height": 900}
TABLET = {"width": 768, "height": 1024}
DESKTOP = {"width": 1400, "height": 1000}

_BOXES = """(sels) => sels.map((s) => { const e = document.querySelector(s); if (!e) return null;
  const b = e.getBoundingClientRect(); return {sel: s, x: b.left + scrollX, y: b.top + scrollY, w: b.width, h: b.height}; })"""

_CUT = """(sel) => [...document.querySelectorAll(sel)].filter((e) => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
  .map((e) => (e.id || e.className) + ": " + e.textContent)"""

_COVERED = """(sel) => { const e = document.querySelector(sel); e.scrollIntoView({block: "center"});
  const b = e.getBoundingClientRect(); const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
  return hit === e || e.contains(hit) ? null : (hit ? (hit.id || hit.tagName + "." + hit.className) : "nothing"); }"""


def horizontal_overflow(page) -> int:
    """How many pixels the page scrolls sideways (0 is right)."""
    return page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")


def overlaps(page, selectors: list[str]) -> list[tuple[str, str]]:
    """Pairs of the given elements whose boxes intersect (by more than a pixel)."""
    boxes = [b for b in page.evaluate(_BOXES, selectors) if b and b["w"] and b["h"]]
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            if dx > 1 and dy > 1:
                found.append((a["sel"], b["sel"]))
    return found


def cut_texts(page, selector: str) -> list[str]:
    """Visible elements matching `selector` whose text is wider than their box (shown as "10,00…")."""
    return page.evaluate(_CUT, selector)


def covered_by(page, selector: str) -> str | None:
    """None when a click at the element's centre reaches it; else what is on top of it."""
    return page.evaluate(_COVERED, selector)


def height(page, selector: str) -> float:
    return page.locator(selector).first.bounding_box()["height"]


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def open_page(browser, url: str, viewport: dict):
    """A fresh context at `viewport` on `url`; returns (context, page, the page's JS errors)."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    return context, page, errors
