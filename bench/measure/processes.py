"""The entry point of every spawned process that measures: it dies with the process that started it.

A cell's worker must not outlive the runner, nor a peak-RSS child its worker: a stopped or killed sweep would
leave an orphan measuring, and writing into a run folder that moved on. This module imports nothing heavy, so a
new process asks for its parent's death signal within milliseconds of starting, before torch is imported.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing
import os
import signal
import sys
from typing import Any, Iterator


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def guarded(parent: int, target: str, *args: Any) -> None:
    """Run ``target`` ("module:function") with ``args`` in a process that dies with ``parent``, the pid that started
    it; if that one is gone already (it died before we asked), exit at once: nobody waits for our result."""
    die_with_parent()
    if os.getppid() != parent:
        os._exit(0)
    module, _, function = target.partition(":")
    getattr(importlib.import_module(module), function)(*args)


def spawn_guarded(target: str, *args: Any, name: str | None = None, **environment: str) -> multiprocessing.Process:
    """A fresh spawned process, started, that runs ``target`` ("module:function") with ``args`` and dies with this
    one; ``environment``: variables it reads as it starts (child_environment)."""
    process = multiprocessing.get_context("spawn").Process(target=guarded, args=(os.getpid(), target, *args),
                                                           name=name)
    with child_environment(**environment):
        process.start()
    return process


def how_it_ended(exit_code: int | None) -> str:
    """A process's exit code in words: ``signal SIGKILL`` (a negative code, as multiprocessing gives it) or
    ``exit code N``."""
    return f"signal {signal.Signals(-exit_code).name}" if exit_code and exit_code < 0 else f"exit code {exit_code}"


@contextlib.contextmanager
def child_environment(**values: str) -> Iterator[None]:
    """Environment variables for the processes started inside, which read them as they start (glibc's malloc,
    libgomp's threads); this process's own are restored after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
