"""The rendered book in a real browser: every chapter page opened in headless Chromium.

Run it alone, after building the book (``jupyter-book build .``):

    python -m pytest -q -m browser

It is deselected from the plain ``python -m pytest -q`` (marker ``browser`` in pyproject.toml) because
it needs the built HTML, Debian's ``chromium`` and the ``playwright`` package; ``.ci/run`` installs both
and runs it after the build. ``COURSE_BOOK_HTML`` may point at another built book.

For each page of ``_toc.yml`` it asserts:

* no error in the browser console (MathJax, the theme's scripts and the explorers' script included);
* every ``<img>`` loaded (``naturalWidth > 0``);
* the math is typeset: MathJax's ``mjx-container`` elements are present and no raw ``$$`` is left
  (MathJax is served from the book itself, ``_ext/offline_mathjax.py``, and this browser has no network);
* every static explorer responds: moving each slider changes the shown image or numbers, and a grid
  point that failed shows its message instead of an image; the chapters with explorers have them;
* the Colab launch button points at that chapter's notebook.

A full-page screenshot of each page is written to ``_build/screenshots/<page>.png``.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("COURSE_BOOK_HTML", ROOT / "_build" / "html"))
SCREENSHOTS = HTML.parent / "screenshots"
CHROMIUM = os.environ.get("COURSE_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
# The chapters whose page must carry a static explorer (helpers.static_explorer).
EXPLORER_PAGES = {"sdedit", "score_ald", "dps"}
# Chromium's own background connections are refused on a machine without network (not the book's fault).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _toc_pages() -> list[str]:
    """Page names (``book/dps``…) in ``_toc.yml`` order, root first."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part.get("chapters", [])]
    return pages


PAGES = _toc_pages()


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path.split("?")[0] == "/favicon.ico":  # the browser asks for it; the book has none
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").is_file():
        pytest.fail(f"no built book at {HTML}: build it first with `jupyter-book build .` (or set COURSE_BOOK_HTML)")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(HTML)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs playwright: pip install playwright (it drives Debian's chromium)")
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set COURSE_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} ({r.failure})"))
    page.goto(url, wait_until="load")
    # MathJax typesets asynchronously; its startup promise resolves when the page is done.
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
    page.evaluate("() => MathJax.startup.promise")
    return page, errors


@pytest.mark.parametrize("name", PAGES)
def test_page(server, browser, name):
    page, errors = _open(browser, f"{server}/{name}.html")
    try:
        _check_images(page)
        if name != "book/index":  # every chapter has figures
            assert page.evaluate("() => document.querySelectorAll('article.bd-article img').length") > 0, f"{name}: no figure"
        _check_math(page, name)
        _check_colab(page, name)
        _check_explorers(page, name)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{Path(name).name}.png"), full_page=True)
        assert not errors, f"{name}: {errors}"
    finally:
        page.close()


def _check_images(page) -> None:
    # Scroll every image into view (a lazily loaded one would otherwise stay empty), then wait for all.
    page.evaluate("() => document.querySelectorAll('img').forEach(i => i.scrollIntoView())")
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
    broken = page.evaluate(
        "() => [...document.images].filter(i => i.offsetParent !== null && i.naturalWidth === 0)"
        ".map(i => i.getAttribute('src').slice(0, 80))"
    )
    assert not broken, f"images that did not load: {broken}"


def _check_math(page, name: str) -> None:
    typeset = page.locator("mjx-container").count()
    raw = page.evaluate("() => (document.querySelector('main') || document.body).innerText.includes('$$')")
    assert not raw, f"{name}: raw $$ left in the page (MathJax did not typeset it)"
    if name != "book/index":  # the landing page has no formula; every chapter has some
        assert typeset > 0, f"{name}: no MathJax output (mjx-container) on the page"


def _check_colab(page, name: str) -> None:
    if name == "book/index":
        return
    hrefs = page.evaluate("() => [...document.querySelectorAll('a[href*=\"colab.research.google.com\"]')].map(a => a.href)")
    assert hrefs, f"{name}: no Colab launch button"
    assert all(h.endswith(f"/blob/main/{name}.ipynb") for h in hrefs), hrefs


def _state(root) -> tuple:
    """What an explorer shows: the reconstruction (its src, or the message in its place) and the numbers."""
    return root.evaluate(
        """r => [
            (r.querySelector('img.explorer-image[data-role="reconstruction"]') || {}).src || '',
            [...r.querySelectorAll('.explorer-message')].filter(m => m.offsetParent !== null).map(m => m.textContent).join(),
            [...r.querySelectorAll('.explorer-metric')].map(m => m.textContent).join('|'),
            (r.querySelector('img.explorer-image[data-role="measurement"]') || {}).src || '',
        ]"""
    )


def _check_explorers(page, name: str) -> None:
    roots = page.locator("div.static-explorer")
    short = Path(name).name
    if short in EXPLORER_PAGES:
        assert roots.count() > 0, f"{name}: the chapter's static explorer is missing from the page"
    for i in range(roots.count()):
        root = roots.nth(i)
        sliders = root.locator("input.explorer-slider[type=range]")
        assert sliders.count() > 0, f"{name}: explorer {i} has no slider"
        for j in range(sliders.count()):
            slider = sliders.nth(j)
            lo, hi, value = (float(slider.get_attribute(a) or d) for a, d in (("min", 0), ("max", 100), ("value", 0)))
            if hi <= lo:
                continue  # a parameter with one value
            before = _state(root)
            target = lo if value != lo else hi
            slider.evaluate("(s, v) => { s.value = v; s.dispatchEvent(new Event('input', {bubbles: true}));"
                            " s.dispatchEvent(new Event('change', {bubbles: true})); }", str(target))
            after = _state(root)
            assert after != before, f"{name}: explorer {i} did not change when slider {j} moved to {target}"
            shown = after[0] != "" or after[1] != ""
            assert shown, f"{name}: explorer {i} shows neither an image nor a message"
        # Every grid point shows an image or its message: walk the first slider through its values.
        first = sliders.nth(0)
        lo, hi = float(first.get_attribute("min") or 0), float(first.get_attribute("max") or 0)
        step = float(first.get_attribute("step") or 1)
        v = lo
        while v <= hi + 1e-9:
            first.evaluate("(s, v) => { s.value = v; s.dispatchEvent(new Event('input', {bubbles: true})); }", str(v))
            src, message, *_ = _state(root)
            assert (src.startswith("data:image/png") and not message) or message, (name, i, v, src[:40], message)
            v += step
