# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One logical dump: the pg_dump/pg_dumpall command line, streamed and hashed into a temp file.

:func:`dump_stages` is the one place a dump's pipeline is put together; the
dry run shows exactly what the real run executes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from .fsutil import chmod_tree, create_exclusive, fsync_dir
from .hashing import StreamDigest, hash_tree
from .libpq import database_environment
from .pipeline import judge, run_pipeline


def pg_dump_argv(pg_dump, plan, jobs=1, target=None, lock_timeout=None):
    """argv of pg_dump for a compression ``plan`` (:func:`compression_plan`).

    The connection and the database come from the environment, never from
    arguments; ``--no-password`` makes a missing password an error instead of
    a prompt, ``lock_timeout`` (seconds) a table lock held by someone else an
    error after that long instead of a wait without end.  A directory-format
    dump writes into ``target`` itself with ``jobs`` parallel jobs; the other
    formats write to stdout.
    """
    argv = [pg_dump, "--no-password", "--format=%s" % plan["format"]]
    if lock_timeout:
        argv.append("--lock-wait-timeout=%ds" % lock_timeout)
    if plan["format"] == "directory":
        argv += ["--jobs=%d" % jobs, "--file=%s" % target]
    return argv + list(plan["pg_dump_args"])


def globals_argv(pg_dumpall, dbname, role_passwords):
    """argv of ``pg_dumpall --globals-only``; without role passwords unless ``role_passwords``."""
    argv = [pg_dumpall, "--globals-only", "--no-password", "--database=%s" % dbname]
    if not role_passwords:
        argv.append("--no-role-passwords")
    return argv


def dump_stages(run, kind, plan, target, role_passwords=True):
    """The pipeline of one dump, ``[(label, argv)]``: pg_dump (or pg_dumpall) and the external compressor, if any.

    ``kind`` is ``"database"`` or ``"globals"``; ``target`` is the temp path
    the dump is written to (a directory-format pg_dump writes there itself).
    """
    if kind == "globals":
        stages = [("pg_dumpall", globals_argv(run.tools["pg_dumpall"], run.cfg["connection"]["dbname"], role_passwords))]
    else:
        stages = [("pg_dump", pg_dump_argv(run.tools["pg_dump"], plan, run.cfg["jobs"], target, run.cfg["lock_timeout"]))]
    if plan["external"]:
        stages.append((plan["external"][0], list(plan["external"])))
    return stages


def pipeline_text(stages):
    """A pipeline as a manifest records it: ``pg_dump ... | zstd ...``."""
    return " | ".join(" ".join(argv) for _label, argv in stages)


def dump_stream(run, db, kind, plan, tmp, final, digest, manifest):
    """pg_dump/pg_dumpall [| compressor] streamed into ``tmp`` and hashed on the way; returns an error string or None."""
    stages = dump_stages(run, kind, plan, tmp, manifest.get("role_passwords") is not False)
    env = run.env if kind == "globals" else database_environment(run.env, db)
    manifest["pipeline"] = pipeline_text(stages)
    run.log("pipeline: %s" % manifest["pipeline"])
    fd = create_exclusive(tmp, 0o640)
    try:
        os.fchmod(fd, 0o640)
        result = run_pipeline(stages, env, fd, digest)
        if result["write_error"] is None:
            os.fsync(fd)
    finally:
        os.close(fd)
    manifest["exit_status"] = dict(result["exit_status"])
    return judge(result, run.log, final)


def dump_directory(run, db, plan, tmp, final, manifest):
    """pg_dump -Fd -j N into ``tmp``; per-file SHA-256 afterwards.  Returns ``(error, files, digest)``."""
    stages = dump_stages(run, "database", plan, tmp)
    manifest["pipeline"] = pipeline_text(stages)
    run.log("pipeline: %s" % manifest["pipeline"])
    result = run_pipeline(stages, database_environment(run.env, db), None, StreamDigest())
    manifest["exit_status"] = dict(result["exit_status"])
    error = judge(result, run.log, final)
    if error is not None:
        return error, None, StreamDigest()
    # pg_dump writes the files of a directory dump itself (a directory
    # cannot be streamed through us), so reading them back to hash them
    # is unavoidable here; it is one of the two places (with base
    # backups) where the runner re-reads data.
    digest = seal_tree(tmp, run.part_size())
    return None, digest.listing(), digest


def seal_tree(top, part_size):
    """A directory a PostgreSQL tool wrote itself: dirs 0750, files 0640, each file read once to hash and fsync'd.

    Returns the :class:`TreeDigest` (``part_size``: S3 part digests per file).
    """
    chmod_tree(top, 0o750, 0o640)
    digest = hash_tree(top, part_size, fsync=True)
    fsync_dir(top)
    return digest
