# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of a dump schedule: the lock, the artifacts, uploads, retention, the WAL archive, the summary.

Exit codes: 0 everything succeeded, 1 any failure (a dump, an upload, a
prune, the WAL archive cleanup), 2 bad config or command line, 75 skipped
because another run holds the lock.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import signal
import socket
import sys
import time

from .artifact import make_artifact
from .basebackup import BASEBACKUP_MIN_MAJOR
from .compression import basebackup_compression_plan, compression_plan, globals_compression_plan
from .config import DEFAULT_PART_SIZE_MB
from .fsutil import makedirs, remove_path
from .libpq import tool_environment
from .locking import acquire_lock, pid_alive
from .log import clean_exc, fs_hint
from .manifest import RUNNER_VERSION, public
from .naming import (BASE_NAME, GLOBALS_NAME, dump_name_problem, format_stamp, has_control_character, iso, parse_artifact_name,
                     parse_partial_name, utcnow)
from .pipeline import Terminated, on_signal, start_timeout, stop_timeout
from .retention import collect_entries, prune
from .s3 import upload
from .state import LAST_RUN_FILE, RUNNING_FILE, clear_running, died_message, mark_running, read_running, write_last_run
from .server import find_tool, list_databases, tool_version
from .wal import clean_wal_archive

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_SKIPPED = 75  # EX_TEMPFAIL: "try again later"

APP_NAME = "dbfleet-pg-dump"


class DumpRun:
    """One execution of a schedule: the tools it found, what it made and pruned, what went wrong."""

    def __init__(self, cfg, log, dry_run=False):
        self.cfg = cfg
        self.log = log
        self.dry_run = dry_run
        self.dest = cfg["dest"]
        self.errors = []
        self.warnings = []
        self.artifacts = []
        self.pruned = []
        self.not_dumped = []
        self.host = socket.gethostname()
        self.pg_dump_version = None
        self.pg_dump_major = None
        self.pg_basebackup_version = None
        self.plan = None
        self.globals_plan = None
        self.base_plan = None
        self.wal_cleanup = None
        self.tools = {}
        self.env = tool_environment(cfg["connection"], APP_NAME)

    def part_size(self):
        """The S3 multipart part size in bytes (0 without S3: no part digests needed)."""
        if self.cfg.get("s3"):
            return int(self.cfg["s3"].get("part_size_mb") or DEFAULT_PART_SIZE_MB) * 1024 * 1024
        return 0

    def _tool_version(self, name):
        version, major, error = tool_version(self.tools[name], name, self.env)
        if error:
            self.errors.append(error)
        return version, major

    def prepare(self):
        """Find the tools, their versions, the compression plans; False with errors recorded on failure."""
        cfg = self.cfg
        kind = cfg["kind"]
        for name in ("pg_basebackup", "psql", "pg_archivecleanup") if kind == "basebackup" else ("pg_dump", "pg_dumpall", "psql"):
            self.tools[name] = find_tool(cfg.get("pg_bin"), self.env, name)
        if kind == "basebackup":
            self.pg_basebackup_version, major = self._tool_version("pg_basebackup")
            if major is None:
                return False
            if major < BASEBACKUP_MIN_MAJOR:
                self.errors.append("kind: basebackup needs pg_basebackup %d or newer (for --compress=client-METHOD:LEVEL), "
                                   "found %s at %s: install a newer PostgreSQL client or set pg_bin"
                                   % (BASEBACKUP_MIN_MAJOR, self.pg_basebackup_version, self.tools["pg_basebackup"]))
                return False
            self.base_plan = basebackup_compression_plan(cfg["compression"], cfg["compression_level"])
            return True
        self.pg_dump_version, self.pg_dump_major = self._tool_version("pg_dump")
        if self.pg_dump_major is None:
            return False
        self.plan = compression_plan(cfg["format"], cfg["compression"], cfg["compression_level"], self.pg_dump_major)
        self.globals_plan = globals_compression_plan(cfg["compression"], cfg["compression_level"], self.pg_dump_major)
        for plan in (self.plan, self.globals_plan):
            if plan["external"] and not shutil.which(plan["external"][0], path=self.env.get("PATH")):
                self.errors.append("compressor %r not found in PATH (%s): install it or choose another compression"
                                   % (plan["external"][0], self.env.get("PATH")))
                return False
        return True

    def remove_stale_partials(self):
        """Remove ``.partial-*`` temp files of crashed runs (we hold the lock)."""
        for name in os.listdir(self.dest):
            parsed = parse_partial_name(name)
            if parsed is None:
                continue
            _final, pid = parsed
            if pid != os.getpid() and pid_alive(pid):
                self.log("leaving %s alone: process %d is still running" % (name, pid))
                continue
            self.log("removing leftover of a crashed run: %s" % name)
            try:
                remove_path(os.path.join(self.dest, name))
            except OSError as exc:
                self.warnings.append("could not remove %s: %s" % (name, exc))

    def choose_stamp(self, dbs):
        """A stamp (now, UTC) that no existing artifact of ``dbs`` uses yet."""
        for _attempt in range(5):
            now = utcnow()
            stamp = format_stamp(now)
            try:
                names = os.listdir(self.dest)
            except FileNotFoundError:
                return stamp
            taken = any((p or {}).get("stamp") == stamp and p["db"] in dbs for p in (parse_artifact_name(n) for n in names))
            if not taken:
                return stamp
            time.sleep(1.05 - now.microsecond / 1e6)
        return format_stamp(utcnow())

    def fail(self, message):
        """Record an error of the run and log it."""
        self.errors.append(message)
        self.log(message)

    def warn(self, message):
        """Record a warning of the run and log it."""
        self.warnings.append(message)
        self.log(message)

    def select_databases(self):
        """The databases this run dumps (None when the server cannot be asked); every other one goes into ``not_dumped``.

        Nothing is left out in silence: every database left out is in
        ``not_dumped`` with the reason; a user database that refuses
        connections is also a warning, a template or an excluded one is
        logged.  A name
        found on the server that cannot be a file name is not dumped: a warning
        when it holds a control character (it cannot even be excluded), an
        error otherwise (exclude it or rename it).
        """
        dbs, left_out = list_databases(self)
        if dbs is None:
            return None
        for item in left_out:
            message = "database %r not dumped: %s" % (item["db"], item["reason"])
            if item["excluded"]:
                self.log(message)
            else:
                self.warn(message)
            self.not_dumped.append({"db": item["db"], "reason": item["reason"]})
        usable = []
        for db in dbs:
            problem = dump_name_problem(db, self.cfg["globals"])
            if problem is None:
                usable.append(db)
                continue
            self.not_dumped.append({"db": db, "reason": problem})
            (self.warn if has_control_character(db) else self.fail)("database %r not dumped: %s" % (db, problem))
        return usable


