"""`make gpu-check`: check a bare, offline GPU machine in one command, within a time limit.

Run from a checkout that holds a folder of wheels made beforehand on a machine with the package registries
(`make gpu-wheels`). In order, each stage logged and timed:

1. install: the wheels of every package the machine lacks, offline, into a folder of their own (``--site``) put on
   PYTHONPATH; a package the machine has (torch above all) is never replaced;
2. environment: the GPU, driver, torch, CUDA, cuDNN and the TF32 and SDPA settings, printed and kept;
3. tests: pytest on the CUDA tests (``-m cuda``);
4. benchmarks: pytest-benchmark on CUDA;
5. run: ``python -m bench run --preset gpu`` with ``--time-limit`` set to what the limit leaves after a reserve for
   the report (or ``--run-limit``, if that is less), so it stops cleanly and keeps every finished cell;
6. report: ``python -m bench report`` of whatever finished.

Everything lands in ``--out`` as at most 8 files: gpu-check.log (all output), summary.json (each stage's status and
seconds), environment.json, benchmarks.json, report.md and run.tar.gz (the run folder: table, report.html,
figures, parts for --resume). ``--device cpu --smoke`` rehearses every stage on a CPU at the smoke preset's size;
``--only cost`` (or ``quality``) and ``--no-tests`` split the preset over two commands.
Only the standard library is imported here: the project's packages may not be installed yet.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20  # what one folder of results may hold
# the machine's own GPU stack, never replaced: these distributions, and any whose name starts with a prefix here
NEVER_INSTALL, NEVER_INSTALL_PREFIXES = {"torch", "triton", "pytorch-triton"}, ("nvidia-", "cuda-")
REGENERATED = ("samples", "figures", "report.html", "metrics.csv")  # what a run folder can do without, if it must
NOT_PACKED = (".lock", ".lock.json")  # the run's lock on its folder: stale once the run ended
TESTS_CAP_S = 150.0       # at most this long for the CUDA tests, and for the benchmarks
BENCHMARKS_CAP_S = 60.0
# a run's seconds outside its own --time-limit clock: Python's start and the imports before it, stopping the workers
# and printing its table after; kept inside the run's share so an overrun never eats the report's
RUN_START_STOP_S = 20.0

ENVIRONMENT = r"""
import json, platform, subprocess, torch
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    info |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
             "compute_capability": f"{props.major}.{props.minor}", "cudnn": torch.backends.cudnn.version(),
             "sdpa_enabled": {"flash": torch.backends.cuda.flash_sdp_enabled(),
                              "efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                              "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
                              "math": torch.backends.cuda.math_sdp_enabled()}}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        info["driver"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        info["driver"] = f"nvidia-smi failed: {err}"
try:
    from bench.measure.execution import tf32_settings
    info["tf32_at_start"] = tf32_settings()
except ImportError as err:
    info["tf32_at_start"] = f"unread: {err}"
print(json.dumps(info, indent=2))
"""
IMPORTS = ("import bench.cli, bench.measure.cost_cell, bench.measure.timing_cell, bench.measure.quality, "
           "bench.report, pytest, pytest_benchmark, smalldiffusion, fvcore, mlxtend, diffusers, "
           "denoising_diffusion_pytorch")  # the last two: the peers


class Check:
    """The stages, their log and summary, and the clock they share."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = args.out.resolve()
        self.work = Path(tempfile.mkdtemp(prefix="gpu-check-"))  # the run folder and caches, packed at the end
        self.deadline = time.monotonic() + args.time_limit
        self.started = time.monotonic()
        self.stages: list[dict] = []
        if self.out.exists():
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True)
        self.log = open(self.out / "gpu-check.log", "w", buffering=1)
        self.env = dict(os.environ, PYTHONUNBUFFERED="1",
                        PYTHONPATH=os.pathsep.join([str(ROOT), str(args.site), os.environ.get("PYTHONPATH", "")]))

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")

    def stage(self, name: str, command: list[str], timeout: float, ok_codes: tuple[int, ...] = (0,),
              notes: dict[int, str] | None = None) -> int | None:
        """Run ``command`` from the checkout, its output teed to the log; kill its process group at ``timeout``.
        Returns its exit code (None when it was killed)."""
        timeout = min(timeout, self.left())
        if timeout <= 1:
            self.record(name, "skipped", None, 0.0, "no time left")
            return None
        self.say(f"\n=== {name}: {' '.join(command)}  (at most {timeout:.0f} s)")
        start = time.monotonic()
        proc = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True)
        reader = threading.Thread(target=self._tee, args=(proc,), daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        reader.join(timeout=10)
        seconds = time.monotonic() - start
        if code is None:
            status, note = "timeout", f"killed after {seconds:.0f} s"
        else:
            status = "ok" if code in ok_codes else "failed"
            note = (notes or {}).get(code, "")
        self.record(name, status, code, seconds, note)
        return code

    def _tee(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            sys.stdout.write(line)
            self.log.write(line)

    def record(self, name: str, status: str, code: int | None, seconds: float, note: str = "") -> None:
        self.stages.append({"stage": name, "status": status, "exit_code": code, "seconds": round(seconds, 1),
                            "note": note})
        self.say(f"=== {name}: {status}{f' (exit {code})' if code is not None else ''}, {seconds:.1f} s"
                 f"{f': {note}' if note else ''}")

    def python(self, *args: str) -> list[str]:
        return [self.args.python, *args]


def installed(python: str) -> tuple[set[str], set[str]]:
    """(distribution names, importable top-level modules) of ``python``, names normalised."""
    code = ("import importlib.metadata as m, json, pkgutil; print(json.dumps([sorted({(d.metadata['Name'] or '')"
            ".lower().replace('_', '-') for d in m.distributions()}), sorted({i.name for i in pkgutil.iter_modules()})]))")
    names, modules = json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True,
                                               check=True).stdout)
    return set(names), set(modules)


