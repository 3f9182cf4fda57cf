"""MkDocs hooks of the documentation site: the pages made from the code, never kept by hand.

- The API reference: one page per area, one `::: oile_jax.NAME` entry (mkdocstrings) for every
  public name re-exported by `oile_jax/__init__.py`, read from that file's imports.
- The command line: every `oile` command's options, from the argparse parsers of
  `oile_jax._app.cli`.
- The run-file keys: the table made by `oile_jax._app.schema.reference()` from the TOML schema.
- The gallery figures of `experiments/figures/` are served under `figures/`.

The tutorials run in this process (markdown-exec). One of them spreads a gas over several
devices: JAX must see 4 CPU devices from its start, so the flag is set here, before anything
imports JAX (a flag already given by the caller is kept).
"""

import argparse
import ast
import functools
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
# The tutorials must not write into the reader's compilation cache.
os.environ.setdefault("OILE_NO_COMPILE_CACHE", "1")

from mkdocs.structure.files import File  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The pages of the API reference: page -> (title, summary), in the navigation's order of first
# appearance in `oile_jax/__init__.py`; and the page of each private module a name comes from.
PAGES = {
    "states": ("States and flavours", "Bloch vectors, density matrices, flavours."),
    "encounters": ("Encounters", "The encounter map and vacuum propagation."),
    "run-description": (
        "System and run options",
        "What describes a run besides the states: the physical system (`System`), when "
        "neutrinos meet, at which angles, how the coupling and the matter potential change in "
        "time, how the medium emits, absorbs and scatters neutrinos (`Opacities`), and how a "
        "run samples, saves, checkpoints and shards (`Sampling`, `SaveAt`, `Checkpoint`, "
        "`Sharding`).",
    ),
    "foreground": (
        "Foreground model",
        "One neutrino in a uniform background, and its exact ensemble mean.",
    ),
    "gas": ("Gas", "The gas of neutrino groups: simulation, sweeps, gradients."),
    "meanfield": (
        "Mean field and linear stability",
        "Mean-field and mean-field-plus-collision vector fields solved by diffrax, and their "
        "linearizations.",
    ),
    "equilibria": (
        "Equilibria and miscidynamics",
        "Collective precession equilibria and the path along them.",
    ),
    "manybody": ("Many-body reference", "The exact state vector beside OILE."),
    "output": ("Output and utilities", "HDF5 files, figures, the compilation cache, the version."),
}
MODULE_PAGE = {  # a module's page: its own entry, else its package's
    "_physics.states": "states",
    "_physics.flavours": "states",
    "_physics.encounter": "encounters",
    "_physics.profiles": "run-description",
    "_physics.opacities": "run-description",
    "_physics.system": "run-description",
    "_sampling": "run-description",
    "_foreground": "foreground",
    "_gas": "gas",
    "_meanfield": "meanfield",
    "_equilibria": "equilibria",
    "_manybody": "manybody",
    "_output": "output",
    "_support.cache": "output",
    "_version": "output",
}


@functools.cache
def public_names() -> dict[str, list[str]]:
    """Page -> the public names on it, in the order of `oile_jax/__init__.py` (read once per
    build, `on_config` clearing it: the navigation and the pages both use it)."""
    tree = ast.parse((ROOT / "oile_jax" / "__init__.py").read_text())
    pages: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            module = node.module
            while module not in MODULE_PAGE and "." in module:
                module = module.rsplit(".", 1)[0]
            if module not in MODULE_PAGE:
                raise KeyError(f"docs/_hooks.py: no API page for oile_jax.{node.module}")
            page = MODULE_PAGE[module]
            pages.setdefault(page, []).extend(a.asname or a.name for a in node.names)
    return pages