def locked_run(cfg, config_path, quiet, log):
    """Run the schedule under its lock; return the run summary (``exit_code`` in it).

    Every run leaves its summary in ``last-run.json``: a skipped one (the lock
    is busy) and one that could not even open the lock file too.  A run that
    holds the lock keeps ``running.json`` until then, reports one left by a run
    that died, and is stopped (its children killed) after ``run_timeout``.
    """
    started = utcnow()
    summary = {"status": "failed", "name": cfg["name"], "started_at": iso(started), "finished_at": None,
               "artifacts": [], "pruned": [], "errors": [], "warnings": [], "runner_version": RUNNER_VERSION,
               "host": socket.gethostname(), "config": config_path, "kind": cfg["kind"], "wal_cleanup": None, "not_dumped": [],
               "previous_run": None}
    if log.problem:
        summary["warnings"].append(log.problem)
        if not quiet:
            sys.stderr.write(log.problem + "\n")
    try:
        lock_fd, holder = acquire_lock(cfg["lock_file"], cfg["lock_wait"])
    except OSError as exc:
        message = "cannot open lock file %s: %s" % (cfg["lock_file"], exc)
        log(message)
        summary.update({"errors": [message], "finished_at": iso(utcnow()), "exit_code": EXIT_FAILED})
        return _record(cfg, summary, log)
    if lock_fd is None:
        message = "skipped: another run of %s holds %s (%s) after waiting %ss" % (
            cfg["name"], cfg["lock_file"], holder or "holder unknown", cfg["lock_wait"])
        log(message)
        summary.update({"status": "skipped", "errors": [message], "finished_at": iso(utcnow()), "exit_code": EXIT_SKIPPED})
        return _record(cfg, summary, log)
    try:
        _take_over(cfg, summary, log)
        _run_with_timeout(DumpRun(cfg, log), summary)
        summary["finished_at"] = iso(utcnow())
        summary["status"] = "ok" if not summary["errors"] else "failed"
        summary["exit_code"] = EXIT_OK if summary["status"] == "ok" else EXIT_FAILED
        log("run %s: %d artifacts, %d pruned, %s%d errors%s" % (
            summary["status"], len(summary["artifacts"]), len(summary["pruned"]),
            "%d archived WAL segments removed, " % summary["wal_cleanup"]["removed"] if summary["wal_cleanup"] else "",
            len(summary["errors"]), "".join("\n  error: %s" % e for e in summary["errors"])))
        _record(cfg, summary, log)
        try:
            clear_running(cfg["state_dir"])
        except OSError as exc:
            log("could not remove %s: %s" % (os.path.join(cfg["state_dir"], RUNNING_FILE), exc))
    finally:
        os.close(lock_fd)
    return summary


def _take_over(cfg, summary, log):
    """Report a run that died without finishing (its ``running.json`` is still there); mark this one as running."""
    previous = read_running(cfg["state_dir"])
    if previous is not None:
        summary["previous_run"] = dict(previous, died=True)
        message = died_message(previous)
        log(message)
        summary["warnings"].append(message)
    try:
        mark_running(cfg["state_dir"], {"pid": os.getpid(), "started_at": summary["started_at"], "name": cfg["name"],
                                        "config": summary["config"], "host": summary["host"]})
    except OSError as exc:
        message = "cannot write %s: %s (a run that dies will not be noticed)" % (os.path.join(cfg["state_dir"], RUNNING_FILE), exc)
        log(message)
        summary["warnings"].append(message)


