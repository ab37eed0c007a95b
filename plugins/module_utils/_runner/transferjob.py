# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job of ``dbfleet-transfer-send`` and ``dbfleet-transfer-receive``: loaded, defaulted, checked.

``send_file``'s action plugin writes the job as the first line of the
program's stdin (``--config -``), so the one-time token never appears on a
command line or in an environment another user could read; a JSON file works
too, for a person testing by hand.  Every problem is reported, not the first.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import sys

from .fsutil import read_json_object
from .naming import has_control_character

SEND, RECEIVE = "dbfleet-transfer-send", "dbfleet-transfer-receive"
MAX_JOB = 1 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

COMMON = {"mode": None, "kind": None, "dest": None, "timeout": 60, "connect_timeout": 20, "resume": True, "port": 0,
          "token": None}
RECEIVER = {"listen": None, "dir_id": None, "owner": [0, 0], "file_mode": 0o640, "dir_mode": 0o750, "dbfleet_mode": "edit",
            "backup_dir": None}
SENDER = {"path": None, "source_id": None, "connect": None, "fingerprint": None, "bwlimit": 0}


def defaults(program):
    """The keys of ``program``'s job and their defaults."""
    out = dict(COMMON)
    out.update(RECEIVER if program == RECEIVE else SENDER)
    return out


def _absolute(value):
    return isinstance(value, str) and value.startswith("/") and not has_control_character(value)


def _number(value, low, high=None):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= low and (high is None or value <= high)


def _id_pair(value):
    return value is None or (isinstance(value, list) and len(value) == 2 and all(_number(item, 0) for item in value))


def job_errors(job, program):
    """Every problem of ``job`` (already defaulted), in words."""
    errors = []
    known = defaults(program)
    errors.extend("unknown key %r" % key for key in sorted(job) if key not in known)
    if job["mode"] not in ("direct", "relay"):
        errors.append("mode must be direct or relay, got %r" % (job["mode"],))
    if job["kind"] not in ("file", "tree"):
        errors.append("kind must be file or tree, got %r" % (job["kind"],))
    if not _absolute(job["dest"]):
        errors.append("dest must be an absolute path without control characters, got %r" % (job["dest"],))
    for key in ("timeout", "connect_timeout"):
        if not _number(job[key], 1, 86400):
            errors.append("%s must be a number of seconds between 1 and 86400, got %r" % (key, job[key]))
    if not isinstance(job["resume"], bool):
        errors.append("resume must be true or false")
    direct = job["mode"] == "direct"
    if direct and not (isinstance(job["token"], str) and _HEX64.match(job["token"])):
        errors.append("a direct transfer needs token: 64 hex digits")
    if not isinstance(job["port"], int) or not 0 <= job["port"] <= 65535:
        errors.append("port must be 0-65535, got %r" % (job["port"],))
    if program == RECEIVE:
        errors.extend(_receiver_errors(job, direct))
    else:
        errors.extend(_sender_errors(job, direct))
    return errors


def _receiver_errors(job, direct):
    errors = []
    if direct and not (isinstance(job["listen"], str) and job["listen"] and not has_control_character(job["listen"])):
        errors.append("a direct transfer needs listen: the address to listen on")
    if not _id_pair(job["dir_id"]):
        errors.append("dir_id must be [device, inode] or null")
    if not (isinstance(job["owner"], list) and len(job["owner"]) == 2 and all(_number(i, 0) for i in job["owner"])):
        errors.append("owner must be [uid, gid]")
    for key in ("file_mode", "dir_mode"):
        if not (isinstance(job[key], int) and 0 <= job[key] <= 0o777):
            errors.append("%s must be a permission mode without setuid, setgid or sticky bits, got %r" % (key, job[key]))
    if job["dbfleet_mode"] not in ("edit", "bypass"):
        errors.append("dbfleet_mode must be edit or bypass (a host in plan mode never receives), got %r" % (job["dbfleet_mode"],))
    if job["backup_dir"] is not None and not _absolute(job["backup_dir"]):
        errors.append("backup_dir must be an absolute path or null")
    return errors


def _sender_errors(job, direct):
    errors = []
    if not _absolute(job["path"]):
        errors.append("path must be an absolute path without control characters, got %r" % (job["path"],))
    if not _id_pair(job["source_id"]):
        errors.append("source_id must be [device, inode] or null")
    if direct:
        if not (isinstance(job["connect"], str) and job["connect"] and not has_control_character(job["connect"])):
            errors.append("a direct transfer needs connect: the receiver's address")
        if not isinstance(job["port"], int) or not 1 <= job["port"] <= 65535:
            errors.append("a direct transfer needs the receiver's port")
        if not (isinstance(job["fingerprint"], str) and _HEX64.match(job["fingerprint"])):
            errors.append("a direct transfer needs fingerprint: the receiver certificate's SHA-256, 64 hex digits")
    if not _number(job["bwlimit"], 0):
        errors.append("bwlimit must be bytes per second (0: no limit), got %r" % (job["bwlimit"],))
    return errors


def load_job(path, program):
    """``(job, errors)`` from a JSON file, or from the first line of stdin when ``path`` is ``-``."""
    if path == "-":
        line = sys.stdin.buffer.readline(MAX_JOB)
        try:
            data = json.loads(line.decode("utf-8"))
        except ValueError:
            return None, ["the first line of stdin is not a JSON job"]
        if not isinstance(data, dict):
            return None, ["the first line of stdin must be a JSON object"]
    else:
        data, problem = read_json_object(path, "job ")
        if problem:
            return None, [problem]
    job = defaults(program)
    job.update(data)
    return job, job_errors(job, program)
