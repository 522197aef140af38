"""One writer per run folder: ``bench run`` holds an exclusive lock on ``<out>/.lock`` for the whole run.

The lock is ``flock``-based (filelock), so the operating system releases it when its process ends, however
it ends (Ctrl-C, a crash, SIGKILL). ``<out>/.lock.json`` names the holder (host, pid, start time) for the
message a second run gets; the holder removes it when done, so one that is still there when the lock is
free was left by a run that was killed, and the new run says that it takes over. Cluster workers never
touch the lock: only the submitting process writes the table.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock, Timeout

from bench.atomic import atomic_write_text

LOCK_FILE = ".lock"
HOLDER_FILE = ".lock.json"


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


@contextmanager
def hold_run_folder(root: Path) -> Iterator[None]:
    """Hold ``root``'s lock until the block ends; ValueError naming the holder if another run has it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file of that name, a read-only parent, ...
        raise ValueError(f"--out {root} cannot be a run folder ({err.strerror}); valid: a folder you can write, "
                         "new or holding a run") from err
    lock = FileLock(root / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ValueError(f"--out {root} is in use by another run ({_holder(root)}); wait for it to finish, or "
                         "choose another --out") from None
    holder = root / HOLDER_FILE
    try:
        if holder.exists():
            print(f"warning: taking over the lock of {root} from a run that no longer exists ({_holder(root)}); "
                  "it was killed or crashed, and every cell it finished is kept", file=sys.stderr)
        atomic_write_text(holder, json.dumps(this_process(), sort_keys=True))
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


def _holder(root: Path) -> str:
    """``host H, pid P, started T`` from the holder file, or why it cannot say."""
    try:
        holder = json.loads((root / HOLDER_FILE).read_text())
        return f"host {holder['host']}, pid {holder['pid']}, started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):  # not written yet, or damaged: the lock still holds
        return f"holder unknown: {root / HOLDER_FILE} is missing or unreadable"
