"""The documentation: generated regions are fresh, every relative link and picture exists, the
site builds strictly, and the README keeps its shape. Nothing here writes into the checkout."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ci import require

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *DOCS.rglob("*.md")])


def _gen():
    spec = importlib.util.spec_from_file_location("docs_gen", DOCS / "gen.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_region_is_what_the_code_and_the_results_give():
    gen = _gen()
    for name in gen.PAGES:
        text = (DOCS / name).read_text()
        assert gen.regenerate(text, name) == text, f"docs/{name} is stale: run make docs-gen"


def test_every_renderer_has_a_region_and_every_region_a_renderer():
    gen = _gen()
    found = []
    for name in gen.PAGES:
        text = (DOCS / name).read_text()
        names = gen.BEGIN.findall(text)
        assert text.count(gen.END) == len(names), f"docs/{name}: a BEGIN without its END or the reverse"
        found += names
    assert sorted(found) == sorted(gen.REGIONS), "each generated region appears once"
    # No page outside gen.PAGES has a region the generator would never rewrite.
    for page in PAGES:
        if page.parent == DOCS and page.name in gen.PAGES:
            continue
        assert not gen.BEGIN.search(page.read_text()), (
            f"{page.relative_to(ROOT)} has a region gen.py does not rewrite"
        )


def test_the_option_reference_lists_every_option_and_preset():
    import painterly.methods  # noqa: F401
    from painterly.options import PRESETS, SPECS, flag

    text = (DOCS / "options.md").read_text()
    for name in SPECS:
        assert f"`{flag(name)}` (`{name}=`)" in text, name
    for preset in PRESETS:
        assert f"| `{preset}` |" in text, preset


def test_the_cli_reference_has_every_verb():
    import argparse

    from painterly.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    text = (DOCS / "cli-reference.md").read_text()
    for verb in sub.choices:
        assert f"## painterly {verb}\n" in text, verb


# --- links -----------------------------------------------------------------------------------
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _slug(heading: str) -> str:
    """The anchor of a heading, as the code host and mkdocs both make it for these pages."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return re.sub(r"[\s]+", "-", text)


def _anchors(path: Path) -> set:
    text = FENCE.sub("", path.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, re.M)}


def _links(path: Path):
    text = FENCE.sub("", path.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_exists(page):
    for target in _links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), f"{page.relative_to(ROOT)}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page.relative_to(ROOT)}: {target}: no heading #{anchor}"


def test_the_docs_pages_stay_inside_docs():
    """Links from a docs page to a file outside docs/ work on the code host but not on the site."""
    for page in DOCS.rglob("*.md"):
        for target in _links(page):
            file = target.partition("#")[0]
            if file:
                assert DOCS in (page.parent / file).resolve().parents, f"{page.relative_to(ROOT)}: {target}"


# --- the site -------------------------------------------------------------------------------
def test_the_site_builds_strictly_offline(tmp_path):
    require("mkdocs", "the docs build needs the docs extra: pip install -e '.[docs]'")
    require("material", "the docs build needs mkdocs-material: pip install -e '.[docs]'")
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "site" / "options.html").exists()


def test_every_page_is_in_the_nav():
    """mkdocs --strict fails on a page missing from nav; this says which, without mkdocs."""
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.rglob("*.md"):
        rel = page.relative_to(DOCS).as_posix()
        if rel != "pypi.md":
            assert f": {rel}" in nav or f"- {rel}" in nav, f"docs/{rel} is not in mkdocs.yml's nav"


# --- the README -----------------------------------------------------------------------------
def test_the_readme_is_short_and_opens_with_a_picture_and_the_two_commands():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 250
    first_screen = "\n".join(lines[:40])
    assert re.search(r"!\[[^\]]+\]\(docs/hero\.jpg\)", first_screen)
    block = re.search(r"^```\n(.*?)^```", text, re.S | re.M).group(1).splitlines()
    assert [line.split("#")[0].strip() for line in block] == ["make demo", "make test"]
    assert "painterly transfer photo.jpg painting.jpg -o out.png" in first_screen
    assert "not on the package index" in text


def test_the_readme_names_every_preset_it_offers():
    import painterly.methods  # noqa: F401
    from painterly.options import PRESETS

    text = (ROOT / "README.md").read_text()
    for preset in re.findall(r"--preset ([a-z]+)", text):
        assert preset in PRESETS, preset
