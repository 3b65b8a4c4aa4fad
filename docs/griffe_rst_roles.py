"""Griffe extension used by the API pages (mkdocs.yml, mkdocstrings' python handler).

flowsim's docstrings are Markdown (an ``**Arguments:**`` list, fenced examples) with a few
reStructuredText leftovers. This turns them into Markdown before rendering:

- ``:func:`flowsim.x```, ``:class:`~a.b.C```, ``:data:`NAME``` (any role): an *optional*
  cross-reference, a link when the target is documented on the site, plain code otherwise
  (so ``mkdocs build --strict`` never fails on a target that has no page). A leading
  ``~`` shows the last name only; a relative target (``NAME``, ``.module``) is resolved
  in the scope of the object whose docstring it is.
- ``text::`` before an indented literal block: ``text:`` (the block renders as code).
"""

from __future__ import annotations

import html
import re

import griffe

ROLE = re.compile(r":(?:func|class|meth|attr|data|const|mod|obj|exc):`(~?)([^`<>]+)`")
LITERAL_MARKER = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)


def _resolve(obj: griffe.Object, target: str) -> str:
    """Full path of ``target`` as seen from ``obj`` (the target itself if unknown)."""
    if target.startswith("."):  # relative to the enclosing package or module
        module = obj if obj.is_module else obj.module
        base = module.path if module.is_init_module else module.path.rpartition(".")[0]
        return base + target if target != "." else base
    scope = obj
    while scope is not None:
        try:
            return scope.resolve(target)
        except (griffe.NameResolutionError, AttributeError, KeyError):
            scope = scope.parent
    return target


def convert(text: str, obj: griffe.Object) -> str:
    def role(match: re.Match) -> str:
        short, target = match.group(1), match.group(2).strip()
        title = target.rpartition(".")[2] if short else target.lstrip(".")
        identifier = _resolve(obj, target)
        return (f'<autoref identifier="{html.escape(identifier)}" optional>'
                f"<code>{html.escape(title)}</code></autoref>")

    return LITERAL_MARKER.sub(":", ROLE.sub(role, text))


class RstRoles(griffe.Extension):
    """Rewrite the roles of every docstring once the package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value, obj)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)
