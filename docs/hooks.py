"""mkdocs hooks: the site works offline.

* MathJax (2.7, from the ``jupyter-server-mathjax`` package of the docs extra) is copied
  into ``site/assets/mathjax`` after the build, and every page loads it from there
  (``extra_javascript`` in mkdocs.yml, configured by ``docs/javascripts/mathjax-config.js``):
  the formulas of the Markdown pages (``pymdownx.arithmatex``) and of the notebook pages
  render without a network.
* The notebook pages (mkdocs-jupyter, nbconvert's templates) carry their own MathJax and
  mermaid loaders pointing at a CDN; they are removed, the site's MathJax typesets those
  pages too.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

#: nbconvert's MathJax block (a CDN script and its configuration)
_NB_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->",
                         re.S)
#: nbconvert's mermaid loader (imports mermaid from a CDN when a diagram is present)
_NB_MERMAID = re.compile(r"<script type=\"module\">(?:(?!</script>).)*?mermaid"
                         r"(?:(?!</script>).)*?</script>", re.S)
#: what of MathJax's static folder the site needs (no translations, no unpacked sources)
_SKIP = shutil.ignore_patterns("localization", "unpacked", "*.md")


def _mathjax_dir() -> Path:
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).resolve().parent / "static"


def on_page_content(html: str, page, config, files):
    if "jupyter-wrapper" in html:
        html = _NB_MATHJAX.sub("", html)
        html = _NB_MERMAID.sub("", html)
    return html


def on_post_build(config, **kwargs):
    target = Path(config["site_dir"]) / "assets" / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(_mathjax_dir(), target, ignore=_SKIP)