def wheel_name(path: Path) -> str:
    return path.name.split("-")[0].lower().replace("_", "-")


def top_level(path: Path) -> set[str]:
    """The modules a wheel installs: its top_level.txt, else the first parts of the paths it holds."""
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        listed = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        if listed:
            return {line.strip() for line in wheel.read(listed[0]).decode().splitlines() if line.strip()}
    parts = {n.split("/")[0] for n in names}
    return {p.removesuffix(".py").split(".")[0] for p in parts
            if not p.endswith((".dist-info", ".data", ".pth")) and p != "__pycache__"}


def split_wheels(wheels: list[Path], names: set[str], modules: set[str]) -> tuple[list[Path], list[str]]:
    """(wheels to install, names of those the machine has): a wheel is skipped when its distribution is
    installed, its modules all import already, or it is part of the machine's GPU stack."""
    todo, kept = [], []
    for wheel in wheels:
        name, modules_of_wheel = wheel_name(wheel), top_level(wheel)
        if name in NEVER_INSTALL or name.startswith(NEVER_INSTALL_PREFIXES) or name in names \
                or (modules_of_wheel and modules_of_wheel <= modules):
            kept.append(name)
        else:
            todo.append(wheel)
    return todo, kept


def install(check: Check) -> None:
    """Install, offline and without dependencies, every wheel whose package the machine lacks."""
    start = time.monotonic()
    wheels = sorted(check.args.wheels.glob("*.whl")) if check.args.wheels.is_dir() else []
    todo, kept = split_wheels(wheels, *installed(check.args.python))
    check.say(f"\n=== install: {len(wheels)} wheel(s) in {check.args.wheels}; the machine has {len(kept)} of them "
              f"({', '.join(kept) or 'none'}); installing {len(todo)} into {check.args.site}")
    check.args.site.mkdir(parents=True, exist_ok=True)
    code = 0
    if todo:
        pip = subprocess.run(check.python("-m", "pip", "--version"), capture_output=True)
        if pip.returncode == 0:
            result = subprocess.run(check.python("-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                                                 "--no-cache-dir", "--upgrade", "--target", str(check.args.site),
                                                 *map(str, todo)), capture_output=True, text=True)
            check.say(result.stdout + result.stderr)
            code = result.returncode
        else:  # a wheel is a zip: unpacked, its modules import (no scripts are needed here)
            for wheel in todo:
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(check.args.site)
    check.say("\n".join(f"  {wheel.name}" for wheel in todo))
    check.record("install", "ok" if code == 0 else "failed", code, time.monotonic() - start,
                 f"{len(todo)} installed, {len(kept)} already there")
    check.stage("imports", check.python("-c", IMPORTS + "; print('every module the check needs imports')"), 120)


