"""The documentation sources, without building the site (the build itself, `mkdocs build
--strict` and docs/check_site.py on its output, runs in .ci/docs_wheel.sh).

* the home page shows the README's example, verbatim;
* the notebooks refer to documentation pages by links (which docs/build_notebooks.py
  rewrites for the site), never as bare ``docs/...`` text;
* docs/check_site.py finds what would need a network to show a page;
* the concept pages and the derivations hold their key equations as math.
"""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_site = _load("check_site", ROOT / "docs" / "check_site.py")
EXAMPLE = re.compile(r"## Example\n\n(```python\n.*?```)\n", re.S)


def test_home_page_example_is_the_readme_example():
    readme = EXAMPLE.search((ROOT / "README.md").read_text()).group(1)
    home = EXAMPLE.search((ROOT / "docs" / "index.md").read_text()).group(1)
    assert home == readme
    assert "fs.det(" not in home  # the entries' determinant loses its sign (Conventions)


def test_notebooks_link_to_the_docs():
    for path in sorted((ROOT / "notebooks").glob("0*.py")):
        text = path.read_text()
        bare = re.findall(r"(?<!\(\.\./)`?docs/[\w/-]+\.md", text)
        assert not bare, f"{path.name}: bare references {bare}"
        for target in re.findall(r"\]\(\.\./docs/([\w/-]+\.md)", text):
            assert (ROOT / "docs" / target).is_file(), f"{path.name}: no docs/{target}"


def test_site_links_are_rewritten_for_the_site():
    pytest = __import__("pytest")
    pytest.importorskip("nbformat")
    build = _load("build_notebooks", ROOT / "docs" / "build_notebooks.py")
    text = "see [Coordinates](../docs/concepts/coordinates.md#precision-guards) and " \
           "[Derivations](../docs/derivations.md), [home](../docs/index.md)"
    assert build.site_links(text) == (
        "see [Coordinates](../../concepts/coordinates/#precision-guards) and "
        "[Derivations](../../derivations/), [home](../../)")


def test_check_site_finds_remote_loads():
    page = """<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">
<script src="//cdn.example.org/x.js"></script><script src="../assets/mathjax/MathJax.js">
</script><a href="https://example.org/paper">the paper</a>
<style>@import url("https://example.org/a.css"); .x { background: url(../local.png) }</style>
<img src="data:image/png;base64,AAAA">"""
    found = check_site.remote_loads(page)
    assert found == ['<script src="//cdn.example.org/x.js',
                     '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto',
                     '@import url("https://example.org/a.css',
                     'url("https://example.org/a.css']
    assert check_site.has_math('<span class="arithmatex">\\(x\\)</span>')
    assert not check_site.has_math("<p>costs 5 dollars</p>")


def test_key_equations_are_math():
    # (arithmatex: \( \) inline, \[ \] display; what docs/check_site.py looks for in the
    # built pages)
    for page in ("derivations.md", "conventions.md", "concepts/problems-and-models.md",
                 "concepts/coordinates.md", "concepts/gradient-descent.md"):
        text = (ROOT / "docs" / page).read_text()
        assert "\\[" in text or "\\(" in text, page
        # a formula's indented continuation line that starts with "+ " or "- " becomes a
        # (nested) list item
        broken = [line for line in text.splitlines() if line[:1] in (" ", "\t")
                  and line.lstrip().startswith(("+ \\", "- \\"))]
        assert not broken, f"{page}: {broken}"
    derivations = (ROOT / "docs" / "derivations.md").read_text()
    # no formula left as code: the old ASCII forms
    for ascii_form in ("`sqrt(", "`W11", "`l(W)", "`sigma", "`erank"):
        assert ascii_form not in derivations, ascii_form