def api_pages() -> dict[str, str]:
    """Path under docs/ -> Markdown of each API page (and the index)."""
    pages = {}
    index = [
        "# API reference",
        "",
        "Every public name of `oile_jax`, generated from the docstrings. Conventions (units "
        "`mu = 1`, `dP/dt = H x P`, the sign of `B`) are those of the "
        "[physics reference](../physics.md).",
        "",
    ]
    for page, names in public_names().items():
        title, summary = PAGES[page]
        body = [f"# {title}", "", summary, ""]
        body += [f"::: oile_jax.{name}\n" for name in names if name != "__version__"]
        if "__version__" in names:
            body += ["## `oile_jax.__version__`", "", "The package version, a string.", ""]
        pages[f"api/{page}.md"] = "\n".join(body)
        index.append(f"- [{title}]({page}.md): " + ", ".join(f"`{n}`" for n in names))
    index += [
        "",
        "Besides these, `oile_jax.bench` (the throughput table of `oile bench`):",
        "",
        "::: oile_jax.bench",
        "    options:",
        "      show_root_heading: true",
        "      heading_level: 2",
        "",
    ]
    pages["api/index.md"] = "\n".join(index)
    return pages


def cli_reference() -> str:
    """Every `oile` command with its options, from the parsers themselves."""
    from oile_jax._app.cli import parser

    top = parser()
    out = []
    globals_ = [a for a in top._actions if a.option_strings and a.dest != "help"]
    out += ["### `oile`", "", top.description or "", "", _options_table(globals_), ""]
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        out += [f"### `oile {name}`", "", p.description or "", ""]
        usage = p.format_usage().strip().removeprefix("usage: ")
        out += ["```text", usage, "```", ""]
        actions = [a for a in p._actions if a.dest != "help"]
        if actions:
            out += [_options_table(actions), ""]
    return "\n".join(out)


def _options_table(actions) -> str:
    rows = ["| argument | meaning | default |", "|---|---|---|"]
    for a in actions:
        if a.option_strings:
            flag = ", ".join(f"`{s}`" for s in a.option_strings)
            if a.nargs != 0:
                flag += f" `{a.metavar or a.dest.upper()}`"
        else:
            flag = f"`{a.metavar or a.dest}`"
        help_ = (a.help or "").replace("|", "\\|")
        if a.choices:
            help_ += " (" + " / ".join(f"`{c}`" for c in a.choices) + ")"
        default = (
            ""
            if a.default in (None, False, argparse.SUPPRESS)
            else f"`{' '.join(map(str, a.default)) if isinstance(a.default, list) else a.default}`"
        )
        rows.append(f"| {flag} | {help_} | {default} |")
    return "\n".join(rows)


def presets_table() -> str:
    from oile_jax._app.config import preset_summaries

    rows = ["| preset | what it reproduces |", "|---|---|"]
    for name, summary in preset_summaries().items():
        rows.append(f"| `{name}` | {summary} |")
    return "\n".join(rows)


def run_file_keys() -> str:
    from oile_jax._app.schema import reference

    return reference()


MARKERS = {
    "<!-- oile:cli-reference -->": cli_reference,
    "<!-- oile:run-file-keys -->": run_file_keys,
    "<!-- oile:presets -->": presets_table,
}


def on_config(config):
    """Put the generated API pages into the navigation where it says `api/`."""
    public_names.cache_clear()  # a new build (make docs-serve rebuilds): read the package anew
    entries = [{"Overview": "api/index.md"}]
    for page in public_names():
        entries.append({PAGES[page][0]: f"api/{page}.md"})
    config["nav"] = [
        {k: entries} if v == "api/" else {k: v} for item in config["nav"] for k, v in item.items()
    ]
    return config


def on_files(files, config):
    for path, text in api_pages().items():
        files.append(File.generated(config, path, content=text))
    for png in sorted((ROOT / "experiments" / "figures").glob("*.png")):
        files.append(File.generated(config, f"figures/{png.name}", abs_src_path=str(png)))
    return files


# The equations of each page being built, by its source path, as `(tex, display)` pairs
# (`on_page_markdown` finds those of the Markdown, `on_page_content` those of the docstrings,
# renders them all and puts them in).
_EQUATIONS: dict[str, list[tuple[str, bool]]] = {}


def on_page_markdown(markdown, page, config, files):
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    found = _EQUATIONS[page.file.src_uri] = []
    return mark_math(markdown, found)


