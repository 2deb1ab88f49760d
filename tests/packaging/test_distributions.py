"""Build every distribution and check what it carries; install amqp-blocking alone.

Each package is built the way a release would be: an sdist, then the wheel from that sdist (so a
package that needs anything outside its own directory fails here). Builds run without build
isolation, with the hatchling of the dev environment, so that no network is needed; the fresh
virtual environment installs from the wheels just built, with the package index switched off.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PACKAGES_DIR = ROOT / "packages"


@dataclass(frozen=True)
class Expected:
    """What DESIGN.md says a distribution is: its import name and runtime dependencies."""

    import_name: str
    requires: frozenset[str]


EXPECTED = {
    "amqp-core": Expected("amqp_core", frozenset()),
    "amqp-blocking": Expected("amqp_blocking", frozenset({"amqp-core"})),
    "amqp-select": Expected("amqp_select", frozenset({"amqp-core"})),
    "amqp-asyncio": Expected("amqp_asyncio", frozenset({"amqp-core", "anyio"})),
    "amqp-tornado": Expected("amqp_tornado", frozenset({"amqp-core", "tornado"})),
    "amqp-twisted": Expected("amqp_twisted", frozenset({"amqp-core", "twisted"})),
    "amqp-gevent": Expected("amqp_gevent", frozenset({"amqp-core", "gevent"})),
}
# Must not be importable next to amqp-blocking: the other adapters' frameworks and test tools.
FOREIGN_MODULES = ("tornado", "twisted", "gevent", "anyio", "hypothesis")

pytestmark = pytest.mark.slow


def _version(dist: str) -> str:
    """The version a package declares in src/<import>/_version.py (hatch's version source)."""
    path = PACKAGES_DIR / dist / "src" / EXPECTED[dist].import_name / "_version.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__version__" for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, str)
            return value
    raise AssertionError(f"no __version__ in {path}")


