# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command lines of the host-side programs; each ``*_main`` is a program's entry point (see ``program.PROGRAMS``).

``dbfleet-pg-dump``, run by cron::

    /usr/bin/python3 /opt/dbfleet/bin/dbfleet-pg-dump --config /etc/dbfleet/pg_dump/NAME.json [--json] [--quiet] [--dry-run]

``dbfleet-wal-archive``, run by PostgreSQL as its archive_command (``walarchive.archive_command``)::

    /usr/bin/python3 /opt/dbfleet/bin/dbfleet-wal-archive --config /etc/dbfleet/wal-archive.json %p %f

``dbfleet-transfer-receive`` and ``dbfleet-transfer-send``, started by ``send_file`` over SSH for one copy, with
the job (``transferjob``) as the first line of stdin; events and the result go to stderr as ``@dbfleet {JSON}``
lines (stdin and stdout carry the stream when the controller relays it)::

    python3 dbfleet-transfer-receive --config -

``dbfleet-wal-restore``, run by a restoring server as its restore_command (``walrestore.restore_command``)::

    /usr/bin/python3 /opt/dbfleet/bin/dbfleet-wal-restore --config /srv/dbfleet-restore/NAME/wal-restore.json %f %p
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import json
import os
import sys

from .config import load_config
from .dryrun import dry_run, format_report
from .log import Log, fs_hint
from .manifest import RUNNER_VERSION
from .naming import iso, utcnow
from .run import EXIT_BAD_CONFIG, EXIT_FAILED, EXIT_OK, locked_run
from .transfer import run_receiver, run_sender
from .transferjob import RECEIVE, SEND, load_job
from .walarchive import PROGRAM as WAL_ARCHIVE, ArchiveError, archive_segment, load_archive_config
from .walrestore import EXIT_ABORT, PROGRAM as WAL_RESTORE, RestoreError, fetch, load_restore_config, stage


def _start(parser, load, argv):
    """Parse the command line and load ``--config`` with ``load``: ``(args, config, errors, exit code or None)``.

    The exit code is 0 after ``--version``/``--help`` and 2 for a bad command
    line (args None) or a bad config (each error said on stderr).
    """
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return None, None, [], EXIT_OK if exc.code in (0, None) else EXIT_BAD_CONFIG
    cfg, errors = load(args.config)
    for error in errors:
        sys.stderr.write("%s: bad config %s: %s\n" % (parser.prog, args.config, error))
    return args, cfg, errors, EXIT_BAD_CONFIG if errors else None


def _dump_parser():
    parser = argparse.ArgumentParser(
        prog="dbfleet-pg-dump", description="dbfleet.postgresql host-side pg_dump runner (installed by pg_dump_schedule)")
    parser.add_argument("--config", required=True, help="JSON config written by the pg_dump_schedule module")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--quiet", action="store_true", help="do not copy log lines to stderr")
    parser.add_argument("--dry-run", action="store_true", help="show what would be dumped and pruned; write nothing")
    parser.add_argument("--version", action="version", version="%(prog)s " + RUNNER_VERSION)
    return parser


def _emit(summary, as_json):
    if as_json:
        sys.stdout.write(json.dumps(summary, sort_keys=True) + "\n")
        sys.stdout.flush()


def dump_main(argv=None):
    """``dbfleet-pg-dump``: run the schedule named by ``--config``; return the exit code."""
    args, cfg, errors, code = _start(_dump_parser(), load_config, argv)
    if args is None:
        return code
    if errors:
        _emit({"status": "failed", "name": None, "started_at": iso(utcnow()), "finished_at": iso(utcnow()),
               "artifacts": [], "pruned": [], "errors": ["bad config %s: %s" % (args.config, e) for e in errors],
               "runner_version": RUNNER_VERSION, "exit_code": EXIT_BAD_CONFIG}, args.json)
        return EXIT_BAD_CONFIG
    if args.dry_run:
        report = dry_run(cfg)
        if args.json:
            _emit(report, True)
        else:
            sys.stdout.write(format_report(report))
        return EXIT_OK if report["status"] == "ok" else EXIT_FAILED
    os.umask(0o027)
    log = Log(cfg["log_file"], cfg["name"], args.quiet)
    try:
        summary = locked_run(cfg, args.config, args.quiet, log)
    finally:
        log.close()
    if args.quiet and summary["exit_code"] != EXIT_OK:
        # --quiet keeps the log off stderr, not a failure: cron mails what a job prints
        sys.stderr.write("dbfleet-pg-dump %s: run %s (exit %d): %s; log: %s\n" % (
            cfg["name"], summary["status"], summary["exit_code"], "; ".join(summary["errors"]) or "see the log", cfg["log_file"]))
    _emit(summary, args.json)
    return summary["exit_code"]


