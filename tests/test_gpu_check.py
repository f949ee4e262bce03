"""scripts/gpu-check and scripts/gpu-wheels without a GPU: everything but CUDA.

The arguments, the install step against small wheels made here (a good set, a corrupt
one, a set installed by an earlier call), the report's fields, the time budget stopping a
step (and its processes), a dry run of part 2 with the real tests/test_gpu.py and
bench/gpu.py on this CPU, and gpu-wheels' requirement check and size count.
"""

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GPU_CHECK = REPO / "scripts" / "gpu-check"
GPU_WHEELS = REPO / "scripts" / "gpu-wheels"
STEP_FIELDS = {"name", "status", "seconds"}
REPORT_FIELDS = {"format", "part", "budget_s", "started", "elapsed_s", "exit_status", "argv",
                 "python", "repo", "commit", "steps", "install", "machine", "model", "tests",
                 "runs", "loss_agreement", "bench", "files", "summary"}


def load_script(path: Path, name: str):
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def check_script():
    return load_script(GPU_CHECK, "gpu_check")


@pytest.fixture(scope="module")
def wheels_script():
    return load_script(GPU_WHEELS, "gpu_wheels")


def make_wheel(folder: Path, name: str, version: str, requires=(), body="VALUE = 42\n") -> Path:
    """A minimal real wheel: one module, METADATA, WHEEL and RECORD."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    metadata = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                        *(f"Requires-Dist: {r}\n" for r in requires)])
    files = {f"{name}/__init__.py": body, f"{info}/METADATA": metadata,
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
    return path


def write_manifest(folder: Path, left_out=None, corrupt=False) -> None:
    import hashlib

    wheels = {}
    for wheel in sorted(folder.glob("*.whl")):
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        wheels[wheel.name] = {"bytes": wheel.stat().st_size,
                              "sha256": "0" * 64 if corrupt else digest}
    (folder / "SET.json").write_text(json.dumps({"set": folder.name, "wheels": wheels,
                                                 "left_out": left_out or {}}))


def gpu_check(out: Path, *args, timeout=240, sigint_ignored=False):
    """`sigint_ignored`: start it as a script's background job would be (SIGINT ignored,
    which its children inherit)."""
    import signal

    env = {**os.environ, "PYTHONPATH": ""}
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    done = subprocess.run([sys.executable, str(GPU_CHECK), str(out), *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout,
                          preexec_fn=ignore)
    return done


def report(out: Path, part: str) -> dict:
    found = json.loads((out / f"report-{part}.json").read_text())
    assert REPORT_FIELDS <= set(found), REPORT_FIELDS - set(found)
    assert found["format"] == "workbench-gpu-check/1"
    for step in found["steps"]:
        assert STEP_FIELDS <= set(step), step
        assert step["status"] in {"passed", "failed", "stopped", "not run", "skipped"}, step
        if step["status"] in {"stopped", "not run", "skipped"}:
            assert step["reason"], step  # every step that did not run through says why
    assert found["files"][-1] == f"report-{part}.json"
    assert all((out / name).is_file() for name in found["files"])
    return found


def running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (a killed orphan whose reaper, here
    PID 1, may never collect it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def steps(found: dict) -> dict:
    return {s["name"]: s for s in found["steps"]}


# -- arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--budget", "421"], "give 1 to 420 seconds"),
    (["--budget", "0.5"], "give 1 to 420 seconds"),
    (["--part", "3"], "invalid choice"),
    (["--steps", "tests,nope"], "choose from install, probe, model, tests"),
    (["--steps", ","], "choose from"),
    ([], None),  # OUT is required
])
def test_bad_arguments_are_refused(check_script, capsys, argv, message):
    out = [] if not argv and message is None else ["out"]
    with pytest.raises(SystemExit) as stopped:
        check_script.parse_args(out + argv)
    assert stopped.value.code == 2
    if message:
        assert message in capsys.readouterr().err


def test_parts_choose_their_steps_and_budgets(check_script):
    one = check_script.parse_args(["out", "--part", "1"])
    assert one.budget == 210 and one.steps == ["install", "probe", "model", "bench-llama-1b",
                                               "bench-demo"]
    two = check_script.parse_args(["out", "--part", "2"])
    assert two.budget == 360 and "tests" in two.steps and two.tests_cap == 216
    assert check_script.parse_args(["out"]).budget == 420  # all; the most there is
    chosen = check_script.parse_args(["out", "--steps", "bench-demo,tests", "--budget", "30"])
    assert chosen.steps == ["install", "tests", "bench-demo"]  # install always, in order
    assert chosen.model_files.endswith(".gpu-wheels/model")
    assert check_script.PART_BACKENDS == {"1": "hf", "2": "unsloth", "all": "hf,unsloth"}


# -- install -----------------------------------------------------------------------------------

def test_install_checks_each_set_and_installs_it_once(tmp_path):
    wheels, site, out = tmp_path / "wheels", tmp_path / "site", tmp_path / "out"
    make_wheel(wheels / "1", "gpucheckfake", "1.0")
    write_manifest(wheels / "1")
    make_wheel(wheels / "2", "gpucheckbroken", "2.0")
    write_manifest(wheels / "2", corrupt=True)  # as if cut short on the way
    (wheels / "model").mkdir()  # no wheels: not a set
    args = ["--steps", "install", "--wheels", str(wheels), "--site", str(site),
            "--work", str(tmp_path / "work"), "--budget", "60"]

    done = gpu_check(out, *args)
    assert done.returncode == 1, done.stdout + done.stderr  # a set failed
    found = report(out, "all")
    sets = {s["name"]: s for s in found["install"]["sets"]}
    assert set(sets) == {"1", "2"}
    assert sets["1"]["status"] == "installed" and sets["1"]["wheels"] == [
        "gpucheckfake-1.0-py3-none-any.whl"]
    assert sets["2"]["status"] == "failed" and "sha256" in sets["2"]["reason"]
    assert steps(found)["install"]["status"] == "failed"
    assert found["exit_status"] == 1
    imported = subprocess.run([sys.executable, "-c", "import gpucheckfake as m; print(m.VALUE)"],
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(site)})
    assert imported.stdout.strip() == "42", imported.stderr
    assert not (site / "gpucheckbroken").exists()

    # The next call on the same machine: set 1 is not installed again, and when a later
    # call no longer carries it, the report still says it is there.
    (wheels / "2" / "SET.json").unlink()
    (wheels / "2" / "gpucheckbroken-2.0-py3-none-any.whl").unlink()
    (wheels / "2").rmdir()
    done = gpu_check(out, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [s["status"] for s in report(out, "all")["install"]["sets"]] == ["already installed"]
    for wheel in (wheels / "1").iterdir():
        wheel.unlink()
    (wheels / "1").rmdir()
    done = gpu_check(out, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    (earlier,) = report(out, "all")["install"]["sets"]
    assert earlier["name"] == "1" and "earlier call" in earlier["status"]


def test_no_wheels_is_a_skip_with_its_reason(tmp_path):
    done = gpu_check(tmp_path / "out", "--steps", "install", "--wheels", str(tmp_path / "none"),
                     "--site", str(tmp_path / "site"), "--budget", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    found = report(tmp_path / "out", "all")
    assert steps(found)["install"]["status"] == "skipped"
    assert "no wheels" in steps(found)["install"]["reason"]
    assert found["summary"]["steps"] == {"skipped": ["install"]}


# -- the time budget ---------------------------------------------------------------------------

def slow_test(tmp_path: Path) -> tuple[Path, Path]:
    """A test file whose one test writes its process id and sleeps for two minutes."""
    pid_file = tmp_path / "pid"
    slow = tmp_path / "test_slow.py"
    slow.write_text("import os, time\n\n\ndef test_slow():\n"
                    f"    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                    "    time.sleep(120)\n")
    return slow, pid_file


@pytest.mark.parametrize("sigint_ignored", [False, True])
def test_the_budget_stops_a_step_and_the_rest_do_not_run(tmp_path, sigint_ignored):
    slow, pid_file = slow_test(tmp_path)
    out = tmp_path / "out"
    started = time.monotonic()
    done = gpu_check(out, "--steps", "tests,bench-demo", "--tests", str(slow), "--budget", "8",
                     "--tests-cap", "100", "--wheels", str(tmp_path / "none"),
                     "--site", str(tmp_path / "site"), "--work", str(tmp_path / "work"),
                     sigint_ignored=sigint_ignored)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr  # stopped, nothing failed
    assert took < 8 + 4  # the budget holds (plus the interpreter's own start and exit)
    found = report(out, "all")
    assert found["elapsed_s"] <= 8
    tests, bench = steps(found)["tests"], steps(found)["bench-demo"]
    assert tests["status"] == "stopped" and "time budget" in tests["reason"], tests
    assert 5 <= tests["seconds"] <= 8, tests
    assert bench["status"] == "not run" and "budget was spent" in bench["reason"]
    assert found["summary"]["steps"] == {"skipped": ["install"], "stopped": ["tests"],
                                         "not run": ["bench-demo"]}
    assert not running(int(pid_file.read_text()))  # the test had started; now it is gone
    assert "test_slow" in (out / "log-all.txt").read_text()
    assert found["tests"]["cases"] == [{
        "name": "test_slow", "outcome": "interrupted", "seconds": None,
        "message": "stopped by gpu-check's time limit (budget or tests cap)"}]


def test_a_step_leaves_nothing_running(tmp_path):
    """A process a step started and left behind (a training child that outlived pytest)
    is killed before the next step, which then has the GPU to itself."""
    pid_file = tmp_path / "pid"
    leaves = tmp_path / "test_leaves.py"
    leaves.write_text("import subprocess\n\n\ndef test_leaves_a_child():\n"
                      "    child = subprocess.Popen(['sleep', '300'])\n"
                      f"    open({str(pid_file)!r}, 'w').write(str(child.pid))\n")
    done = gpu_check(tmp_path / "out", "--steps", "tests", "--tests", str(leaves),
                     "--budget", "60", "--wheels", str(tmp_path / "none"),
                     "--site", str(tmp_path / "site"), "--work", str(tmp_path / "work"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert report(tmp_path / "out", "all")["tests"]["counts"]["passed"] == 1
    time.sleep(0.2)
    assert not running(int(pid_file.read_text()))


def test_the_tests_cap_leaves_the_rest_of_the_budget_to_bench(tmp_path):
    slow, _ = slow_test(tmp_path)
    out = tmp_path / "out"
    done = gpu_check(out, "--steps", "tests", "--tests", str(slow), "--budget", "60",
                     "--tests-cap", "3", "--wheels", str(tmp_path / "none"),
                     "--site", str(tmp_path / "site"), "--work", str(tmp_path / "work"))
    assert done.returncode == 2, done.stdout + done.stderr
    found = report(out, "all")
    tests = steps(found)["tests"]
    assert tests["status"] == "stopped" and "its 3 s cap" in tests["reason"], tests
    assert 3 <= tests["seconds"] < 10 and found["elapsed_s"] < 15


# -- a dry run of part 2 on this CPU -----------------------------------------------------------

@pytest.fixture
def model_files(tmp_path, tiny_model_dir) -> Path:
    """A config and tokenizer with no weights, as .gpu-wheels/model carries them."""
    folder = tmp_path / "model"
    folder.mkdir()
    for path in Path(tiny_model_dir).iterdir():
        if path.suffix != ".safetensors":
            (folder / path.name).write_bytes(path.read_bytes())
    return folder


def test_part_2_on_a_cpu_runs_every_step_and_reports_it(tmp_path, model_files):
    wheels, site, work, out = (tmp_path / n for n in ("wheels", "site", "work", "out"))
    make_wheel(wheels / "2", "gpucheckfake", "1.0",
               requires=["gpucheckleftout>=1", "gpuchecknowhere", "pytest>=1"])
    write_manifest(wheels / "2", left_out={"gpucheckleftout": "not needed here"})
    done = gpu_check(out, "--part", "2", "--steps", "probe,model,tests,bench-demo",
                     "--wheels", str(wheels), "--site", str(site), "--work", str(work),
                     "--model-files", str(model_files), "--budget", "200")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = report(out, "2")
    assert [s["name"] for s in found["steps"]] == ["install", "probe", "model", "tests",
                                                   "bench-demo"]
    assert all(s["status"] == "passed" for s in found["steps"]), found["steps"]
    assert found["budget_s"] == 200 and 0 < found["elapsed_s"] < 200

    machine = found["machine"]
    assert machine["cuda"] is False and machine["versions"]["torch"]
    assert machine["from_site"] == []  # none of the packages it lists came from the site
    assert [u["name"] for u in machine["unmet_left_out"]] == ["gpucheckleftout"]
    assert [u["name"] for u in machine["unmet"]] == ["gpuchecknowhere"]  # pytest is met
    assert found["summary"]["unexpected_unmet_requirements"] == 1

    model = found["model"]
    assert model["random_weights"] is True and model["parameters"] > 0
    built = Path(model["folder"])
    assert (built / "model.safetensors").exists() and (built / "RANDOM_WEIGHTS.json").exists()
    assert json.loads((built / "config.json").read_text())["hidden_size"] == 64

    # Without a GPU every test in tests/test_gpu.py skips with that reason, none other.
    cases = found["tests"]["cases"]
    assert {c["name"] for c in cases} >= {"test_unsloth_loss_curve_matches_hf",
                                          "test_unsloth_adapter_loads_with_plain_peft",
                                          "test_qlora_trains_in_4bit[hf]"}
    assert "test_gpu_benchmark_runs_here" not in {c["name"] for c in cases}  # bench steps are it
    assert {c["outcome"] for c in cases} == {"skipped"}
    assert all(c["message"].startswith("needs an NVIDIA GPU") for c in cases), cases
    assert (out / "junit-2.xml").exists()

    rows = found["bench"]["rows"]
    assert [(r["model"], r["backend"], r["bits"]) for r in rows] == [
        ("demo", "unsloth", 16), ("demo", "unsloth", 4)]
    assert all("needs an NVIDIA GPU" in r["skipped"] for r in rows)
    assert found["bench"]["problems"] == []
    assert "| demo | 1024 | unsloth | 16 | skipped: " in found["bench"]["table"]
    assert found["summary"]["bench_rows_skipped"] == 2
    log = (out / "log-2.txt").read_text()
    assert "PROBE {" in log and "bench-demo: passed" in log


def test_bench_row_problems_are_named(check_script):
    good = {"model": "demo", "backend": "hf", "bits": 16, "path": "engine",
            "tokens_per_second": 5.0, "peak_reserved_gib": 1.0, "trainable_params": 10,
            "expected_lora_params": 10}
    assert check_script.row_problems([good, {"skipped": "no CUDA GPU"}]) == []
    bad = {**good, "tokens_per_second": 0.0, "peak_reserved_gib": None, "trainable_params": 9}
    problems = check_script.row_problems([bad])
    assert len(problems) == 3 and all(p.startswith("demo hf 16-bit engine: ") for p in problems)


def test_run_folders_give_loss_curves_and_their_agreement(check_script, tmp_path):
    """The loss-curve numbers docs/benchmarks.md takes, from run folders as the GPU tests
    leave them under pytest's basetemp."""
    curves = {"hf-20261201-101500": [10.0] + [4.0] * 11,
              "unsloth-20261201-101530": [10.1] + [4.2] * 11,
              "api-20261201-101600-2": [10.1] + [4.1] * 11,
              "qhf-20261201-101700": [9.0, 5.0]}  # no qunsloth: no 4-bit pair
    for name, losses in curves.items():
        folder = tmp_path / "test_x0" / "runs" / name
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_text("".join(
            json.dumps({"step": i + 1, "loss": loss, "tokens_per_second": 100.0 + i}) + "\n"
            for i, loss in enumerate(losses)) + json.dumps({"step": 12, "eval_loss": 3.0}) + "\n")
        (folder / "environment.json").write_text(json.dumps({"backend": name[:2]}))
    runs = check_script.run_folders(tmp_path)
    assert set(runs) == {"hf", "unsloth", "api", "qhf"}
    assert runs["hf"]["losses"] == curves["hf-20261201-101500"]
    assert runs["hf"]["tokens_per_second"] == [111.0] and runs["hf"]["environment"]
    hf_unsloth, unsloth_api = check_script.loss_agreement(runs)
    assert hf_unsloth["runs"] == ["hf", "unsloth"] and hf_unsloth["steps"] == [12, 12]
    assert hf_unsloth["first_rel"] == pytest.approx(0.01)   # 10.1 vs 10.0
    assert hf_unsloth["late10_rel"] == pytest.approx(0.05)  # 4.2 vs 4.0
    assert unsloth_api["late10"] == pytest.approx([4.2, 4.1])