def _run_with_timeout(run, summary):
    """:func:`run_schedule` with SIGTERM/SIGHUP/SIGINT and ``run_timeout`` turned into :class:`Terminated`."""
    handlers = dict((signum, signal.signal(signum, on_signal)) for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT))
    alarm = start_timeout(run.cfg["run_timeout"], "the run timed out (run_timeout %d s)" % run.cfg["run_timeout"])
    try:
        run_schedule(run, summary)
    except Terminated as exc:  # between the steps that handle it themselves
        summary["errors"].append("%s; the run did not finish" % exc.reason)
    finally:
        stop_timeout(alarm)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _record(cfg, summary, log):
    """Write ``summary`` to ``last-run.json``; a run that cannot is failed (a skipped one stays skipped)."""
    try:
        write_last_run(cfg["state_dir"], summary)
    except OSError as exc:
        message = "could not write %s: %s" % (os.path.join(cfg["state_dir"], LAST_RUN_FILE), exc)
        log(message)
        summary["errors"].append(message)
        if summary["status"] != "skipped":
            summary["status"] = "failed"
            summary["exit_code"] = EXIT_FAILED
    return summary


def run_schedule(run, summary):
    """Everything a run does under the lock; what it made, pruned and found wrong goes into ``summary``."""
    cfg = run.cfg
    run.log("run started (runner %s, config %s, dest %s)" % (RUNNER_VERSION, summary["config"], cfg["dest"]))
    try:
        try:
            makedirs(cfg["dest"])
            run.remove_stale_partials()
        except OSError as exc:
            run.fail("cannot use dest %s: %s%s" % (cfg["dest"], exc, fs_hint(exc)))
            return
        if not run.prepare():
            for error in run.errors:
                run.log(error)
            return
        if cfg["kind"] == "basebackup":
            _run_basebackup(run)
        else:
            _run_dumps(run)
    except Terminated as exc:
        run.fail("%s; nothing was pruned" % exc.reason)
    except Exception as exc:  # pylint: disable=broad-except
        # Never leave the caller without a summary: report the bug as a failed run.
        run.fail("internal error in the dump runner %s: %s" % (RUNNER_VERSION, clean_exc(exc)))
    finally:
        summary["artifacts"] = [public(item) for item in run.artifacts]
        summary["pruned"] = list(run.pruned)
        summary["wal_cleanup"] = run.wal_cleanup
        summary["not_dumped"] = list(run.not_dumped)
        summary["errors"].extend(run.errors)
        summary["warnings"].extend(run.warnings)


def _run_dumps(run):
    """The databases and the globals, each uploaded when good, then retention for those that succeeded."""
    cfg = run.cfg
    usable = run.select_databases()
    if usable is None:
        return
    if not usable and not cfg["globals"]:
        run.fail("no database to dump (databases: %r, exclude_databases: %r)" % (cfg["databases"], cfg["exclude_databases"]))
        return
    names = set(usable) | ({GLOBALS_NAME} if cfg["globals"] else set())
    stamp = run.choose_stamp(names)
    run.log("databases: %s; stamp %s; %s" % (", ".join(usable) or "(none)", stamp, run.plan["reason"]))
    jobs = [(db, "database") for db in usable] + ([(GLOBALS_NAME, "globals")] if cfg["globals"] else [])
    good = []
    for db, kind in jobs:
        manifest = make_artifact(run, db, stamp, kind)
        if manifest["status"] == "ok":
            if cfg.get("s3"):
                upload(run, manifest)
            good.append(db)
    skipped = sorted(set(db for db, _kind in jobs) - set(good))
    if skipped:
        run.log("no pruning for %s: this run's dump failed, every existing dump stays" % ", ".join(skipped))
    try:
        prune(run, good, trusted=[(db, stamp) for db in good])
    except OSError as exc:
        run.fail("retention could not run in %s: %s" % (cfg["dest"], exc))


def _run_basebackup(run):
    """Base backup, upload, retention over ``base`` artifacts, then the WAL archive cleanup."""
    cfg = run.cfg
    stamp = run.choose_stamp({BASE_NAME})
    run.log("base backup; stamp %s; %s" % (stamp, run.base_plan["reason"]))
    manifest = make_artifact(run, BASE_NAME, stamp, "basebackup")
    if manifest["status"] != "ok":
        run.log("no pruning and no WAL archive cleanup: this run's base backup failed, every existing one stays")
        return
    if cfg.get("s3"):
        upload(run, manifest)
    try:
        prune(run, [BASE_NAME], trusted=[(BASE_NAME, stamp)])
    except OSError as exc:
        run.fail("retention could not run in %s: %s" % (cfg["dest"], exc))
        return
    if cfg["wal_archive"]:
        clean_wal_archive(run, collect_entries(run.dest, {BASE_NAME}))
