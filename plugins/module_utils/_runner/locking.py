# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run of a schedule at a time: an flock on the schedule's lock file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import os
import time

from .fsutil import makedirs
from .naming import iso, utcnow


def acquire_lock(path, wait):
    """flock(LOCK_EX) on ``path``, waiting up to ``wait`` seconds.

    Returns ``(fd, None)`` when held, ``(None, holder_text)`` when another run
    holds it.  Raises OSError when the lock file cannot be opened.
    """
    makedirs(os.path.dirname(path))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    deadline = time.monotonic() + float(wait)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            if time.monotonic() >= deadline:
                try:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                except OSError:
                    holder = ""
                os.close(fd)
                return None, holder
            time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, ("pid %d since %s\n" % (os.getpid(), iso(utcnow()))).encode("ascii"), 0)
        return fd, None


def pid_alive(pid):
    """Whether a process ``pid`` exists (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