# -- scripts/gpu-wheels ------------------------------------------------------------------------

def test_wheel_requirements_must_be_met_by_the_sets_the_image_or_left_out(wheels_script,
                                                                          tmp_path):
    carried = make_wheel(tmp_path, "pkgb", "1.0")
    needs = make_wheel(tmp_path, "pkga", "1.0", requires=[
        "pkgb==1.0",                          # carried
        "torch<2.15,>=2.4",                   # the image's torch 2.11.0
        "numpy",                              # in the image, version not pinned
        "xformers>=0.0.27",                   # left out on purpose
        'pywin32; sys_platform == "win32"',   # not for this machine
        "pkgb>=2",                            # carried, but too old
        "transformers>=5.18",                 # the image's 5.17.0 is too old
        "nothere>=1",                         # nowhere
    ])
    shadow = make_wheel(tmp_path, "torch", "2.11.0")
    problems = wheels_script.unmet([carried, needs, shadow])
    assert problems == [
        "torch is in the image already: carrying it would shadow the image's copy",
        "pkga-1.0-py3-none-any.whl needs pkgb>=2, but carried pkgb is 1.0",
        "pkga-1.0-py3-none-any.whl needs transformers>=5.18, but the image's transformers "
        "is 5.17.0",
        "pkga-1.0-py3-none-any.whl needs nothere>=1: not carried, not in the image"]
    assert wheels_script.unmet([carried]) == []