def _build(dist: str, outdir: Path) -> subprocess.CompletedProcess[str]:
    # No flags: build makes the sdist, then the wheel from the unpacked sdist.
    return subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), "."],
        cwd=PACKAGES_DIR / dist,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def dist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory holding the sdist and the wheel of every package."""
    outdir = tmp_path_factory.mktemp("dist")
    with ThreadPoolExecutor(4) as pool:
        results = dict(
            zip(EXPECTED, pool.map(lambda dist: _build(dist, outdir), EXPECTED), strict=True)
        )
    failed = {dist: result for dist, result in results.items() if result.returncode != 0}
    assert not failed, "\n\n".join(
        f"{dist} failed to build:\n{result.stdout}\n{result.stderr}"
        for dist, result in failed.items()
    )
    return outdir


def _wheel(dist_dir: Path, dist: str) -> Path:
    name = EXPECTED[dist].import_name
    wheels = list(dist_dir.glob(f"{name}-{_version(dist)}-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _sdist(dist_dir: Path, dist: str) -> Path:
    path = dist_dir / f"{EXPECTED[dist].import_name}-{_version(dist)}.tar.gz"
    assert path.is_file()
    return path


def _metadata(text: str) -> Message:
    return HeaderParser().parsestr(text)


def _requirements(metadata: Message) -> list[Requirement]:
    return [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]


def test_the_workspace_holds_exactly_the_designed_packages() -> None:
    found = {path.parent.name for path in PACKAGES_DIR.glob("*/pyproject.toml")}
    assert found == set(EXPECTED)


@pytest.mark.parametrize("dist", list(EXPECTED))
def test_wheel_carries_code_types_license_and_metadata(dist_dir: Path, dist: str) -> None:
    expected = EXPECTED[dist]
    version = _version(dist)
    dist_info = f"{expected.import_name}-{version}.dist-info"
    with zipfile.ZipFile(_wheel(dist_dir, dist)) as wheel:
        names = set(wheel.namelist())
        metadata = _metadata(wheel.read(f"{dist_info}/METADATA").decode())
    assert f"{expected.import_name}/__init__.py" in names
    assert f"{expected.import_name}/py.typed" in names
    assert f"{dist_info}/licenses/LICENSE" in names
    # Nothing but the package itself and its metadata (no tests, no tools, no stray files).
    assert {name.split("/")[0] for name in names} == {expected.import_name, dist_info}

    assert metadata["Name"] == dist
    assert metadata["Version"] == version
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert metadata["Requires-Python"] == ">=3.10"
    unconditional = {
        canonicalize_name(req.name) for req in _requirements(metadata) if req.marker is None
    }
    assert unconditional == expected.requires


@pytest.mark.parametrize("dist", list(EXPECTED))
def test_sdist_carries_sources_license_and_metadata(dist_dir: Path, dist: str) -> None:
    expected = EXPECTED[dist]
    prefix = f"{expected.import_name}-{_version(dist)}"
    with tarfile.open(_sdist(dist_dir, dist)) as sdist:
        names = set(sdist.getnames())
        pkg_info = sdist.extractfile(f"{prefix}/PKG-INFO")
        assert pkg_info is not None
        metadata = _metadata(pkg_info.read().decode())
    for required in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"):
        assert f"{prefix}/{required}" in names
    assert f"{prefix}/src/{expected.import_name}/py.typed" in names
    assert all(name.startswith(f"{prefix}/") for name in names)
    assert metadata["Name"] == dist


def _wheel_requirements(dist_dir: Path, dist: str) -> dict[str, Requirement]:
    name = f"{EXPECTED[dist].import_name}-{_version(dist)}.dist-info/METADATA"
    with zipfile.ZipFile(_wheel(dist_dir, dist)) as wheel:
        metadata = _metadata(wheel.read(name).decode())
    return {canonicalize_name(req.name): req for req in _requirements(metadata)}


FRAMEWORKS = {
    "amqp-blocking": set(),
    "amqp-select": set(),
    "amqp-asyncio": {"anyio"},
    "amqp-tornado": {"tornado"},
    "amqp-twisted": {"twisted"},
    "amqp-gevent": {"gevent"},
}


@pytest.mark.parametrize("dist", list(FRAMEWORKS))
def test_adapter_accepts_this_core_and_declares_its_framework(dist_dir: Path, dist: str) -> None:
    requirements = _wheel_requirements(dist_dir, dist)
    core = requirements.pop("amqp-core")
    core_version = _version("amqp-core")
    assert core.specifier.contains(core_version), f"{dist} refuses amqp-core {core_version}"
    # Compatible-release pin: a later core with a breaking (minor, before 1.0) bump is refused.
    major, minor, *_ = (int(part) for part in core_version.split("."))
    assert not core.specifier.contains(f"{major}.{minor + 1}.0")
    assert set(requirements) == FRAMEWORKS[dist]


def test_core_has_no_runtime_dependency_and_a_testing_extra(dist_dir: Path) -> None:
    with zipfile.ZipFile(_wheel(dist_dir, "amqp-core")) as wheel:
        metadata = _metadata(
            wheel.read(f"amqp_core-{_version('amqp-core')}.dist-info/METADATA").decode()
        )
    assert metadata.get_all("Provides-Extra") == ["testing"]
    requirements = _requirements(metadata)
    assert [req.name for req in requirements] == ["hypothesis"]
    (hypothesis,) = requirements
    assert hypothesis.marker is not None
    assert hypothesis.marker.evaluate({"extra": "testing"})
    assert not hypothesis.marker.evaluate({"extra": ""})


_PROBE = textwrap.dedent(
    """
    import importlib.metadata
    import importlib.util
    import json
    import sys

    import amqp_blocking
    import amqp_core

    print(json.dumps({
        "files": [amqp_blocking.__file__, amqp_core.__file__],
        "found": {name: importlib.util.find_spec(name) is not None for name in sys.argv[1:]},
        "distributions": sorted(d.metadata["Name"] for d in importlib.metadata.distributions()),
    }))
    """
)


def test_blocking_installs_with_the_core_and_nothing_else(dist_dir: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    uv = [sys.executable, "-m", "uv"]
    subprocess.run(
        [*uv, "venv", "--quiet", "--no-config", "--python", sys.executable, str(venv)],
        check=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [
            *uv,
            "pip",
            "install",
            "--quiet",
            "--no-config",
            "--offline",
            "--no-index",
            "--find-links",
            str(dist_dir),
            "--python",
            str(python),
            "amqp-blocking",
        ],
        check=True,
        timeout=120,
    )
    # -I: no PYTHONPATH, no user site, no current directory: only what the venv holds.
    result = subprocess.run(
        [str(python), "-I", "-c", _PROBE, *FOREIGN_MODULES],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(result.stdout)
    assert all(Path(file).is_relative_to(venv) for file in report["files"]), report["files"]
    assert report["found"] == dict.fromkeys(FOREIGN_MODULES, False)
    installed = set(report["distributions"]) - {"pip", "setuptools"}
    assert installed == {"amqp-blocking", "amqp-core"}


_ADAPTER_PROBE = textwrap.dedent(
    """
    import importlib
    import importlib.util
    import json
    import sys

    adapter, framework, *foreign = sys.argv[1:]
    module = importlib.import_module(adapter)
    print(json.dumps({
        "file": module.__file__,
        "framework": importlib.util.find_spec(framework) is not None,
        "found": {name: importlib.util.find_spec(name) is not None for name in foreign},
    }))
    """
)

# The adapters whose framework comes from outside the workspace, with its import name.
ADAPTER_FRAMEWORKS = {"amqp-tornado": "tornado", "amqp-twisted": "twisted", "amqp-gevent": "gevent"}


def _install(uv: list[str], python: Path, dist_dir: Path, dist: str) -> None:
    """Install ``dist`` from the wheels just built, its framework from the package index.

    The framework is taken offline from uv's cache first (the dev environment was installed
    with uv, so the cache holds it, and the test needs no network); only if the cache cannot
    satisfy it does the install go to the index.
    """
    command = [
        *uv,
        "pip",
        "install",
        "--quiet",
        "--no-config",
        "--find-links",
        str(dist_dir),
        "--python",
        str(python),
        dist,
    ]
    offline = subprocess.run(
        [*command, "--offline"], capture_output=True, text=True, check=False, timeout=120
    )
    if offline.returncode != 0:
        subprocess.run(command, check=True, timeout=300)


@pytest.mark.parametrize("dist", list(ADAPTER_FRAMEWORKS))
def test_adapter_installs_with_the_core_and_its_framework_only(
    dist_dir: Path, tmp_path: Path, dist: str
) -> None:
    venv = tmp_path / "venv"
    uv = [sys.executable, "-m", "uv"]
    subprocess.run(
        [*uv, "venv", "--quiet", "--no-config", "--python", sys.executable, str(venv)],
        check=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
    _install(uv, python, dist_dir, dist)
    framework = ADAPTER_FRAMEWORKS[dist]
    foreign = [name for name in FOREIGN_MODULES if name != framework]
    result = subprocess.run(
        [str(python), "-I", "-c", _ADAPTER_PROBE, EXPECTED[dist].import_name, framework, *foreign],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report = json.loads(result.stdout)
    assert Path(report["file"]).is_relative_to(venv)
    assert report["framework"]
    assert report["found"] == dict.fromkeys(foreign, False)
    listing = subprocess.run(
        [*uv, "pip", "list", "--no-config", "--format", "json", "--python", str(python)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    installed = {canonicalize_name(entry["name"]) for entry in json.loads(listing.stdout)}
    # Of this workspace's distributions, only the adapter and the core.
    assert installed & set(EXPECTED) == {dist, "amqp-core"}
    assert canonicalize_name(framework) in installed
