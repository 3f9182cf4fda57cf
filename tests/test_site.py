"""The documentation site as a reader sees it (`make docs-check`, marker `docs`): the site that
`make docs` built into `site/`, served on the loopback interface and opened in the system's
headless Chromium (selenium with the system's chromedriver; nothing is downloaded). The landing
page, an API page and a tutorial render (their title, a figure loaded, no error on the browser's
console); no internal link or anchor of any page is broken; every public name, command and
run-file key has its entry. Screenshots go to `$OILE_SCREENSHOTS` (default `site-screenshots/`).

Without Chromium and chromedriver the browser tests are skipped, unless `OILE_REQUIRE_BROWSER=1`
(set by `.ci/run`, which installs both), where they fail."""

import functools
import html.parser
import http.server
import os
import shutil
import threading
import types
import urllib.parse
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"


@pytest.fixture(scope="module")
def site():
    if not (SITE / "index.html").exists():
        pytest.fail("no built site: run `make docs` first (make docs-check does both)")
    return SITE


class _Page(html.parser.HTMLParser):
    """The links, sources and ids of one HTML page."""

    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            if attrs.get(name) and not (tag == "link" and attrs.get("rel") == "canonical"):
                self.links.append(attrs[name])


@functools.cache
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _target(page: Path, link: str) -> tuple[Path, str] | None:
    """The file and anchor an internal link points to (a path from `/` starts at the site's
    root, as the site is served); None for an external one."""
    parts = urllib.parse.urlsplit(link)
    if parts.scheme or parts.netloc or link.startswith(("mailto:", "data:", "javascript:")):
        return None
    if not parts.path:
        return page, parts.fragment
    base = SITE if parts.path.startswith("/") else page.parent
    path = (base / urllib.parse.unquote(parts.path).lstrip("/")).resolve()
    if path.is_dir() or parts.path.endswith("/"):
        path = path / "index.html"
    return path, parts.fragment


def test_no_internal_link_or_anchor_is_broken(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 20
    broken, checked = [], 0
    for page in pages:
        for link in _parse(page).links:
            target = _target(page, link)
            if target is None:
                continue
            path, anchor = target
            checked += 1
            if not path.is_file():
                broken.append((str(page.relative_to(site)), link, "no such file"))
            elif anchor and path.suffix == ".html" and anchor not in _parse(path).ids:
                broken.append((str(page.relative_to(site)), link, "no such anchor"))
    assert checked > 1000
    assert not broken, broken[:20]


def test_every_public_name_command_and_run_file_key_has_its_entry(site):
    """Checked against the package itself, not against the generator of the pages."""
    import oile_jax
    from oile_jax._app.cli import parser
    from oile_jax._app.schema import SCHEMA

    names = {
        name
        for name, value in vars(oile_jax).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    ids = set()
    for page in (site / "api").rglob("*.html"):
        ids |= _parse(page).ids
    assert len(names) > 80
    missing = sorted(n for n in names if f"oile_jax.{n}" not in ids)
    assert not missing, missing
    assert "oile_jax.bench" in ids

    cli = (site / "guide" / "command-line" / "index.html").read_text()
    commands = parser()._subparsers._group_actions[0].choices
    assert len(commands) >= 7
    for command, sub in commands.items():
        assert f"oile {command}</code>" in cli, command
        for action in sub._actions:
            if action.dest == "help":
                continue
            for flag in action.option_strings:
                assert f"<code>{flag}</code>" in cli, (command, flag)
    keys = (site / "guide" / "run-files" / "index.html").read_text()
    missing = [key for key in SCHEMA if f"<code>{key}</code>" not in keys]
    assert not missing, missing


# --- in a browser ---------------------------------------------------------------------------


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        message = (
            "the system's chromium and chromedriver are needed "
            "(apt-get install chromium chromium-driver)"
        )
        if os.environ.get("OILE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1600"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _open(browser, url: str, screenshot: str):
    browser.get(url)  # returns once the page's load event has fired (selenium's default)
    shots = Path(os.environ.get("OILE_SCREENSHOTS", ROOT / "site-screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, min(max(int(height), 800), 6000))
    browser.save_screenshot(str(shots / screenshot))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    return errors


def _loaded_images(browser, selector: str) -> list[int]:
    """The natural widths of the images matching `selector` (0 for one that did not load)."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(img => img.complete ? img.naturalWidth : 0);",
        selector,
    )


@pytest.mark.parametrize(
    "path, title, heading, images",
    [
        ("/", "oile_jax", "oile_jax", "article img"),
        ("/api/gas/", "Gas - oile_jax", "Gas", None),
        (
            "/tutorials/foreground/",
            "Foreground neutrino - oile_jax",
            "A foreground neutrino",
            "img.oile-figure",
        ),
    ],
    ids=["landing", "api", "tutorial"],
)
def test_pages_render_in_a_browser(browser, server, path, title, heading, images):
    from selenium.webdriver.common.by import By

    errors = _open(browser, server + path, (path.strip("/").replace("/", "-") or "index") + ".png")
    assert title in browser.title, browser.title
    assert heading in browser.find_element(By.CSS_SELECTOR, "article h1").text
    assert not errors, errors
    if images:
        widths = _loaded_images(browser, images)
        assert widths and min(widths) > 100, widths
    else:  # an API page: its entries rendered with their signatures
        entries = browser.find_elements(By.CSS_SELECTOR, "article .doc-heading")
        assert len(entries) >= 5
        assert "simulate_gas" in browser.find_element(By.ID, "oile_jax.simulate_gas").text


@pytest.mark.parametrize(
    "path, equations",
    [
        ("/physics/", 700),
        ("/tutorials/collisions/", 20),
        ("/guide/from-nugas-emu/", 90),
        ("/api/meanfield/", 8),
    ],
    ids=["physics", "tutorial", "guide", "api"],
)
def test_equations_are_rendered(site, browser, server, path, equations):
    """Equations are MathML made at build time (KaTeX, docs/_hooks.py), in the pages' Markdown
    and in the docstrings of the API pages: the page holds at least `equations` of them, the
    browser draws each with a size (none left as source), no console error, and no page of the
    site asks for a script, stylesheet or font from elsewhere."""
    errors = _open(browser, server + path, "math-" + path.strip("/").replace("/", "-") + ".png")
    assert not errors, errors
    sizes = browser.execute_script(
        "return Array.from(document.querySelectorAll('article math'))"
        ".map(m => { const r = m.getBoundingClientRect(); return [r.width, r.height]; });"
    )
    assert len(sizes) >= equations, len(sizes)
    assert min(w for w, _ in sizes) > 5 and min(h for _, h in sizes) > 5, sizes
    source = browser.execute_script("return document.querySelector('article').innerText")
    assert "$`" not in source and "OILEMATH" not in source and "$$" not in source
    # A docstring's equation left as code would show as `$...$` around a code element.
    raw = browser.execute_script(
        "return Array.from(document.querySelectorAll('article code')).filter(c =>"
        " (c.previousSibling && String(c.previousSibling.textContent).endsWith('$'))).length;"
    )
    assert raw == 0, raw
    for page in SITE.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "cdn.jsdelivr" not in text and "katex.min.css" not in text, page
