# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a schedule's state directory says about its runs: ``last-run.json`` and ``running.json``.

Every run that gets as far as reading its config leaves ``last-run.json``
(the run summary: ok, failed, skipped, with the reasons).  A run holding the
lock keeps ``running.json`` (pid, start) until it has written its summary; one
left behind means that run died without finishing (SIGKILL, a power cut).  A
verify check reads both with :func:`run_state`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from .fsutil import makedirs, read_json_object, remove_path, write_json_atomic
from .locking import pid_alive

LAST_RUN_FILE = "last-run.json"
RUNNING_FILE = "running.json"


def _read(path):
    return read_json_object(path)[0]


def write_last_run(state_dir, summary):
    """Record a run's summary as ``last-run.json`` (atomically); OSError when it cannot be written."""
    makedirs(state_dir)
    write_json_atomic(os.path.join(state_dir, LAST_RUN_FILE), summary)


def mark_running(state_dir, record):
    """Write ``running.json`` (``record``: pid, started_at, name, ...) for the run that now holds the lock."""
    makedirs(state_dir)
    write_json_atomic(os.path.join(state_dir, RUNNING_FILE), record)


def clear_running(state_dir):
    """Remove ``running.json``: the run has written its summary."""
    remove_path(os.path.join(state_dir, RUNNING_FILE))


def read_running(state_dir):
    """The ``running.json`` record, or None when there is none (or it cannot be read)."""
    return _read(os.path.join(state_dir, RUNNING_FILE))


def died_message(record):
    """How a run that left its ``running.json`` behind is reported."""
    return "previous run (pid %s, started %s) died without finishing" % (record.get("pid"), record.get("started_at"))


def run_state(state_dir):
    """What a verify check needs to know: ``{"last_run", "running", "running_alive", "died"}``.

    ``last_run``: the last summary (None if none); ``running``: the
    ``running.json`` record (None if none); ``running_alive``: whether its
    process still exists; ``died``: :func:`died_message` when the record's
    process is gone (it died without finishing), else None.  (A pid reused by
    another process reads as alive: the next run of the schedule tells for sure.)
    """
    running = read_running(state_dir)
    alive = bool(running) and isinstance(running.get("pid"), int) and pid_alive(running["pid"])
    return {"last_run": _read(os.path.join(state_dir, LAST_RUN_FILE)), "running": running, "running_alive": alive,
            "died": died_message(running) if running and not alive else None}
