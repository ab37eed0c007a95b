# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup files into the tools that unpack them, read once: root opens the file safely (``_files.open_regular``),
hashes every byte it reads and feeds it to a pipeline (``zstd -d | tar -x``, ``zstd -d`` into a file) whose
stages run as the file's owner, never as root (see docs/security.md). The SHA-256 of what was read is compared
with the runner's manifest by the caller, so a restore never trusts a file that changed since it was made.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import subprocess
import tempfile
import threading

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._archive import DECOMPRESS_COMMANDS, _as, detect_compression
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.log import stderr_summary
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.pipeline import describe_exit

CHUNK = 1 << 20


class StreamError(Exception):
    """A file could not be read or unpacked; the message names the file and the tool."""


def compression_of(path):
    """``zstd``, ``gzip``, ``lz4`` or None, from the file's first bytes (its magic number); None for a directory."""
    if os.path.isdir(path):
        return None
    try:
        return detect_compression(_files.read_regular(path, 8) or b'')
    except (OSError, _files.UnsafePath) as exc:
        raise StreamError('cannot read %s: %s' % (path, exc))


def decompress_argv(compression):
    """The decompressor reading stdin and writing stdout, or None for an uncompressed file."""
    return list(DECOMPRESS_COMMANDS[compression]) if compression else None


def feed(path, stages, identity, stdout=None, cwd='/'):
    """Read ``path`` once, hashing it, into ``stages`` (``[(label, argv)]``, each stage's stdout the next one's stdin).

    Every stage runs as ``identity`` (``(uid, gid)``); the last one writes to ``stdout`` (an fd, or nothing).
    Returns ``{sha256, size}``; raises StreamError naming the stage that failed, with its last words.
    """
    try:
        handle = _files.open_regular(path)
    except (OSError, _files.UnsafePath) as exc:
        raise StreamError('cannot open %s: %s' % (path, exc))
    procs, errs = [], []
    digest, state = hashlib.sha256(), dict(size=0, error=None)
    with handle:
        try:
            previous = None
            for index, (label, argv) in enumerate(stages):
                err = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
                errs.append((label, err))
                last = index == len(stages) - 1
                proc = subprocess.Popen(  # pylint: disable=consider-using-with
                    argv, stdin=subprocess.PIPE if previous is None else previous.stdout,
                    stdout=(stdout if stdout is not None else subprocess.DEVNULL) if last else subprocess.PIPE,
                    stderr=err, cwd=cwd, close_fds=True, **_as(identity))
                if previous is not None:
                    previous.stdout.close()
                procs.append(proc)
                previous = proc
            feeder = threading.Thread(target=_pump, args=(handle, procs[0].stdin, digest, state))
            feeder.start()
            feeder.join()
            for proc in procs:
                proc.wait()
        except BaseException:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            raise
        finally:
            words = {}
            for label, err in errs:
                err.seek(0)
                words[label] = err.read(65536).decode('utf-8', 'replace')
                err.close()
    for (label, _argv), proc in zip(stages, procs):
        if proc.returncode != 0:
            summary = stderr_summary(words.get(label, ''))
            raise StreamError('%s %s while unpacking %s%s'
                              % (label, describe_exit(proc.returncode), path, ': ' + summary if summary else ''))
    if state['error']:
        raise StreamError('reading %s into %s failed: %s' % (path, stages[0][0], state['error']))
    return dict(sha256=digest.hexdigest(), size=state['size'])


def _pump(handle, sink, digest, state):
    try:
        for chunk in iter(lambda: handle.read(CHUNK), b''):
            digest.update(chunk)
            state['size'] += len(chunk)
            sink.write(chunk)
    except BrokenPipeError:
        state['error'] = 'the tool stopped reading early'
    except OSError as exc:
        state['error'] = str(exc)
    finally:
        try:
            sink.close()
        except OSError:
            pass


def tar_extract_argv(directory):
    """GNU tar unpacking stdin into ``directory`` (as the unprivileged identity: never root)."""
    return ['tar', '-x', '-f', '-', '-C', directory, '--no-same-owner', '--no-same-permissions', '--delay-directory-restore']


def unpack(path, directory, identity):
    """Unpack tar file ``path`` (plain or compressed) into ``directory``; ``{sha256, size}``."""
    stages = []
    compression = compression_of(path)
    if compression:
        stages.append((DECOMPRESS_COMMANDS[compression][0], decompress_argv(compression)))
    stages.append(('tar', tar_extract_argv(directory)))
    return feed(path, stages, identity)


def decompress_to(path, target, identity):
    """Decompress ``path`` into the new file ``target`` (created here, owned by ``identity``, 0600); ``{sha256, size}``.

    An uncompressed ``path`` is copied (``cat``): the file read and hashed is still the one the manifest names.
    """
    compression = compression_of(path)
    argv = decompress_argv(compression) or ['cat']
    directory, name = os.path.split(target)
    dfd = _files.open_dir(directory)
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, 'O_CLOEXEC', 0), 0o600, dir_fd=dfd)
    finally:
        os.close(dfd)
    try:
        os.fchown(fd, identity[0], identity[1])
        return feed(path, [(argv[0], argv)], identity, stdout=fd)
    finally:
        os.close(fd)
