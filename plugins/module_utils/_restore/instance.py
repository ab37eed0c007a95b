# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Throwaway PostgreSQL instances for drills: a restored copy, or a fresh cluster a dump is restored into.

An instance lives in its own directory (``RESTORE_ROOT/NAME``, root-owned), with the data directory and a socket
directory only its OS user can enter. It listens on nothing but that socket, on a spare port, never archives WAL
(``archive_mode=off``: a drill must not write into production's archive), never streams from anyone, and runs
with ``fsync=off`` (a throwaway copy that crashes is thrown away). Its settings are given on the server's command
line, where they win over anything the restored ``postgresql.auto.conf`` says. The postmaster is started directly
(no shell, no pg_ctl) as the OS user, its output in ``postgresql.log`` beside the data directory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import shutil
import signal
import socket
import subprocess
import time

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._archive import _as
from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore.targets import conf_lines

EVIDENCE_PHRASES = ('starting point-in-time recovery', 'starting archive recovery', 'recovery stopping',
                    'consistent recovery state reached', 'redo done at', 'last completed transaction',
                    'pausing at the end of recovery', 'recovery has paused', 'selected new timeline ID',
                    'archive recovery complete', 'database system is ready', 'FATAL', 'PANIC',
                    'recovery ended before configured recovery target', 'restored log file', 'dbfleet-wal-restore:')
FIRST_SPARE_PORT = 55432


class InstanceError(Exception):
    """An instance that did not come up or go away as it should; the message names its log."""


def spare_port(first=FIRST_SPARE_PORT, taken=()):
    """A port nothing listens on at 127.0.0.1 and no socket file in /run/postgresql or /tmp uses."""
    for port in range(first, first + 200):
        if port in taken or any(os.path.exists('%s/.s.PGSQL.%d' % (d, port)) for d in ('/run/postgresql', '/tmp')):
            continue
        with socket.socket() as probe:
            try:
                probe.bind(('127.0.0.1', port))
            except OSError:
                continue
        return port
    raise InstanceError('no spare port from %d to %d' % (first, first + 199))


def instance_settings(port, directory, control=None, extra=()):
    """``[(name, value)]`` of a throwaway instance in ``directory`` on ``port``; ``control``: pg_controldata's minimums."""
    settings = [
        ('port', str(port)), ('listen_addresses', ''), ('unix_socket_directories', os.path.join(directory, 'socket')),
        ('unix_socket_permissions', '0700'), ('hba_file', os.path.join(directory, 'pg_hba.conf')),
        ('ident_file', os.path.join(directory, 'pg_ident.conf')), ('archive_mode', 'off'), ('archive_command', ''),
        ('archive_library', ''), ('primary_conninfo', ''), ('primary_slot_name', ''), ('hot_standby', 'on'),
        ('ssl', 'off'), ('fsync', 'off'), ('synchronous_commit', 'off'), ('full_page_writes', 'off'),
        ('logging_collector', 'off'), ('log_destination', 'stderr'), ('lc_messages', 'C'),
        ('log_line_prefix', '%m [%p] '), ('cluster_name', 'dbfleet-restore'), ('max_wal_size', '256MB'),
    ]
    for name, value in sorted((control or {}).items()):
        settings.append((name, str(value)))
    return settings + list(extra)


def postmaster_state(data_directory):
    """``(pid, status)`` from ``postmaster.pid`` (status ``starting``, ``ready``, ``standby``, ``stopping``) or (None, None)."""
    try:
        text = _files.read_regular(os.path.join(data_directory, 'postmaster.pid'), 4096)
    except (OSError, _files.UnsafePath):
        return None, None
    lines = (text or b'').decode('ascii', 'replace').splitlines()
    try:
        pid = int(lines[0])
    except (ValueError, IndexError):
        return None, None
    return pid, lines[7].strip() if len(lines) > 7 else 'starting'


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def evidence(text, limit=40):
    """The lines of a server log that say how recovery went."""
    return [line for line in text.splitlines() if any(phrase in line for phrase in EVIDENCE_PHRASES)
            and 'restored log file' not in line][-limit:]


class Instance:
    """One throwaway instance: ``root/name`` with ``data``, ``socket``, its config and ``postgresql.log``."""

    def __init__(self, root, name, identity, bin_dir, port):
        self.root, self.name, self.identity, self.bin_dir, self.port = root, name, identity, bin_dir, port
        self.directory = os.path.join(root, name)
        self.data = os.path.join(self.directory, 'data')
        self.socket_dir = os.path.join(self.directory, 'socket')
        self.log = os.path.join(self.directory, 'postgresql.log')
        self.proc = None
        self.created = False

    def connection(self, user, dbname='postgres'):
        """Where the instance's socket is, as ``_postgres.connection_settings`` gives it."""
        return dict(host=self.socket_dir, port=self.port, user=user, dbname=dbname, sslmode=None)

    def prepare(self):
        """Create the directories: the instance's own (root, 0755), data and socket (the OS user's, 0700)."""
        uid, gid = self.identity
        _files.ensure_dir(self.root, 0, 0, 0o755)
        if _files.dir_state(self.directory)[0]:
            raise InstanceError('%s exists already: a previous drill kept it (keep: true)? Remove it or choose another '
                                'name' % self.directory)
        _files.ensure_dir(self.directory, 0, 0, 0o755)
        self.created = True
        _files.ensure_dir(self.data, uid, gid, 0o700)
        _files.ensure_dir(self.socket_dir, uid, gid, 0o700)

    def initdb(self, superuser):
        """A fresh, empty cluster in ``data`` (for a dump to be restored into)."""
        argv = [os.path.join(self.bin_dir, 'initdb'), '-D', self.data, '-U', superuser, '--auth=trust', '-E', 'UTF8',
                '--locale=C', '--no-sync']
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd='/', check=False, timeout=600,
                              env=_env(), **_as(self.identity))
        if proc.returncode != 0:
            raise InstanceError('initdb of the throwaway instance %s failed: %s' % (self.data, proc.stderr.decode(
                'utf-8', 'replace').strip()[-1000:]))

    def write_config(self, settings):
        """Its postgresql.conf (for whoever looks at a kept instance), pg_hba.conf (trust on its private socket)."""
        uid, gid = self.identity
        header = 'throwaway instance written by dbfleet.postgresql (the same settings are on its command line)'
        _files.write_file(os.path.join(self.directory, 'postgresql.conf'), conf_lines(settings, header).encode('utf-8'),
                          0, gid, 0o640)
        hba = '# only the instance\'s own OS user can reach its socket directory (0700)\nlocal all all trust\n'
        _files.write_file(os.path.join(self.directory, 'pg_hba.conf'), hba.encode('utf-8'), 0, gid, 0o640)
        _files.write_file(os.path.join(self.directory, 'pg_ident.conf'), b'', 0, gid, 0o640)
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o640)
        try:
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)

    def start(self, settings):
        """Start the postmaster (no shell): ``postgres -D data -c config_file=... -c NAME=VALUE ...``."""
        argv = [os.path.join(self.bin_dir, 'postgres'), '-D', self.data,
                '-c', 'config_file=%s' % os.path.join(self.directory, 'postgresql.conf')]
        for name, value in settings:
            argv += ['-c', '%s=%s' % (name, value)]
        logfd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logfd, stderr=logfd, cwd=self.data,  # pylint: disable=consider-using-with
                                         close_fds=True, start_new_session=True, env=_env(), **_as(self.identity))
        finally:
            os.close(logfd)

    def wait_started(self, timeout):
        """Wait until the server accepts connections (``ready``, or ``standby`` while it replays); InstanceError if it dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise InstanceError('the throwaway instance in %s stopped (exit %s) while starting: %s' % (
                    self.data, self.proc.returncode, ' | '.join(evidence(self.log_text())[-5:]) or 'see %s' % self.log))
            _pid, status = postmaster_state(self.data)
            if status in ('ready', 'standby'):
                return status
            time.sleep(0.1)
        raise InstanceError('the throwaway instance in %s did not accept connections within %d seconds; see %s'
                            % (self.data, timeout, self.log))

    def running(self):
        if self.proc is not None:
            return self.proc.poll() is None
        pid, _status = postmaster_state(self.data)
        return bool(pid) and alive(pid)

    def log_text(self):
        try:
            return (_files.read_regular(self.log) or b'').decode('utf-8', 'replace')
        except (OSError, _files.UnsafePath):
            return ''

    def stop(self, timeout=60):
        """Fast shutdown (SIGINT), immediate (SIGQUIT) after ``timeout`` seconds, then SIGKILL."""
        pid = self.proc.pid if self.proc is not None else postmaster_state(self.data)[0]
        if not pid or not alive(pid):
            return
        for signum, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10), (signal.SIGKILL, 10)):
            try:
                os.kill(pid, signum)
            except OSError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    return
                if self.proc is None and not alive(pid):
                    return
                time.sleep(0.1)

    def remove(self):
        """Stop it and remove its whole directory (only one this object made: never a kept one found in the way)."""
        if not self.created:
            return
        self.stop()
        if os.path.isdir(self.directory) and not os.path.islink(self.directory):
            shutil.rmtree(self.directory)


def _env():
    return {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL': 'C', 'LANG': 'C'}
