# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The live server a disaster restore replaces: stopping and starting it the way its host does (Debian
``pg_ctlcluster``, its systemd unit, or ``pg_ctl -D`` as ``pg_server_info`` found it), and finding its log.

The stop/start command lines come from ``pg_server_info``'s ``restart`` (method and argv), never from a guess
about the layout: :func:`control_argv` only swaps the verb.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import tempfile
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._postgres import as_user
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore.instance import alive, postmaster_state

METHODS = ('pg_ctlcluster', 'systemd', 'pg_ctl')
TAIL_BYTES = 1 << 20
# What a restored data directory gets from the live one: its configuration (postgresql.conf, pg_hba.conf,
# conf.d, ...: a restore brings data back, not an old configuration) and postmaster.opts (how it was started).
CONFIG_NAMES = ('postgresql.conf', 'pg_hba.conf', 'pg_ident.conf', 'postgresql.auto.conf', 'postmaster.opts')


class ControlError(Exception):
    """The server could not be stopped or started; the message says what ran and what it said."""


def control_argv(restart, action, data_directory, bin_dir, timeout=300, log_file=None):
    """``(argv, run_as)`` to ``stop`` or ``start`` the server, from pg_server_info's ``restart`` dict.

    ``pg_ctlcluster VERSION CLUSTER restart`` becomes ``... stop``; ``systemctl restart UNIT`` becomes
    ``systemctl stop UNIT``. For ``pg_ctl`` (also the fallback without a method) stop is ``pg_ctl stop -m fast``
    and start is ``pg_ctl restart`` itself: on a stopped server it starts it with the options of its last start
    (``postmaster.opts``, carried over from the live data directory), with ``-l log_file`` when the server wrote its
    output to a file.
    """
    method = (restart or {}).get('method')
    argv = list((restart or {}).get('argv') or [])
    if method == 'pg_ctlcluster' and len(argv) >= 4:
        return argv[:3] + [action], 'root'
    if method == 'systemd' and len(argv) >= 3:
        return [argv[0], action] + argv[2:], 'root'
    pg_ctl = argv[0] if method == 'pg_ctl' and argv else os.path.join(bin_dir or '', 'pg_ctl')
    if not pg_ctl.startswith('/'):
        raise ControlError('the way to stop and start this server is unknown (no restart method and no bin_dir): '
                           'pass restart from dbfleet.postgresql.pg_server_info, or pg_bin')
    run_as = (restart or {}).get('run_as') or 'postgres'
    if action == 'stop':
        return [pg_ctl, 'stop', '-D', data_directory, '-m', 'fast', '-w', '-t', str(timeout)], run_as
    return [pg_ctl, 'restart', '-D', data_directory, '-w', '-t', str(timeout)] + (['-l', log_file] if log_file else []), run_as


def run_control(argv, user, what, timeout=600):
    """Run a stop/start command; ``(rc, words)``.

    Its output goes to a file, not a pipe: ``pg_ctl start`` without ``-l`` leaves the postmaster holding its stdout,
    and a pipe would then never reach end-of-file.
    """
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(as_user(argv, None if user == 'root' else user), stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=out, cwd='/', timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, '%s did not finish within %d seconds' % (what, timeout)
        except OSError as exc:
            return 127, 'cannot run %s: %s' % (argv[0], exc)
        out.seek(0)
        return proc.returncode, out.read(65536).decode('utf-8', 'replace').strip()[-2000:]


def wait_stopped(data_directory, timeout=120):
    """True once no postmaster runs on ``data_directory`` (its postmaster.pid gone or its pid dead)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, _status = postmaster_state(data_directory)
        if not pid or not alive(pid):
            return True
        time.sleep(0.2)
    return False


def stderr_log(pid):
    """The regular file a process writes its stderr to (``pg_ctl -l``, pg_ctlcluster's log), or None."""
    try:
        target = os.readlink('/proc/%d/fd/2' % pid)
    except OSError:
        return None
    return target if target.startswith('/') and os.path.isfile(target) else None


def collector_log(data_directory):
    """The log file the logging collector writes now (from ``current_logfiles``), or None."""
    try:
        text = (_files.read_regular(os.path.join(data_directory, 'current_logfiles'), 4096) or b'').decode('utf-8', 'replace')
    except (OSError, _files.UnsafePath):
        return None
    for line in text.splitlines():
        kind, _sep, path = line.partition(' ')
        if kind == 'stderr' and path:
            return path if path.startswith('/') else os.path.join(data_directory, path)
    return None


def log_positions(paths):
    """``{path: size}`` of the log files that exist, to read only what comes after."""
    positions = {}
    for path in paths:
        if path:
            try:
                positions[path] = os.stat(path).st_size
            except OSError:
                positions[path] = 0
    return positions


def read_after(positions):
    """What was written to each log since ``positions`` (at most TAIL_BYTES of each), as text."""
    texts = []
    for path, offset in positions.items():
        try:
            with _files.open_regular(path) as handle:
                size = os.fstat(handle.fileno()).st_size
                start = offset if offset <= size else 0  # rotated and truncated: read it from the start
                handle.seek(max(start, size - TAIL_BYTES))
                texts.append(handle.read().decode('utf-8', 'replace'))
        except (OSError, _files.UnsafePath):
            continue
    return '\n'.join(texts)


def config_entries(snapshot):
    """The top-level names in a live data directory that are configuration, carried into the restored one."""
    try:
        names = os.listdir(snapshot)
    except OSError:
        return []
    return sorted(name for name in names if name in CONFIG_NAMES or name == 'conf.d' or name.endswith('.conf'))
