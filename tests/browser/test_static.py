"""
The inbox page's files as shipped (package data C{web/static/}): what its
Content-Security-Policy and its escaping rule need of them, checked without
a browser.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

STATIC = (
    Path(__file__).resolve().parents[2] / "twisted_netlab" / "mail" / "lab" / "web"
) / "static"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data


class StaticFilesTests(SynchronousTestCase):
    def parse(self) -> _Tags:
        parser = _Tags()
        parser.feed((STATIC / "index.html").read_text())
        return parser

    def test_scripts_are_files_of_our_own(self) -> None:
        """
        index.html has no inline script, no inline event handler and no
        style attribute (the page's CSP allows only 'self' files), and every
        script and stylesheet it loads is one of the shipped files.
        """
        page = self.parse()
        self.assertEqual(page.script_text.strip(), "")
        for tag, attrs in page.tags:
            for name in attrs:
                self.assertFalse(name.startswith("on"), f"<{tag} {name}>")
                self.assertNotEqual(name, "style", f"<{tag} style>")
            if tag == "script":
                self.assertEqual(attrs.get("type"), "module")
                self.assertTrue((STATIC / str(attrs["src"])).is_file(), attrs)
            if tag == "link" and attrs.get("rel") == "stylesheet":
                self.assertTrue((STATIC / str(attrs["href"])).is_file(), attrs)

    def test_html_frame_is_sandboxed_without_scripts(self) -> None:
        """
        The frame that shows message HTML carries an empty sandbox attribute:
        no scripts, no same-origin access, no forms, no top navigation.
        """
        frames = [attrs for tag, attrs in self.parse().tags if tag == "iframe"]
        self.assertEqual(len(frames), 1)
        self.assertIn("sandbox", frames[0])
        self.assertEqual(frames[0]["sandbox"] or "", "")

    def test_scripts_never_write_markup(self) -> None:
        """
        No module of the page writes markup from strings (innerHTML,
        outerHTML, insertAdjacentHTML, document.write): mail data can only
        reach the page as text.
        """
        sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write")
        modules = sorted(STATIC.glob("*.js"))
        self.assertTrue(modules)
        for module in modules:
            code = "\n".join(
                line
                for line in module.read_text().splitlines()
                if not line.lstrip().startswith("//")
            )
            self.assertIsNone(sinks.search(code), module.name)

    def test_module_imports_are_relative_files(self) -> None:
        """
        The modules import only each other (no CDN, no npm, no build step).
        """
        for module in STATIC.glob("*.js"):
            for target in re.findall(
                r"""^import .* from ["'](.+)["'];""", module.read_text(), re.M
            ):
                self.assertTrue(target.startswith("./"), target)
                self.assertTrue((STATIC / target).is_file(), target)
