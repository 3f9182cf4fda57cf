"""User-facing text cites only what ships in the repository: `docs/physics.md` and its sections,
never the project's working spec."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USER_FACING = [
    *sorted((ROOT / "oile_jax").rglob("*.py")),
    *sorted((ROOT / "oile_jax" / "presets").glob("*.toml")),
    *sorted((ROOT / "experiments").glob("*.py")),
    ROOT / "README.md",
    ROOT / "experiments" / "README.md",
    *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "physics.md"),
    *sorted((ROOT / "docs").glob("*.py")),
]


def test_no_citation_of_a_document_outside_the_repository():
    offenders = [str(p.relative_to(ROOT)) for p in USER_FACING if "SPEC" in p.read_text()]
    assert not offenders, offenders


def test_cited_physics_sections_exist():
    text = (ROOT / "docs" / "physics.md").read_text()
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", text, flags=re.M)}
    assert sections == set(range(1, 15))
    cited = set()
    for path in USER_FACING:
        for group in re.findall(r"physics\.md sections? ([\d, and-]+)", path.read_text()):
            cited |= {int(n) for n in re.findall(r"\d+", group)}
    assert cited and cited <= sections, cited - sections


def test_the_citation_file_names_this_version_and_the_papers():
    """`CITATION.cff` (Citation File Format 1.2) carries the version of `pyproject.toml`, the one
    place it is set, and the OILE papers the README cites."""
    import tomllib

    text = (ROOT / "CITATION.cff").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert "cff-version: 1.2.0" in text and f'version: "{version}"' in text
    readme = (ROOT / "README.md").read_text()
    for arxiv in re.findall(r"arXiv:(\d{4}\.\d{5})", readme.split("## Cite")[1]):
        assert f"arXiv:{arxiv}" in text, arxiv