def environment(check: Check) -> None:
    target = check.out / "environment.json"
    start = time.monotonic()
    result = subprocess.run(check.python("-c", ENVIRONMENT), cwd=ROOT, env=check.env, capture_output=True, text=True,
                            timeout=max(1.0, min(120.0, check.left())))
    check.say("\n=== environment\n" + result.stdout + result.stderr)
    if result.returncode == 0:
        target.write_text(result.stdout)
    check.record("environment", "ok" if result.returncode == 0 else "failed", result.returncode,
                 time.monotonic() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check"), help="folder of results (replaced)")
    parser.add_argument("--time-limit", type=float, default=570.0, help="seconds for everything (default 570)")
    parser.add_argument("--wheels", type=Path, default=ROOT / ".whl", help="wheels to install (make gpu-wheels)")
    parser.add_argument("--site", type=Path, default=Path("/tmp/gpu-check-site"), help="where to install them")
    parser.add_argument("--python", default=sys.executable, help="the machine's Python, the one holding torch")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--smoke", action="store_true", help="the smoke preset instead of gpu: a rehearsal")
    parser.add_argument("--only", default="cost,quality", help="the parts of the preset to run (bench run --only): "
                        "cost, quality, or both (default): one session's command may not fit both")
    parser.add_argument("--no-tests", action="store_true", help="skip the CUDA tests and benchmarks (a second "
                        "command of the same session, e.g. with --only quality)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads per worker")
    parser.add_argument("--report-seconds", type=float, default=60.0,
                        help="kept back from the run for its report and the packing (default 60)")
    parser.add_argument("--run-limit", type=float, default=None,
                        help="seconds on the run's own clock at most (default: whatever the time limit leaves)")
    args = parser.parse_args(argv)
    for flag, value in (("--time-limit", args.time_limit), ("--run-limit", args.run_limit)):
        if value is not None and not value > 0:
            parser.error(f"{flag} {value:g} is invalid; valid: seconds, a positive number")
    check = Check(args)
    check.say(f"gpu-check: {args.device}, {'smoke' if args.smoke else 'gpu'} preset, {args.time_limit:g} s in all, "
              f"results in {check.out}")
    install(check)
    environment(check)
    if args.no_tests:
        for name in ("tests", "benchmarks"):
            check.record(name, "off", None, 0.0, "--no-tests")
    else:
        check.stage("tests", check.python("-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda",
                                          "tests/measure/test_execution.py", "tests/measure/test_cuda.py"),
                    min(TESTS_CAP_S, check.left() - args.report_seconds), ok_codes=(0, 5),
                    notes={5: "no CUDA test collected"})
        check.stage("benchmarks", check.python("-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only", "-k",
                                               "cuda", "tests/benchmarks", f"--benchmark-json={check.out}/benchmarks.json"),
                    min(BENCHMARKS_CAP_S, check.left() - args.report_seconds), ok_codes=(0, 5),
                    notes={5: "no CUDA benchmark on this machine"})
    run = check.work / "run"
    budget = check.left() - args.report_seconds
    run_limit = budget - RUN_START_STOP_S  # the run's own clock: its share less its start and stop
    if args.run_limit is not None:
        run_limit, budget = min(run_limit, args.run_limit), min(budget, args.run_limit + RUN_START_STOP_S)
    if run_limit > 5:
        check.stage("run", check.python("-m", "bench", "run", "--preset", "smoke" if args.smoke else "gpu",
                                        "--device", args.device, "--only", args.only, "--threads", str(args.threads),
                                        "--out", str(run), "--cache-dir", str(check.work / "cache"),
                                        "--time-limit", f"{run_limit:.0f}"),
                    budget, ok_codes=(0, 1, 124),
                    notes={1: "some cells or measurements failed: see the report's failed cells",
                           124: "stopped at its time limit: the report covers the cells that finished"})
    else:
        check.record("run", "skipped", None, 0.0, "no time left")
    if (run / "metrics.parquet").exists():
        check.stage("report", check.python("-m", "bench", "report", str(run)), check.left() - 5)
    failed = [s["stage"] for s in check.stages if s["status"] not in ("ok", "off")]
    check.say(f"\ngpu-check: {time.monotonic() - check.started:.0f} s; "
              f"{'every stage ok' if not failed else 'not ok: ' + ', '.join(failed)}; results in {check.out}")
    pack(check, run)
    shutil.rmtree(check.work, ignore_errors=True)  # packed into run.tar.gz
    return 0 if not failed else 1


def pack(check: Check, run: Path) -> None:
    """The report beside the log, and the run folder as one tarball (its samples and figures dropped if it is
    too big), then summary.json; at most MAX_FILES files of MAX_FILE_BYTES each."""
    if (run / "report.md").exists():
        shutil.copy(run / "report.md", check.out / "report.md")
    if run.exists():
        tarball = check.out / "run.tar.gz"
        for leave_out in ((), REGENERATED):
            with tarfile.open(tarball, "w:gz") as tar:
                for path in sorted(run.iterdir()):
                    if path.name not in leave_out + NOT_PACKED:
                        tar.add(path, arcname=f"run/{path.name}")
            if tarball.stat().st_size <= MAX_FILE_BYTES:
                break
        if leave_out:
            check.say(f"run.tar.gz leaves out {', '.join(leave_out)} to stay under {MAX_FILE_BYTES >> 20} MiB "
                      "(`python -m bench report` makes them again from the table)")
    summary = {"time_limit_s": check.args.time_limit, "seconds": round(time.monotonic() - check.started, 1),
               "device": check.args.device, "preset": "smoke" if check.args.smoke else "gpu", "stages": check.stages}
    (check.out / "summary.json").write_text(json.dumps(summary, indent=2))
    check.log.close()
    files = sorted(p.name for p in check.out.iterdir())
    too_big = [p.name for p in check.out.iterdir() if p.stat().st_size > MAX_FILE_BYTES]
    print(f"files: {', '.join(files)}" + (f"; over {MAX_FILE_BYTES >> 20} MiB: {', '.join(too_big)}" if too_big else ""))
    if len(files) > MAX_FILES:
        raise RuntimeError(f"{check.out} holds {len(files)} files; at most {MAX_FILES} may come back")


if __name__ == "__main__":
    sys.exit(main())