def test_pins_fit_pyproject_and_each_other(wheels_script):
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # what a GPU box installs: the base and the unsloth extra (dev is CPU tooling: its
    # trl==1.9.2 is the reference the losses are tested against, never on the GPU)
    declared = [Requirement(r) for r in project["dependencies"] +
                project["optional-dependencies"]["unsloth"]]
    pins = {wheels_script.pin_name(p): p.split("==")[1]
            for pins in wheels_script.SETS.values() for p in pins}
    assert len(pins) == sum(len(p) for p in wheels_script.SETS.values())  # one version each
    checked = 0
    for requirement in declared:
        name = wheels_script.canonical(requirement.name)
        if name in pins:
            assert requirement.specifier.contains(pins[name]), (requirement, pins[name])
            checked += 1
        if name in wheels_script.IMAGE_VERSIONS:
            assert requirement.specifier.contains(wheels_script.IMAGE_VERSIONS[name]), \
                (requirement, "image", wheels_script.IMAGE_VERSIONS[name])
    assert checked >= 3  # datasets, unsloth, bitsandbytes
    assert not set(pins) & wheels_script.IMAGE and not set(pins) & set(wheels_script.LEFT_OUT)


def test_travelling_size_counts_tracked_and_untracked_not_ignored(wheels_script, tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text(".gpu-wheels/\n")  # 13 bytes
    (tmp_path / "tracked.txt").write_text("x" * 100)
    git("add", ".gitignore", "tracked.txt")
    (tmp_path / "untracked.txt").write_text("y" * 20)
    (tmp_path / ".gpu-wheels").mkdir()
    (tmp_path / ".gpu-wheels" / "big.whl").write_bytes(b"z" * 5000)
    assert wheels_script.travelling_size(tmp_path) == (133, 3)
