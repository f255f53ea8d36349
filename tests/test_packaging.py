"""The package as an index would get it: `python -m build` makes the sdist, then the wheel from
that sdist (so a file missing from the sdist breaks the wheel), and their contents are checked.
"""

from __future__ import annotations

import email.parser
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import trove_classifiers

ROOT = Path(__file__).resolve().parent.parent
# A development machine's paths: none may appear in anything shipped.
MACHINE_PATH = re.compile(rb"/(?:work|root|home|Users|tmp)/[\w.-]+")
# A Markdown link or image whose target is not absolute breaks on a package index page.
RELATIVE_LINK = re.compile(r"!?\[[^\]]*\]\((?!https?://|#)([^)]*)\)")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return out


def only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def library_files() -> set[str]:
    package = ROOT / "logto_guard"
    return {
        path.relative_to(ROOT).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def sdist_members(dist: Path) -> dict[str, bytes]:
    with tarfile.open(only(dist, "logto_guard-*.tar.gz")) as archive:
        members = {}
        for member in archive.getmembers():
            if member.isfile():
                name = member.name.split("/", 1)[1]  # without the top directory
                extracted = archive.extractfile(member)
                assert extracted is not None
                members[name] = extracted.read()
        return members


def wheel_members(dist: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(only(dist, "logto_guard-*.whl")) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_sdist_is_the_library_and_its_documents(dist: Path) -> None:
    names = set(sdist_members(dist))
    egg_info = {n for n in names if n.startswith("logto_guard.egg-info/")}
    assert names - egg_info == library_files() | {
        "CHANGELOG.md",
        "LICENSE",
        "MANIFEST.in",
        "PKG-INFO",
        "README.md",
        "pyproject.toml",
        "setup.cfg",
    }
    assert not any(n.startswith(("tests/", "bench/", "example_app/", "scripts/")) for n in names)


def test_wheel_is_the_library_and_its_metadata(dist: Path) -> None:
    names = set(wheel_members(dist))
    dist_info = {n for n in names if n.startswith("logto_guard-") and ".dist-info/" in n}
    assert names - dist_info == library_files()
    assert "logto_guard/py.typed" in names
    assert {n.split("/", 1)[1] for n in dist_info} == {
        "METADATA",
        "RECORD",
        "WHEEL",
        "entry_points.txt",
        "licenses/LICENSE",
        "top_level.txt",
    }


def test_metadata_is_ready_to_publish(dist: Path) -> None:
    members = wheel_members(dist)
    raw = next(v for n, v in members.items() if n.endswith(".dist-info/METADATA"))
    metadata = email.parser.BytesParser().parsebytes(raw)
    assert metadata["Name"] == "logto-guard"
    assert metadata["License-Expression"] == "MIT"
    assert metadata["License-File"] == "LICENSE"
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = metadata.get_all("Classifier") or []
    tested = ["3.11", "3.12", "3.13", "3.14"]
    assert [c for c in classifiers if re.fullmatch(r".*Python :: 3\.\d+", c)] == [
        f"Programming Language :: Python :: {v}" for v in tested
    ]
    assert "Typing :: Typed" in classifiers
    unknown = set(classifiers) - trove_classifiers.classifiers  # PyPI refuses unknown ones
    assert unknown == set()
    assert metadata.get_all("Project-URL")  # only true ones: see pyproject.toml
    requires = metadata.get_all("Requires-Dist") or []
    runtime = sorted(r.split(">")[0].split("[")[0] for r in requires if "extra ==" not in r)
    assert runtime == ["httpx2", "pyjwt", "starlette"]
    assert metadata["Description-Content-Type"].startswith("text/markdown")
    readme = metadata.get_payload()
    assert isinstance(readme, str) and readme.startswith("# logto-guard")
    assert RELATIVE_LINK.findall(readme) == []


def test_license_is_the_mit_text(dist: Path) -> None:
    members = wheel_members(dist)
    license_text = next(v for n, v in members.items() if n.endswith("licenses/LICENSE"))
    assert license_text.startswith(b"MIT License")
    assert license_text == (ROOT / "LICENSE").read_bytes() == sdist_members(dist)["LICENSE"]


@pytest.mark.parametrize("kind", ["sdist", "wheel"])
def test_no_development_machine_path_is_shipped(dist: Path, kind: str) -> None:
    members = sdist_members(dist) if kind == "sdist" else wheel_members(dist)
    found = {
        name: sorted({m.decode() for m in MACHINE_PATH.findall(content)})
        for name, content in members.items()
        if MACHINE_PATH.search(content)
    }
    assert found == {}


def test_readme_links_are_absolute() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert RELATIVE_LINK.findall(readme) == []
    assert RELATIVE_LINK.findall("[a](bench/README.md) ![b](x.png) [c](https://x) [d](#y)") == [
        "bench/README.md",
        "x.png",
    ]