def on_page_content(html, page, config, files):
    found = _EQUATIONS.pop(page.file.src_uri, [])
    return insert_math(mark_html_math(html, found), found)


# Equations: `$`...`$` inline and `$$` blocks (a line each side), rendered at build time by
# KaTeX (markdown-katex's bundled binary, no network) into MathML, which the browser draws
# itself: the site carries no script, stylesheet or font for them (docs/stylesheets/math.css
# only hides KaTeX's HTML copy). Each equation is replaced by a placeholder where it is found,
# and the placeholders by the renderings where the HTML is made, so that Markdown never reads
# the rendered markup and a page's equations are rendered together.
_INLINE = re.compile(r"\$`([^`]+?)`\$")
_DISPLAY = re.compile(r"^\$\$[ \t]*\n(.+?)\n\$\$[ \t]*$", re.S | re.M)
_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
# The docstrings of the API pages reach the HTML without passing `on_page_markdown`
# (mkdocstrings converts them itself): their `$`...`$` arrives as `$<code>...</code>$`, and a
# display equation, written `$$`...`$$` on a line of its own, as `<p>$$<code>...</code>$$</p>`.
_HTML_DISPLAY = re.compile(r"\$\$<code>(.+?)</code>\$\$", re.S)
_HTML_INLINE = re.compile(r"\$<code>(.+?)</code>\$", re.S)


@functools.cache
def _katex() -> str:
    """KaTeX's command-line renderer bundled with markdown-katex (the docs extra), called
    directly: its own lookup tries `npx katex` on every call where Node is installed, a second
    each, and could pick up another KaTeX."""
    from markdown_katex import wrapper

    return str(wrapper._get_pkg_bin_path())


@functools.cache
def _tex(tex: str, display: bool) -> str:
    command = [_katex()] + (["--display-mode"] if display else [])
    done = subprocess.run(command, input=tex.encode(), capture_output=True, check=False)
    if done.returncode:  # KaTeX's parse errors: fail the build, naming the equation
        raise ValueError(f"KaTeX could not render {tex!r}: {done.stderr.decode().strip()}")
    return " ".join(done.stdout.decode().strip().split("\n"))


def _placeholder(found: list, tex: str, display: bool) -> str:
    found.append((tex, display))
    return f"OILEMATH{len(found) - 1:05d}X"


def mark_math(markdown: str, found: list) -> str:
    """`markdown` with each equation replaced by a placeholder (its `(tex, display)` appended
    to `found`); fenced code is left as it is."""

    def outside_code(text: str) -> str:
        text = _DISPLAY.sub(
            lambda m: "\n" + _placeholder(found, m.group(1).strip(), True) + "\n", text
        )
        return _INLINE.sub(lambda m: _placeholder(found, m.group(1), False), text)

    out, start = [], 0
    for fence in _FENCE.finditer(markdown):
        out.append(outside_code(markdown[start : fence.start()]))
        out.append(fence.group(0))
        start = fence.end()
    out.append(outside_code(markdown[start:]))
    return "".join(out)


def mark_html_math(html: str, found: list) -> str:
    """`html` with the docstrings' equations replaced by placeholders, as `mark_math` does."""
    from html import unescape

    html = _HTML_DISPLAY.sub(lambda m: _placeholder(found, unescape(m.group(1)), True), html)
    return _HTML_INLINE.sub(lambda m: _placeholder(found, unescape(m.group(1)), False), html)


def insert_math(html: str, found: list) -> str:
    """The equations `found` rendered, several KaTeX processes at a time (each call is mostly
    its start-up, about 0.15 s), in place of their placeholders (a display equation's paragraph
    becomes a `div.oile-math`)."""
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:
        list(pool.map(lambda pair: _tex(*pair), dict.fromkeys(found)))  # into `_tex`'s cache
    for k, equation in enumerate(_tex(*pair) for pair in found):
        token = f"OILEMATH{k:05d}X"
        block = f"<p>{token}</p>"
        if block in html:
            html = html.replace(block, f'<div class="oile-math">{equation}</div>')
        html = html.replace(token, equation)
    return html
