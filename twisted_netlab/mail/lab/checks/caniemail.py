"""
caniemail.com's support data for the HTML check: which email clients
support which HTML and CSS features, vendored as package data.

The data is C{data/caniemail.json} of the npm package C{caniemail} (MIT,
by Avi Goldman and Andrew Powell; its licence is C{data/caniemail-LICENSE}),
and C{data/caniemail.source.json} records which version it is, when it was
fetched and its digest.  Refresh it (npm needed) with::

    python -m twisted_netlab.mail.lab.checks.caniemail --refresh [--version 2.0.2]

then commit the three files.  Without C{--refresh} the command says which
data is vendored.

L{feature_warning} turns one feature into a Warning of Mailpit's
HTMLCheckResponse; L{platforms} is its C{Platforms} map.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from markdown_it import MarkdownIt

from twisted_netlab.mail.lab.checks.context import CheckError

DATA_FILE = "caniemail.json"
LICENSE_FILE = "caniemail-LICENSE"
SOURCE_FILE = "caniemail.source.json"
PACKAGE = "caniemail"
SITE = "https://www.caniemail.com/"

_MARKDOWN = MarkdownIt("commonmark", {"html": False})


def data_dir() -> Path:
    """
    Where the vendored files are (inside the installed package).
    """
    return Path(str(files(__package__) / "data"))


@dataclass(frozen=True)
class Support:
    """
    One client version's support of a feature, as caniemail codes it
    (C{"y"}, C{"n"}, C{"a #1 #2"}, C{"u"}).

    @ivar support: C{"yes"}, C{"no"} or C{"partial"} (Mailpit's words);
        L{None} for caniemail's C{"u"}, support unknown.
    @ivar notes: the numbers of the notes that apply (C{("1", "2")}).
    """

    support: str | None
    notes: tuple[str, ...]

    @classmethod
    def parse(cls, code: str) -> Support:
        words = code.split()
        letter = words[0] if words else "u"
        notes = tuple(w[1:] for w in words[1:] if w.startswith("#") and w[1:])
        support = {"y": "yes", "n": "no", "a": "partial"}.get(letter)
        return cls(support, notes)


class CanIEmail:
    """
    The loaded data: features by slug and the display names.
    """

    def __init__(self, document: Mapping[str, Any]) -> None:
        try:
            self.api_version = str(document["api_version"])
            self.last_update_date = str(document["last_update_date"])
            nicenames = document["nicenames"]
            self.family_names: dict[str, str] = dict(nicenames["family"])
            self.platform_names: dict[str, str] = dict(nicenames["platform"])
            self.features: dict[str, dict[str, Any]] = {
                str(f["slug"]): f for f in document["data"]
            }
        except (KeyError, TypeError) as e:
            raise CheckError(f"caniemail data: not in the expected shape ({e})") from e

    def results(self, slug: str) -> Iterator[tuple[str, str, str, Support]]:
        """
        Every (family, platform, version, support) the data has for a
        feature, in the data's order.
        """
        stats = self.features[slug].get("stats") or {}
        for family, by_platform in stats.items():
            for platform, by_version in by_platform.items():
                for version, code in by_version.items():
                    yield family, platform, version, Support.parse(str(code))


@functools.cache
def load() -> CanIEmail:
    """
    The vendored data, read once.
    """
    path = data_dir() / DATA_FILE
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise CheckError(f"cannot read caniemail data {path}: {e}") from e
    return CanIEmail(document)


def markdown_to_html(text: str | None) -> str:
    """
    caniemail's Markdown as HTML, as Mailpit serves it: one paragraph
    without its C{<p>}, links absolute to caniemail.com and opening in a new
    tab.  Raw HTML in the text is escaped, never passed through.
    """
    if not text:
        return ""
    tokens = _MARKDOWN.parse(text)
    for token in tokens:
        for child in token.children or ():
            if child.type == "link_open":
                child.attrSet("href", urljoin(SITE, str(child.attrGet("href") or "")))
                child.attrSet("target", "_blank")
                child.attrSet("rel", "noopener")
    rendered = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {}).strip()
    if rendered.startswith("<p>") and rendered.endswith("</p>"):
        inner = rendered[3:-4]
        if "<p>" not in inner:
            return inner
    return rendered


@functools.cache
def _warning(slug: str) -> dict[str, Any]:
    data = load()
    feature = data.features[slug]
    results: list[dict[str, str]] = []
    counts = {"yes": 0, "no": 0, "partial": 0}
    for family, platform, version, support in data.results(slug):
        if support.support is None:
            continue
        counts[support.support] += 1
        family_name = data.family_names.get(family, family)
        platform_name = data.platform_names.get(platform, platform)
        results.append(
            {
                "Name": f"{family_name} {platform_name} ({version})",
                "Platform": platform,
                "Family": family,
                "Version": version,
                "Support": support.support,
                "NoteNumber": ", ".join(support.notes),
            }
        )
    total = sum(counts.values()) or 1
    notes = feature.get("notes_by_num") or {}
    return {
        "Slug": slug,
        "Title": str(feature.get("title") or slug),
        "Description": markdown_to_html(feature.get("description")),
        "URL": str(feature.get("url") or ""),
        "Category": str(feature.get("category") or ""),
        "Tags": [str(t) for t in feature.get("tags") or ()],
        "Keywords": str(feature.get("keywords") or ""),
        "Results": results,
        "NotesByNumber": {str(k): markdown_to_html(v) for k, v in notes.items()},
        "Score": {
            "Found": 0,
            "Supported": counts["yes"] / total * 100,
            "Partial": counts["partial"] / total * 100,
            "Unsupported": counts["no"] / total * 100,
        },
    }


def feature_warning(slug: str, found: int) -> dict[str, Any]:
    """
    The Warning of Mailpit's HTMLCheckResponse for a feature found C{found}
    times: the feature's title, description and notes (as HTML), each
    client version's support and the shares of client versions supporting
    it, partly or not.  A version whose support is unknown is left out of
    the results and the shares.

    @raise KeyError: the data has no such feature.
    """
    shared = _warning(slug)
    return {
        **shared,
        "Tags": list(shared["Tags"]),
        "Results": [dict(result) for result in shared["Results"]],
        "NotesByNumber": dict(shared["NotesByNumber"]),
        "Score": {**shared["Score"], "Found": found},
    }


@functools.cache
def _platforms() -> dict[str, list[str]]:
    data = load()
    by_platform: dict[str, set[str]] = {}
    for feature in data.features.values():
        for family, stats in (feature.get("stats") or {}).items():
            for platform in stats:
                name = data.family_names.get(family, family)
                by_platform.setdefault(platform, set()).add(name)
    return {p: sorted(names) for p, names in by_platform.items()}


def platforms() -> dict[str, list[str]]:
    """
    Every platform in the data with the client families tested on it
    (Mailpit's C{Platforms}: C{{"ios": ["Apple Mail", "Gmail", ...]}}).
    """
    return {p: list(names) for p, names in _platforms().items()}


# --- refreshing the vendored copy -------------------------------------------


class RefreshError(CheckError):
    """
    The data could not be refreshed: C{str()} says why, in one line.
    """


def _pack(spec: str, workdir: Path) -> tuple[Path, dict[str, Any]]:
    npm = shutil.which("npm")
    if npm is None:
        raise RefreshError("npm is not installed (Debian: apt-get install npm)")
    try:
        done = subprocess.run(
            [npm, "pack", spec, "--json", "--pack-destination", str(workdir)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RefreshError(f"npm pack {spec}: {e}") from e
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise RefreshError(f"npm pack {spec}: {last}")
    try:
        info = json.loads(done.stdout)[0]
        return workdir / info["filename"], info
    except (ValueError, LookupError, TypeError) as e:
        raise RefreshError(f"npm pack {spec}: unexpected output ({e})") from e


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    try:
        handle = archive.extractfile(f"package/{name}")
    except KeyError:
        handle = None
    if handle is None:
        raise RefreshError(f"the package has no {name}")
    return handle.read()


def refresh(
    version: str = "latest", destination: Path | None = None, *, today: str = ""
) -> dict[str, Any]:
    """
    Fetch C{caniemail@version} with C{npm pack} and write its data, its
    licence and a note of where they came from into C{destination} (the
    package's data directory by default).  Returns the note.

    @raise RefreshError: npm is missing or fails, or the package does not
        hold data in the shape the check reads.
    """
    target = destination or data_dir()
    spec = f"{PACKAGE}@{version}"
    with tempfile.TemporaryDirectory(prefix="netlab-caniemail-") as work:
        tarball, info = _pack(spec, Path(work))
        try:
            with tarfile.open(tarball) as archive:
                data = _member(archive, "data/caniemail.json")
                licence = _member(archive, "LICENSE")
        except (OSError, tarfile.TarError) as e:
            raise RefreshError(f"cannot read {tarball.name}: {e}") from e
    try:
        checked = CanIEmail(json.loads(data))
    except (ValueError, CheckError) as e:
        raise RefreshError(f"{spec}: data/caniemail.json: {e}") from e
    note = {
        "package": PACKAGE,
        "version": str(info.get("version", version)),
        "license": "MIT",
        "repository": "https://github.com/shellscape/caniemail",
        "file": "data/caniemail.json",
        "api_version": checked.api_version,
        "last_update_date": checked.last_update_date,
        "features": len(checked.features),
        "fetched": today or datetime.date.today().isoformat(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "npm_integrity": str(info.get("integrity", "")),
    }
    target.mkdir(parents=True, exist_ok=True)
    for name, content in (
        (DATA_FILE, data),
        (LICENSE_FILE, licence),
        (SOURCE_FILE, (json.dumps(note, indent=2) + "\n").encode()),
    ):
        partial = target / (name + ".part")
        partial.write_bytes(content)
        os.replace(partial, target / name)
    return note


def main(argv: list[str] | None = None) -> int:
    """
    C{python -m twisted_netlab.mail.lab.checks.caniemail}: say which data is
    vendored, or refresh it.
    """
    parser = argparse.ArgumentParser(
        prog="python -m twisted_netlab.mail.lab.checks.caniemail",
        description="Show or refresh the vendored caniemail.com support data "
        "of the HTML check (npm needed to refresh).",
    )
    parser.add_argument(
        "--refresh", action="store_true", help="fetch the data with npm pack"
    )
    parser.add_argument(
        "--version", default="latest", help="the npm version (default latest)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where to write (default: the package's data directory)",
    )
    args = parser.parse_args(argv)
    where = args.data_dir or data_dir()
    try:
        if args.refresh:
            note = refresh(args.version, where)
            print(
                f"caniemail {note['version']} ({note['features']} features, "
                f"updated {note['last_update_date']}) written to {where}"
            )
            return 0
        note = json.loads((where / SOURCE_FILE).read_text())
    except (OSError, ValueError) as e:
        print(f"caniemail: cannot read {where / SOURCE_FILE}: {e}", file=sys.stderr)
        return 1
    except RefreshError as e:
        print(f"caniemail: {e}", file=sys.stderr)
        return 1
    print(
        f"caniemail {note.get('version')} ({note.get('features')} features, "
        f"updated {note.get('last_update_date')}), fetched {note.get('fetched')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
