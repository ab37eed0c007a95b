# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The log of a run, and the words it uses: hints for the operator, short error texts."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import sys

from .fsutil import makedirs
from .naming import iso, utcnow


class Log:
    """Append timestamped lines to the log file, and to stderr unless quiet."""

    def __init__(self, path, name, quiet):
        self.name = name
        self.quiet = quiet
        self.handle = None
        self.problem = None
        if path:
            try:
                makedirs(os.path.dirname(path))
                self.handle = open(path, "a", encoding="utf-8")  # pylint: disable=consider-using-with
            except OSError as exc:
                self.problem = "cannot write log file %s: %s" % (path, exc)

    def __call__(self, message):
        prefix = "%s %s[%d] " % (iso(utcnow()), self.name, os.getpid())
        lines = str(message).splitlines() or [""]
        text = "".join(prefix + line + "\n" for line in lines)
        if self.handle is not None:
            try:
                self.handle.write(text)
                self.handle.flush()
            except OSError:
                pass
        if not self.quiet:
            sys.stderr.write(text)
            sys.stderr.flush()

    def close(self):
        """Close the log file."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def hint(text):
    """A hint for the operator (leading space, in parentheses) from a tool's error text, or ''."""
    low = text.lower()
    if "no space left on device" in low:
        return " (the backup filesystem is full: free space or lower retention_days/keep_min)"
    if "connection refused" in low or ("no such file or directory" in low and "socket" in low):
        return " (is PostgreSQL running and listening where connection.host/port point?)"
    if "password authentication failed" in low or "no password supplied" in low:
        return " (check connection.user and the passfile)"
    if "replication" in low and ("walsender" in low or "pg_hba.conf" in low or "permission" in low):
        return (" (a base backup needs a role with the REPLICATION attribute and a 'host replication' line "
                "for it in pg_hba.conf)")
    if "lock table" in low and "statement timeout" in low:
        return (" (another session held a lock on a table longer than lock_timeout allows: see pg_locks and "
                "pg_stat_activity, or raise lock_timeout)")
    if "does not exist" in low and "database" in low:
        return " (check the database name in the schedule)"
    if "permission denied" in low:
        return " (the dump user lacks a privilege; grant pg_read_all_data or dump as a superuser)"
    return ""


def fs_hint(exc):
    """A hint for the operator from an OSError writing the backup, or ''."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return " (the backup filesystem is full: free space or lower retention_days/keep_min)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return " (the user running the dumps cannot write there: check the owner and mode of dest)"
    return ""


def stderr_summary(text, limit=3):
    """The last ``limit`` non-empty lines of a tool's stderr, on one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-limit:])


def clean_exc(exc):
    """An exception as ``Class: message`` (once)."""
    text = str(exc) or exc.__class__.__name__
    return "%s: %s" % (exc.__class__.__name__, text) if exc.__class__.__name__ not in text else text