def _wal_archive_parser():
    parser = argparse.ArgumentParser(
        prog=WAL_ARCHIVE, description="dbfleet.postgresql WAL archiver: PostgreSQL's archive_command (%p %f)")
    parser.add_argument("--config", required=True, help="JSON config naming archive_dir")
    parser.add_argument("path", help="%%p: the segment's path, relative to the data directory")
    parser.add_argument("name", help="%%f: the segment's file name")
    parser.add_argument("--version", action="version", version="%(prog)s " + RUNNER_VERSION)
    return parser


def wal_archive_main(argv=None):
    """``dbfleet-wal-archive``: archive one WAL segment; 0 when it is safely in the archive.

    Silent on success; anything else is said on stderr, which PostgreSQL
    writes to its log, and the exit status is non-zero so it retries.
    """
    args, cfg, _errors, code = _start(_wal_archive_parser(), load_archive_config, argv)
    if code is not None:
        return code
    try:
        outcome, sentence = archive_segment(args.path, args.name, cfg["archive_dir"])
    except ArchiveError as exc:
        sys.stderr.write("%s: %s: %s\n" % (WAL_ARCHIVE, args.name, exc))
        return EXIT_FAILED
    except OSError as exc:
        sys.stderr.write("%s: could not archive %s into %s: %s%s\n" % (WAL_ARCHIVE, args.path, cfg["archive_dir"], exc, fs_hint(exc)))
        return EXIT_FAILED
    if outcome == "identical":  # worth a line in the server log: a retry after a crash, or a second archiver
        sys.stderr.write("%s: %s\n" % (WAL_ARCHIVE, sentence))
    return EXIT_OK


EVENT_PREFIX = "@dbfleet "


def _event(data):
    sys.stderr.write(EVENT_PREFIX + json.dumps(data, sort_keys=True) + "\n")
    sys.stderr.flush()


def _transfer_main(program, run, argv):
    parser = argparse.ArgumentParser(prog=program, description="dbfleet.postgresql: one side of one send_file copy")
    parser.add_argument("--config", required=True, help="the job: a JSON file, or - for the first line of stdin")
    parser.add_argument("unexpected", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version="%(prog)s " + RUNNER_VERSION)
    args, job, _errors, code = _start(parser, lambda path: load_job(path, program), argv)
    if code is not None:
        return code
    if args.unexpected:
        sys.stderr.write("%s: unexpected arguments %s: the job says everything\n" % (program, " ".join(args.unexpected)))
        return EXIT_BAD_CONFIG
    os.umask(0o077)
    code, result = run(job, _event)
    _event(result)
    return code


def transfer_receive_main(argv=None):
    """``dbfleet-transfer-receive``: receive one copy (direct: on a one-time TLS port; relay: on stdin)."""
    return _transfer_main(RECEIVE, run_receiver, argv)


def transfer_send_main(argv=None):
    """``dbfleet-transfer-send``: send one copy (direct: to the pinned one-time port; relay: on stdout)."""
    return _transfer_main(SEND, run_sender, argv)


def wal_restore_main(argv=None):
    """``dbfleet-wal-restore``: give a restoring server one archived file (%f) at %p; 0 restored, 1 not archived.

    A file that exists but is not what was asked for exits 126: PostgreSQL then stops recovery instead of ending it
    early at the wrong point. Silent unless something is wrong (stderr goes to the server log). ``--stage DIR``
    copies the config's whole ``stage`` list into DIR at once and prints ``{"staged": N, "bytes": B}``.
    """
    parser = argparse.ArgumentParser(prog=WAL_RESTORE, description="dbfleet.postgresql WAL restore: restore_command (%f %p)")
    parser.add_argument("--config", required=True, help="JSON config naming the sources")
    parser.add_argument("--stage", metavar="DIR", help="copy the config's stage list into DIR (a data directory's pg_wal)")
    parser.add_argument("name", nargs="?", help="%%f: the file the server asks for")
    parser.add_argument("path", nargs="?", help="%%p: where to put it, relative to the data directory")
    parser.add_argument("--version", action="version", version="%(prog)s " + RUNNER_VERSION)
    args, cfg, _errors, code = _start(parser, load_restore_config, argv)
    if code is not None:
        return code
    if args.stage:
        try:
            copied, size = stage(cfg, args.stage)
        except (RestoreError, OSError) as exc:
            sys.stderr.write("%s: staging into %s failed: %s\n" % (WAL_RESTORE, args.stage, exc))
            return EXIT_ABORT
        sys.stdout.write(json.dumps({"staged": copied, "bytes": size}) + "\n")
        return EXIT_OK
    if not args.name or not args.path:
        sys.stderr.write("%s: give %%f and %%p, or --stage DIR\n" % WAL_RESTORE)
        return EXIT_BAD_CONFIG
    code, sentence = fetch(args.name, args.path, cfg)
    if sentence:
        sys.stderr.write("%s: %s\n" % (WAL_RESTORE, sentence))
    return code
