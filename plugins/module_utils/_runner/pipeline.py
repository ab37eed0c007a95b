# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the PostgreSQL tools: pipelines streamed through Python, process groups, signals.

Every stage's exit status is kept and judged (:func:`judge`): any non-zero one
fails the artifact, so an error message is never compressed into a "backup".
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import os
import signal
import subprocess
import tempfile

from .fsutil import write_all
from .hashing import READ_CHUNK
from .log import fs_hint, hint, stderr_summary

PIPE_SIZE = 1 << 20           # ask Linux for 1 MiB pipes (fewer syscalls)
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
MAX_STDERR_LOG = 64 * 1024


class Terminated(BaseException):
    """Raised from a signal handler (SIGTERM/SIGHUP/SIGINT, or the run timeout's SIGALRM) so that cleanup code runs.

    ``reason``: why, in words (``the runner was stopped by signal 15``).
    """

    def __init__(self, signum, reason=None):
        super(Terminated, self).__init__(signum)
        self.reason = reason or "the runner was stopped by signal %d" % signum


def on_signal(signum, _frame):
    """Signal handler: raise :class:`Terminated` in the main thread."""
    raise Terminated(signum)


def start_timeout(seconds, reason):
    """Raise :class:`Terminated` with ``reason`` in the main thread after ``seconds``; returns the old SIGALRM handler."""
    def on_alarm(signum, _frame):
        raise Terminated(signum, reason)
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return previous


def stop_timeout(previous):
    """Disarm :func:`start_timeout`'s alarm and restore the SIGALRM handler it replaced."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def run_pipeline(stages, env, out_fd, digest):
    """Run ``stages`` (list of ``(label, argv)``) as a pipe; stream the last stdout.

    The last stage's stdout is read in Python in 1 MiB chunks, each chunk fed
    to ``digest`` and written to ``out_fd`` (one pass: never re-read to hash);
    ``out_fd`` None discards the output (pg_dump -Fd writes its own files).
    Every stage's stderr goes to its own temp file.  The stages share one new
    process group, so a write error (disk full), a signal or the run timeout
    kills everything the pipeline started.  Returns a dict: ``exit_status`` {label: code},
    ``stderr`` {label: text}, ``write_error`` (OSError or None).  Exit codes
    are the caller's to judge; any non-zero one means a failed dump.
    """
    procs = []
    errfiles = []
    write_error = None
    group = None
    try:
        previous = None
        for label, argv in stages:
            errfile = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
            errfiles.append((label, errfile))
            proc = subprocess.Popen(  # pylint: disable=consider-using-with,subprocess-popen-preexec-fn
                argv, stdin=previous.stdout if previous is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=errfile, env=env, bufsize=0, close_fds=True, preexec_fn=_join_group(group))
            group = proc.pid if group is None else group
            if previous is not None:
                previous.stdout.close()  # only the next stage holds the read end now
            procs.append(proc)
            previous = proc
        source = procs[-1].stdout
        try:
            fcntl.fcntl(source.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # not fatal: smaller pipe, more syscalls
        buf = bytearray(READ_CHUNK)
        view = memoryview(buf)
        while True:
            count = source.readinto(buf)
            if not count:
                break
            chunk = view[:count]
            digest.update(chunk)
            if out_fd is None:
                continue
            try:
                write_all(out_fd, chunk)
            except OSError as exc:
                write_error = exc
                break
        if write_error is not None:
            kill_pipeline(procs, group)
        source.close()
        for proc in procs:
            proc.wait()
    except BaseException:
        kill_pipeline(procs, group)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for _label, errfile in errfiles:
            errfile.close()
        raise
    result = {"exit_status": {}, "stderr": {}, "write_error": write_error}
    for proc, (label, errfile) in zip(procs, errfiles):
        result["exit_status"][label] = proc.returncode
        errfile.seek(0)
        result["stderr"][label] = errfile.read(MAX_STDERR_LOG).decode("utf-8", "replace")
        errfile.close()
    return result


def _join_group(group):
    """A preexec_fn putting a stage into the pipeline's process group (a new one, led by the first stage)."""
    def join():
        os.setpgid(0, 0 if group is None else group)
    return join


def kill_pipeline(procs, group):
    """SIGKILL every process of a pipeline's group (grandchildren too), and each stage in case it left the group."""
    if group is not None:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
    for proc in procs:
        kill(proc)


def run_in_group(label, argv, env):
    """Run one program that writes its own files (pg_basebackup) in its own process group.

    pg_basebackup forks a WAL-streaming child; on a signal or an error the
    whole group is terminated (SIGTERM, then SIGKILL after 10 s) so no child
    outlives the run.  stdout is discarded, stderr captured.  Returns the same
    dict as :func:`run_pipeline` (``exit_status``, ``stderr``,
    ``write_error`` None).
    """
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                stderr=errfile, env=env, close_fds=True, start_new_session=True)
        try:
            proc.wait()
        except BaseException:
            kill_group(proc)
            raise
        errfile.seek(0)
        text = errfile.read(MAX_STDERR_LOG).decode("utf-8", "replace")
    return {"exit_status": {label: proc.returncode}, "stderr": {label: text}, "write_error": None}


def kill_group(proc):
    """SIGTERM the process group of ``proc``, SIGKILL what is left after 10 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except OSError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group (the WAL streamer)
    except OSError:
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def kill(proc):
    """SIGKILL ``proc`` unless it has exited."""
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass


def describe_exit(code):
    """``exited with status 1``, ``was killed by signal SIGPIPE``: an exit status in words."""
    if code is None:
        return "did not finish"
    if code < 0:
        try:
            return "was killed by signal %s" % signal.Signals(-code).name
        except ValueError:
            return "was killed by signal %d" % -code
    return "exited with status %d" % code


def judge(result, log, target):
    """The error (a sentence) of a :func:`run_pipeline` result writing ``target``, or None.

    Every stage's stderr goes to ``log``; a stage killed after the write error
    (by us) is not blamed.
    """
    for label, text in result["stderr"].items():
        if text.strip():
            log("\n".join("%s: %s" % (label, line) for line in text.rstrip().splitlines()[-200:]))
    problems = []
    if result["write_error"] is not None:
        exc = result["write_error"]
        problems.append("writing %s failed: %s%s" % (target, os.strerror(exc.errno) if exc.errno else exc, fs_hint(exc)))
    for label, code in result["exit_status"].items():
        if code != 0:
            summary = stderr_summary(result["stderr"].get(label, ""))
            if result["write_error"] is not None and code < 0:
                continue  # we killed it after the write error
            problems.append("%s %s%s%s" % (label, describe_exit(code), ": " + summary if summary else "", hint(summary)))
    return "; ".join(problems) if problems else None
