"""
Tests for L{twisted_netlab.mail.lab.checks.caniemail}: the vendored
caniemail.com data, the Warnings made from it in Mailpit's shape, and the
script that refreshes the data.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.checks import caniemail
from twisted_netlab.mail.lab.checks.caniemail import (
    RefreshError,
    Support,
    data_dir,
    feature_warning,
    markdown_to_html,
    platforms,
    refresh,
)

#: the properties of Mailpit's swagger.json definitions HTMLCheckWarning,
#: HTMLCheckResult and HTMLCheckScore (server/ui/api/v1/swagger.json)
WARNING_FIELDS = {
    "Category",
    "Description",
    "Keywords",
    "NotesByNumber",
    "Results",
    "Score",
    "Slug",
    "Tags",
    "Title",
    "URL",
}
RESULT_FIELDS = {"Family", "Name", "NoteNumber", "Platform", "Support", "Version"}
SCORE_FIELDS = {"Found", "Partial", "Supported", "Unsupported"}


class VendoredDataTests(SynchronousTestCase):
    """
    The data in the package is what its note says it is.
    """

    def test_note_matches_the_data(self) -> None:
        """
        The source note's digest, date and feature count are those of the
        vendored JSON, and it names the npm package and version.
        """
        note = json.loads((data_dir() / caniemail.SOURCE_FILE).read_text())
        data = (data_dir() / caniemail.DATA_FILE).read_bytes()
        self.assertEqual(note["sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual(note["package"], "caniemail")
        self.assertEqual(note["license"], "MIT")
        loaded = caniemail.load()
        self.assertEqual(note["last_update_date"], loaded.last_update_date)
        self.assertEqual(note["features"], len(loaded.features))
        self.assertRegex(note["version"], r"^\d+\.\d+\.\d+$")
        self.assertRegex(note["fetched"], r"^\d{4}-\d\d-\d\d$")

    def test_licence_is_vendored(self) -> None:
        """
        The MIT licence of the data sits beside it.
        """
        text = (data_dir() / caniemail.LICENSE_FILE).read_text()
        self.assertIn("MIT License", text)
        self.assertIn("Permission is hereby granted", text)

    def test_known_slugs(self) -> None:
        """
        The slugs Mailpit's HTML check uses are in the data.
        """
        features = caniemail.load().features
        for slug in ("css-display-flex", "html-video", "css-at-media", "image-webp"):
            self.assertIn(slug, features)


class SupportTests(SynchronousTestCase):
    """
    caniemail's support codes.
    """

    def test_codes(self) -> None:
        """
        C{y}, C{n} and C{a} are yes, no and partial whatever notes follow;
        C{u} is unknown; every note number is kept.
        """
        cases = {
            "y": Support("yes", ()),
            "n": Support("no", ()),
            "a": Support("partial", ()),
            "a #1": Support("partial", ("1",)),
            "y #2": Support("yes", ("2",)),
            "n #1 #3": Support("no", ("1", "3")),
            "a #12": Support("partial", ("12",)),
            "u": Support(None, ()),
            "": Support(None, ()),
        }
        for code, expected in cases.items():
            self.assertEqual(Support.parse(code), expected, code)


class WarningTests(SynchronousTestCase):
    """
    L{feature_warning}: one feature as a Warning of HTMLCheckResponse.
    """

    def test_shape(self) -> None:
        """
        A Warning has exactly the fields of Mailpit's HTMLCheckWarning, its
        results those of HTMLCheckResult, its score those of HTMLCheckScore,
        with the types the swagger gives.
        """
        warning = feature_warning("css-display-flex", 3)
        self.assertEqual(set(warning), WARNING_FIELDS)
        self.assertEqual(set(warning["Score"]), SCORE_FIELDS)
        self.assertTrue(warning["Results"])
        for result in warning["Results"]:
            self.assertEqual(set(result), RESULT_FIELDS)
            self.assertIn(result["Support"], ("yes", "no", "partial"))
            for name in RESULT_FIELDS:
                self.assertIsInstance(result[name], str)
        self.assertEqual(warning["Slug"], "css-display-flex")
        self.assertEqual(warning["Category"], "css")
        self.assertEqual(warning["Title"], "display:flex")
        self.assertEqual(
            warning["URL"], "https://www.caniemail.com/features/css-display-flex/"
        )
        self.assertIsInstance(warning["Tags"], list)
        self.assertIsInstance(warning["Keywords"], str)
        self.assertEqual(warning["Score"]["Found"], 3)

    def test_score_counts_versions(self) -> None:
        """
        The score is the share of client versions with each support, the
        unknown ones left out: computed here from the raw data.
        """
        slug = "css-display-flex"
        codes = [
            code
            for platforms_ in caniemail.load().features[slug]["stats"].values()
            for versions in platforms_.values()
            for code in versions.values()
        ]
        known = [c for c in codes if not c.startswith("u")]
        yes = sum(1 for c in known if c.startswith("y"))
        no = sum(1 for c in known if c.startswith("n"))
        score = feature_warning(slug, 1)["Score"]
        self.assertAlmostEqual(score["Supported"], yes / len(known) * 100)
        self.assertAlmostEqual(score["Unsupported"], no / len(known) * 100)
        self.assertAlmostEqual(
            score["Supported"] + score["Partial"] + score["Unsupported"], 100
        )
        self.assertEqual(len(feature_warning(slug, 1)["Results"]), len(known))

    def test_result_names_and_notes(self) -> None:
        """
        A result's name is the family, platform and version in words; a
        partial one carries its note numbers, and the notes are HTML.
        """
        warning = feature_warning("css-display-flex", 1)
        names = {r["Name"] for r in warning["Results"]}
        self.assertIn("Gmail Desktop Webmail (2019-02)", names)
        noted = [r for r in warning["Results"] if r["NoteNumber"]]
        self.assertTrue(noted)
        for result in noted:
            for number in result["NoteNumber"].split(", "):
                self.assertIn(number, warning["NotesByNumber"])

    def test_copies(self) -> None:
        """
        Each Warning is a fresh copy: changing one changes no other.
        """
        first = feature_warning("html-video", 1)
        first["Results"].clear()
        first["Score"]["Found"] = 99
        second = feature_warning("html-video", 2)
        self.assertTrue(second["Results"])
        self.assertEqual(second["Score"]["Found"], 2)

    def test_unknown_slug(self) -> None:
        """
        A slug the data lacks is a KeyError.
        """
        self.assertRaises(KeyError, feature_warning, "html-no-such-thing", 1)

    def test_platforms(self) -> None:
        """
        Platforms maps each platform to its client families' names, sorted.
        """
        found = platforms()
        self.assertIn("Gmail", found["android"])
        self.assertIn("Outlook", found["windows"])
        for names in found.values():
            self.assertEqual(names, sorted(names))
            self.assertEqual(len(names), len(set(names)))


class MarkdownTests(SynchronousTestCase):
    """
    caniemail's Markdown as the HTML Mailpit serves.
    """

    def test_code_and_links(self) -> None:
        """
        Code spans become C{<code>}, a relative link points at caniemail.com
        and opens in a new tab, and one paragraph loses its C{<p>}.
        """
        html = markdown_to_html("See [SVG](/features/image-svg) and `<svg>`.")
        self.assertEqual(
            html,
            'See <a href="https://www.caniemail.com/features/image-svg" '
            'target="_blank" rel="noopener">SVG</a> and <code>&lt;svg&gt;</code>.',
        )

    def test_raw_html_is_escaped(self) -> None:
        """
        HTML written in the text is shown, never passed through.
        """
        html = markdown_to_html("The first <head> is <script>x</script> removed")
        self.assertNotIn("<head>", html)
        self.assertNotIn("<script>", html)
        self.assertIn("&lt;head&gt;", html)

    def test_empty(self) -> None:
        """
        No text is an empty description.
        """
        self.assertEqual(markdown_to_html(None), "")
        self.assertEqual(markdown_to_html(""), "")


FAKE_NPM = """#!/bin/sh
# a stand-in for npm pack: writes the tarball named by FAKE_NPM_TARBALL
[ "$1" = pack ] || exit 9
echo "$2" > "$FAKE_NPM_LOG"
if [ -n "$FAKE_NPM_FAIL" ]; then echo "npm error 404 Not Found" >&2; exit 1; fi
cp "$FAKE_NPM_TARBALL" "$5/caniemail-9.9.9.tgz"
echo '[{"filename": "caniemail-9.9.9.tgz", "version": "9.9.9",'
echo '  "integrity": "sha512-x"}]'
"""


class RefreshTests(SynchronousTestCase):
    """
    L{refresh} and the command: the data fetched with C{npm pack} (a
    stand-in npm here: the tests do not reach the registry).
    """

    def setUp(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="netlab-caniemail-test-"))
        self.addCleanup(self._clean)
        bin_dir = self.work / "bin"
        bin_dir.mkdir()
        npm = bin_dir / "npm"
        npm.write_text(FAKE_NPM)
        npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
        self.data = {
            "api_version": "1.0.4",
            "last_update_date": "2030-01-02 03:04:05 +0000",
            "nicenames": {"family": {}, "platform": {}},
            "data": [{"slug": "html-video", "stats": {}}],
        }
        self.tarball = self.work / "package.tgz"
        self.pack({"data/caniemail.json": json.dumps(self.data).encode()})
        self.environ = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "FAKE_NPM_TARBALL": str(self.tarball),
            "FAKE_NPM_LOG": str(self.work / "npm.log"),
        }
        saved = dict(os.environ)
        os.environ.update(self.environ)

        def restore() -> None:
            os.environ.clear()
            os.environ.update(saved)

        self.addCleanup(restore)

    def _clean(self) -> None:
        import shutil

        shutil.rmtree(self.work, ignore_errors=True)

    def pack(self, files: dict[str, bytes], licence: bool = True) -> None:
        if licence:
            files = {**files, "LICENSE": b"MIT License\n"}
        with tarfile.open(self.tarball, "w:gz") as archive:
            for name, content in files.items():
                info = tarfile.TarInfo(f"package/{name}")
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))

    def test_refresh_writes_data_licence_and_note(self) -> None:
        """
        The data and licence are written as packed, with a note of the
        version, the data's date, its digest and the day.
        """
        target = self.work / "data"
        note = refresh("9.9.9", target, today="2031-02-03")
        self.assertEqual((self.work / "npm.log").read_text().strip(), "caniemail@9.9.9")
        written = (target / caniemail.DATA_FILE).read_bytes()
        self.assertEqual(json.loads(written), self.data)
        self.assertEqual((target / caniemail.LICENSE_FILE).read_text(), "MIT License\n")
        self.assertEqual(json.loads((target / caniemail.SOURCE_FILE).read_text()), note)
        self.assertEqual(note["version"], "9.9.9")
        self.assertEqual(note["last_update_date"], "2030-01-02 03:04:05 +0000")
        self.assertEqual(note["features"], 1)
        self.assertEqual(note["fetched"], "2031-02-03")
        self.assertEqual(note["sha256"], hashlib.sha256(written).hexdigest())
        self.assertEqual(
            sorted(p.name for p in target.iterdir()),
            sorted(
                [caniemail.DATA_FILE, caniemail.LICENSE_FILE, caniemail.SOURCE_FILE]
            ),
        )

    def test_package_without_data(self) -> None:
        """
        A package without data/caniemail.json is refused and nothing is
        written.
        """
        self.pack({"README.md": b"hi"})
        target = self.work / "data"
        error = self.assertRaises(RefreshError, refresh, "9.9.9", target)
        self.assertIn("data/caniemail.json", str(error))
        self.assertFalse(target.exists())

    def test_data_in_another_shape(self) -> None:
        """
        Data without the fields the check reads is refused.
        """
        self.pack({"data/caniemail.json": b'{"data": []}'})
        error = self.assertRaises(RefreshError, refresh, "9.9.9", self.work / "d")
        self.assertIn("expected shape", str(error))

    def test_npm_fails(self) -> None:
        """
        npm's own last line of error is the reason.
        """
        os.environ["FAKE_NPM_FAIL"] = "1"
        error = self.assertRaises(RefreshError, refresh, "0.0.0", self.work / "d")
        self.assertEqual(
            str(error), "npm pack caniemail@0.0.0: npm error 404 Not Found"
        )

    def test_no_npm(self) -> None:
        """
        Without npm the refresh says what to install.
        """
        os.environ["PATH"] = str(self.work / "nowhere")
        error = self.assertRaises(RefreshError, refresh, "latest", self.work / "d")
        self.assertIn("npm is not installed", str(error))

    def run_main(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = caniemail.main(list(argv))
        return code, out.getvalue(), err.getvalue()

    def test_command(self) -> None:
        """
        C{--refresh} writes and says what; without it the command reports
        the vendored note; a failure is one line and exit status 1.
        """
        target = str(self.work / "data")
        code, out, _ = self.run_main(
            "--refresh", "--version", "9.9.9", "--data-dir", target
        )
        self.assertEqual(code, 0)
        self.assertIn("caniemail 9.9.9 (1 features", out)
        code, out, _ = self.run_main("--data-dir", target)
        self.assertEqual(code, 0)
        self.assertIn("caniemail 9.9.9", out)
        os.environ["FAKE_NPM_FAIL"] = "1"
        code, out, err = self.run_main("--refresh", "--data-dir", target)
        self.assertEqual(code, 1)
        self.assertEqual(err.count("\n"), 1)
        self.assertTrue(err.startswith("caniemail: npm pack caniemail@latest"))
        code, _, err = self.run_main("--data-dir", str(self.work / "empty"))
        self.assertEqual(code, 1)
        self.assertEqual(err.count("\n"), 1)
