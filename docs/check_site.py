"""Check a built site (``site/``) for what a lecture-hall machine without network needs.

    .venv/bin/python docs/check_site.py [SITE]     # default: site

Fails (exit status 1, one line per problem) when

* a page loads anything from another host: a ``<script src>``, ``<link href>`` (style
  sheets, fonts, preconnects), ``<img src>``, ``<iframe src>`` or a CSS ``@import`` /
  ``url()`` with an ``http(s)://`` or protocol-relative address (plain ``<a href>`` links
  to other sites are fine: nothing is fetched to show the page);
* MathJax is missing from the site (``assets/mathjax/MathJax.js``, its configuration and
  its fonts), or a page that should show formulas has none (:data:`MATH_PAGES`: Markdown
  pages hold ``arithmatex`` spans, notebook pages TeX delimiters);
* a notebook page is not a page of the site (no site navigation) or still loads require.js
  or its own MathJax.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

#: pages (relative to the site) that must carry formulas
MATH_PAGES = ("derivations/index.html", "concepts/problems-and-models/index.html",
              "concepts/coordinates/index.html", "concepts/gradient-descent/index.html",
              "conventions/index.html")
NOTEBOOK_PAGES = ("notebooks/01_norms_to_infinity/index.html",
                  "notebooks/02_flow_vs_descent/index.html",
                  "notebooks/03_depth_matters/index.html",
                  "notebooks/04_tensor_rank/index.html")
MATHJAX_FILES = ("assets/mathjax/MathJax.js",
                 "assets/mathjax/config/TeX-AMS-MML_HTMLorMML-full.js",
                 "assets/mathjax/jax/output/HTML-CSS/fonts/STIX-Web/fontdata.js",
                 "javascripts/mathjax-config.js")

_REMOTE = r"(?:https?:)?//"
_FETCHING = [
    re.compile(r"<(?:script|img|iframe|source|audio|video)\b[^>]*?\bsrc\s*=\s*[\"']?"
               + _REMOTE + r"[^\"'\s>]*", re.I),
    re.compile(r"<link\b[^>]*?\bhref\s*=\s*[\"']?" + _REMOTE + r"[^\"'\s>]*", re.I),
    re.compile(r"@import\s+(?:url\()?\s*[\"']?" + _REMOTE + r"[^\"'\s)]*", re.I),
    re.compile(r"url\(\s*[\"']?" + _REMOTE + r"[^\"'\s)]*", re.I),
    re.compile(r"import\(\s*[\"']" + _REMOTE + r"[^\"']*", re.I),  # JS dynamic imports
]


def remote_loads(html: str) -> list[str]:
    """The addresses on other hosts that showing ``html`` would fetch."""
    return [m.group(0) for pattern in _FETCHING for m in pattern.finditer(html)]


def has_math(html: str) -> bool:
    """Formulas for MathJax: arithmatex's output or TeX delimiters in a notebook page."""
    return 'class="arithmatex"' in html or bool(re.search(r"\$[^$\s][^$]*\$|\\\(", html))


def check_site(site: Path) -> list[str]:
    problems = []
    for name in MATHJAX_FILES:
        if not (site / name).is_file():
            problems.append(f"missing {name}")
    pages = sorted(site.rglob("*.html"))
    if not pages:
        return problems + [f"no pages in {site}"]
    for page in pages:
        html = page.read_text(encoding="utf-8", errors="replace")
        rel = page.relative_to(site).as_posix()
        problems += [f"{rel}: loads {url}" for url in remote_loads(html)]
        if rel != "404.html" and "assets/mathjax/MathJax.js" not in html:
            problems.append(f"{rel}: does not load the site's MathJax")
    for rel in MATH_PAGES:
        page = site / rel
        if not page.is_file() or not has_math(page.read_text(encoding="utf-8")):
            problems.append(f"{rel}: no formulas")
    for rel in NOTEBOOK_PAGES:
        page = site / rel
        if not page.is_file():
            problems.append(f"{rel}: missing")
            continue
        html = page.read_text(encoding="utf-8")
        if 'class="md-nav' not in html or "jupyter-wrapper" not in html:
            problems.append(f"{rel}: not a notebook page in the site's navigation")
        if "require.js" in html or "require.min.js" in html:
            problems.append(f"{rel}: loads require.js")
        if "<!-- Load mathjax -->" in html:
            problems.append(f"{rel}: loads its own MathJax")
        if not has_math(html):
            problems.append(f"{rel}: no formulas")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    site = Path(argv[0] if argv else "site")
    problems = check_site(site)
    for problem in problems:
        print(problem)
    pages = len(list(site.rglob("*.html")))
    print(f"{site}: {pages} pages, {len(problems)} problems "
          f"({'works offline' if not problems else 'FAILED'})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
