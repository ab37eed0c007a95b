# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host-side dump runner against a real, throwaway PostgreSQL 15 cluster.

The cluster is created by the fixture below (initdb as user postgres in a temp
dir, fsync off): trust on its unix socket, where most tests connect as the
superuser ``postgres``, and scram-sha-256 on 127.0.0.1 (a free port), where
the least-privilege role ``dbf_backup`` (pg_read_all_data, REPLICATION, a
random password) connects with a passfile, and so does ``dbf_plain`` (LOGIN
only, no pg_read_all_data: it cannot read role passwords).  The runner runs as a subprocess,
as root, under the venv's Python and under Debian's ``/usr/bin/python3`` (what
DB hosts use), installed the way the pg_dump_schedule module installs it: the
one file ``_runner.program.build_program`` makes, written with ``write_atomic``.
tests/integration/test_basebackup_runner_local.py reuses the cluster helpers for base backups.

Needs root (initdb/pg_ctl via runuser, tmpfs mounts), PostgreSQL 15 binaries,
zstd, lz4, gzip; skipped otherwise.
"""

from __future__ import annotations

import atexit
import datetime
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import config as runner_config
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import manifest as runner_manifest
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import naming
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.fsutil import write_atomic
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.program import build_program
from ansible_collections.dbfleet.postgresql.plugins.modules import file_stat

PG_BIN = '/usr/lib/postgresql/15/bin'
PORT = 55432
VENV_PY = sys.executable
DEBIAN_PY = '/usr/bin/python3'


def install_program(path, interpreter, program='dbfleet-pg-dump'):
    """A host-side program installed as pg_dump_schedule installs it: the builder's bytes, root-owned 0755, atomically."""
    write_atomic(path, build_program(program, interpreter), 0o755, 0, 0)
    return path


_PROGRAMS = tempfile.mkdtemp(prefix='dbfleet-programs-')
atexit.register(shutil.rmtree, _PROGRAMS, True)
RUNNER = install_program(os.path.join(_PROGRAMS, 'dbfleet-pg-dump'), VENV_PY)  # run as `python RUNNER ...` by most tests

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: runs initdb as postgres and mounts tmpfs'),
    pytest.mark.skipif(not os.path.exists(os.path.join(PG_BIN, 'initdb')), reason='PostgreSQL 15 server binaries missing'),
    pytest.mark.skipif(not all(shutil.which(tool) for tool in ('zstd', 'lz4', 'gzip', 'runuser')), reason='zstd/lz4/gzip/runuser missing'),
]


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

HBA = """# written by the dbfleet runner tests
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
"""


class Cluster:
    """A throwaway PostgreSQL 15 cluster: trust on the unix socket in ``base``, scram on 127.0.0.1:``port`` if ``tcp``."""

    def __init__(self, base, port=PORT, tcp=False, options=''):
        self.base = base
        self.data = os.path.join(base, 'data')
        self.sockdir = base
        self.port = port
        self.tcp = tcp
        self.options = options

    def as_postgres(self, *argv, **kwargs):
        return subprocess.run(['runuser', '-u', 'postgres', '--'] + list(argv), check=True, capture_output=True, text=True, **kwargs)

    def init(self):
        self.as_postgres(os.path.join(PG_BIN, 'initdb'), '-D', self.data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8',
                         '--locale=C', '--no-sync')
        with open(os.path.join(self.data, 'pg_hba.conf'), 'w', encoding='utf-8') as handle:
            handle.write(HBA)

    def start(self):
        listen = '127.0.0.1' if self.tcp else ''
        self.as_postgres(os.path.join(PG_BIN, 'pg_ctl'), '-D', self.data, '-l', os.path.join(self.base, 'server.log'), '-w',
                         '-o', "-p %d -k %s -c listen_addresses='%s' -c fsync=off -c full_page_writes=off %s"
                         % (self.port, self.sockdir, listen, self.options), 'start')

    def stop(self):
        self.as_postgres(os.path.join(PG_BIN, 'pg_ctl'), '-D', self.data, '-m', 'fast', '-w', 'stop')

    def discard(self):
        """Stop the server if it runs and remove everything under ``base``."""
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)

    def psql(self, sql, db='postgres'):
        proc = subprocess.run([os.path.join(PG_BIN, 'psql'), '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', self.sockdir,
                               '-p', str(self.port), '-U', 'postgres', '-d', db, '-c', sql],
                              capture_output=True, text=True, check=True)
        return proc.stdout.strip()

    def env(self):
        return dict(os.environ, PGHOST=self.sockdir, PGPORT=str(self.port), PGUSER='postgres')

    def add_login_role(self, name, attributes='', member_of='pg_read_all_data'):
        """A LOGIN role with a fresh random password (in ``member_of`` unless None); returns the password."""
        password = 'pw-%s' % secrets.token_hex(12)
        in_role = ' IN ROLE %s' % member_of if member_of else ''
        self.psql("CREATE ROLE %s LOGIN %s PASSWORD '%s'%s" % (name, attributes, password, in_role))
        return password

    def passfile(self, directory, user, password):
        """A libpq passfile (0600) for ``user`` on 127.0.0.1:port, any database (replication included)."""
        path = os.path.join(str(directory), 'pgpass-%s' % user)
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write('127.0.0.1:%d:*:%s:%s\n' % (self.port, user, password))
        os.chmod(path, 0o600)
        return path


def cluster_base(prefix):
    base = tempfile.mkdtemp(prefix=prefix, dir='/tmp')
    postgres = pwd.getpwnam('postgres')
    os.chmod(base, 0o755)
    os.chown(base, postgres.pw_uid, postgres.pw_gid)
    return base


@pytest.fixture(scope='module')
def pg():
    base = cluster_base('dbfleet-runner-pg-')
    cluster = Cluster(base, port=free_port(), tcp=True)
    try:
        cluster.init()
        cluster.start()
        cluster.backup_password = cluster.add_login_role('dbf_backup', 'REPLICATION')
        cluster.plain_password = cluster.add_login_role('dbf_plain', member_of=None)
        cluster.psql('CREATE ROLE app_owner LOGIN')
        cluster.psql('CREATE DATABASE app_prod OWNER app_owner')
        cluster.psql("CREATE TABLE items (id int PRIMARY KEY, name text, payload text);"
                     "INSERT INTO items SELECT g, 'item ' || g, repeat(md5(g::text), 4) FROM generate_series(1, 5000) g;"
                     "CREATE INDEX ON items (name);", db='app_prod')
        yield cluster
    finally:
        cluster.discard()


@pytest.fixture(scope='module')
def installed_runner(pg):
    """The runner as pg_dump_schedule installs it (for Debian's Python, as on a DB host)."""
    return install_program(os.path.join(pg.base, 'dbfleet-pg-dump'), DEBIAN_PY)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def moto():
    binary = os.path.join(os.path.dirname(sys.executable), 'moto_server')
    if not os.path.exists(binary):
        pytest.skip('moto_server not installed next to %s' % sys.executable)
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([binary, '-H', '127.0.0.1', '-p', str(port)], stdout=log, stderr=log)
    url = 'http://127.0.0.1:%d' % port
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url + '/', timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError('moto_server did not start: %s' % log.read().decode(errors='replace'))
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def make_config(tmp_path, pg, name='t', **overrides):
    cfg = {
        'name': name, 'databases': ['app_prod'], 'exclude_databases': [], 'format': 'custom', 'jobs': 1,
        'compression': 'zstd', 'compression_level': None, 'dest': str(tmp_path / 'backups'),
        'retention_days': 14, 'keep_min': 3, 'globals': False,
        'connection': {'host': pg.sockdir, 'port': pg.port, 'user': 'postgres', 'dbname': 'postgres', 'passfile': None, 'sslmode': None},
        'pg_bin': PG_BIN, 'lock_file': str(tmp_path / 'state' / ('%s.lock' % name)), 'lock_wait': 0,
        'state_dir': str(tmp_path / 'state' / name), 'log_file': str(tmp_path / 'log' / ('pg_dump-%s.log' % name)), 's3': None,
    }
    cfg.update(overrides)
    assert runner_config.validate_config(cfg) == []
    path = tmp_path / ('%s.json' % name)
    path.write_text(json.dumps(cfg, indent=2))
    os.chmod(str(path), 0o600)
    return str(path), cfg


def runner_cmd(config, python=VENV_PY, script=RUNNER, args=('--json', '--quiet')):
    return [python, script, '--config', config] + list(args)


def run_runner(config, python=VENV_PY, script=RUNNER, args=('--json', '--quiet'), env=None, timeout=120):
    proc = subprocess.run(runner_cmd(config, python, script, args), capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)
    summary = json.loads(proc.stdout) if proc.stdout.strip().startswith('{') else None
    return proc.returncode, summary, proc.stderr


def listing(dest):
    return sorted(os.listdir(dest)) if os.path.isdir(dest) else []


def dumps_in(dest, db=None):
    result = []
    for name in listing(dest):
        parsed = naming.parse_artifact_name(name)
        if parsed and parsed['kind'] == 'dump' and (db is None or parsed['db'] == db):
            result.append(name)
    return result


def partials_in(dest):
    return [name for name in listing(dest) if '.partial-' in name]


def sha256_file(path):
    return subprocess.run(['sha256sum', path], capture_output=True, text=True, check=True).stdout.split()[0]


def read_manifest(dest, db, stamp):
    with open(os.path.join(dest, naming.manifest_name(db, stamp)), encoding='utf-8') as handle:
        return json.load(handle)


def restore_list(path):
    """``pg_restore --list`` of a dump, decompressing .zst/.lz4 through a pipe; both exit statuses checked."""
    pg_restore = os.path.join(PG_BIN, 'pg_restore')
    decompress = {'.zst': ['zstd', '-dc', path], '.lz4': ['lz4', '-dc', path], '.gz': ['gzip', '-dc', path]}.get(os.path.splitext(path)[1])
    if decompress is None:
        return subprocess.run([pg_restore, '--list', path], capture_output=True, text=True, check=True).stdout
    # the whole stream decompresses cleanly (frame checksums included) ...
    subprocess.run([decompress[0], '-t', path] if decompress[0] != 'gzip' else ['gzip', '-t', path], check=True, capture_output=True)
    # ... and pg_restore reads the archive from the pipe.  --list stops after the TOC, so
    # the decompressor may die of SIGPIPE; that is the only non-zero status accepted.
    first = subprocess.Popen(decompress, stdout=subprocess.PIPE)
    second = subprocess.run([pg_restore, '--list'], stdin=first.stdout, capture_output=True, text=True, check=False)
    first.stdout.close()
    assert first.wait() in (0, -signal.SIGPIPE)
    assert second.returncode == 0, second.stderr
    return second.stdout


def assert_failed_cleanly(dest, db, summary, rc, words):
    assert rc == 1, summary
    assert summary['status'] == 'failed'
    failed = [item for item in summary['artifacts'] if item['db'] == db]
    assert failed and failed[0]['status'] == 'failed'
    assert any(word in failed[0]['error'] for word in words), failed[0]['error']
    assert failed[0]['path'] is None and failed[0]['sha256'] is None
    on_disk = read_manifest(dest, db, failed[0]['stamp'])
    assert on_disk['status'] == 'failed' and on_disk['error'] == failed[0]['error']
    assert not [name for name in dumps_in(dest, db) if failed[0]['stamp'] in name], 'a failed run left a dump-looking file'
    assert partials_in(dest) == []
    return failed[0]


def wrapper_bin(tmp_path, pg_dump_script):
    """A pg_bin directory whose pg_dump is a shell wrapper (psql/pg_dumpall are the real ones)."""
    directory = tmp_path / 'pgbin'
    directory.mkdir()
    for tool in ('psql', 'pg_dumpall', 'pg_restore'):
        os.symlink(os.path.join(PG_BIN, tool), str(directory / tool))
    script = directory / 'pg_dump'
    script.write_text('#!/bin/sh\nREAL=%s\ncase "$1" in --version) exec "$REAL" "$@";; esac\n%s\n'
                      % (os.path.join(PG_BIN, 'pg_dump'), pg_dump_script))
    os.chmod(str(script), 0o755)
    return str(directory)


# --------------------------------------------------------------------------
# good dumps
# --------------------------------------------------------------------------

@pytest.mark.parametrize('interpreter', ['venv', 'debian-installed'])
def test_good_dump_is_restorable_and_hash_matches(tmp_path, pg, installed_runner, interpreter):
    python, script = (VENV_PY, RUNNER) if interpreter == 'venv' else (DEBIAN_PY, installed_runner)
    config, cfg = make_config(tmp_path, pg, globals=True)
    rc, summary, stderr = run_runner(config, python, script)
    assert rc == 0, (summary, stderr)
    assert summary['status'] == 'ok' and summary['errors'] == [] and summary['name'] == 't'
    dest = cfg['dest']
    assert stat_mode(dest) == 0o750
    by_db = {item['db']: item for item in summary['artifacts']}
    assert set(by_db) == {'app_prod', 'globals'}

    dump = by_db['app_prod']
    assert dump['path'] == os.path.join(dest, 'app_prod-%s.dump.zst' % dump['stamp'])
    assert (dump['format'], dump['compression'], dump['compression_by'], dump['compression_level']) == ('custom', 'zstd', 'external', 2)
    assert dump['exit_status'] == {'pg_dump': 0, 'zstd': 0}
    assert dump['sha256'] == sha256_file(dump['path'])
    assert dump['size'] == os.path.getsize(dump['path'])
    assert dump['pg_dump_version'].startswith('15.') and dump['server_version'].startswith('15.')
    assert dump['db_size_bytes'] > 0 and dump['runner_version'] == runner_manifest.RUNNER_VERSION
    assert dump['host'] == socket.gethostname() and dump['schedule'] == 't'
    assert read_manifest(dest, 'app_prod', dump['stamp']) == dump
    assert stat_mode(dump['path']) == 0o640
    toc = restore_list(dump['path'])
    assert 'TABLE DATA public items' in toc
    restored = 'restored_%s' % interpreter.replace('-', '_')
    pg.psql('CREATE DATABASE %s' % restored)
    unzstd = subprocess.Popen(['zstd', '-dc', dump['path']], stdout=subprocess.PIPE)
    subprocess.run([os.path.join(PG_BIN, 'pg_restore'), '--no-owner', '-d', restored], stdin=unzstd.stdout, env=pg.env(),
                   check=True, capture_output=True)
    unzstd.stdout.close()
    assert unzstd.wait() == 0
    assert pg.psql('SELECT count(*), sum(length(payload)) FROM items', db=restored) == pg.psql(
        'SELECT count(*), sum(length(payload)) FROM items', db='app_prod')
    pg.psql('DROP DATABASE %s' % restored)

    glob = by_db['globals']
    assert glob['path'] == os.path.join(dest, 'globals-%s.sql.zst' % glob['stamp'])
    assert glob['sha256'] == sha256_file(glob['path'])
    sql = subprocess.run(['zstd', '-dc', glob['path']], capture_output=True, text=True, check=True).stdout
    assert 'CREATE ROLE app_owner' in sql
    # dumped as the superuser: role passwords (as SCRAM verifiers) are included, and the manifest says so
    assert glob['role_passwords'] is True and glob['notes'] == []
    assert "PASSWORD 'SCRAM-SHA-256$" in sql and '--no-role-passwords' not in glob['pipeline']
    assert sorted(listing(dest)) == sorted([os.path.basename(dump['path']), os.path.basename(glob['path']),
                                            naming.manifest_name('app_prod', dump['stamp']),
                                            naming.manifest_name('globals', glob['stamp'])])
    with open(os.path.join(cfg['state_dir'], 'last-run.json'), encoding='utf-8') as handle:
        assert json.load(handle) == summary
    with open(cfg['log_file'], encoding='utf-8') as handle:
        log = handle.read()
    assert 'run ok' in log and dump['sha256'] in log


def stat_mode(path):
    return os.stat(path).st_mode & 0o777


@pytest.mark.parametrize('fmt,compression,suffix,actual,by', [
    ('custom', 'gzip', '.dump', 'gzip', 'pg_dump'),
    ('custom', 'lz4', '.dump.lz4', 'lz4', 'external'),
    ('custom', 'none', '.dump', 'none', 'none'),
    ('plain', 'gzip', '.sql.gz', 'gzip', 'external'),
    ('plain', 'zstd', '.sql.zst', 'zstd', 'external'),
    ('directory', 'zstd', '.dir', 'gzip', 'pg_dump'),
])
def test_formats_and_compression(tmp_path, pg, fmt, compression, suffix, actual, by):
    config, cfg = make_config(tmp_path, pg, format=fmt, compression=compression, jobs=2 if fmt == 'directory' else 1)
    rc, summary, stderr = run_runner(config)
    assert rc == 0, (summary, stderr)
    dump = summary['artifacts'][0]
    assert dump['path'].endswith(suffix) and (dump['compression'], dump['compression_by']) == (actual, by)
    assert dump['requested_compression'] == compression
    if fmt == 'plain':
        tool = {'gzip': 'gzip', 'zstd': 'zstd'}[compression]
        text = subprocess.run([tool, '-dc', dump['path']], capture_output=True, text=True, check=True).stdout
        assert 'CREATE TABLE public.items' in text
        assert dump['sha256'] == sha256_file(dump['path'])
    elif fmt == 'directory':
        assert 'TABLE DATA public items' in restore_list(dump['path'])
        assert stat_mode(dump['path']) == 0o750
        lines = []
        for name, info in dump['files'].items():
            assert info['sha256'] == sha256_file(os.path.join(dump['path'], name))
            assert stat_mode(os.path.join(dump['path'], name)) == 0o640
            lines.append('%s  %s\n' % (info['sha256'], name))
        assert dump['sha256'] == hashlib.sha256(''.join(sorted(lines, key=lambda line: line[66:])).encode()).hexdigest()
        assert dump['size'] == sum(info['size'] for info in dump['files'].values())
        assert file_stat._dir_stats(dump['path'], True) == (dump['size'], dump['sha256'])  # file_stat agrees
        assert any(name.endswith('.dat.gz') for name in dump['files'])  # pg_dump 15's native gzip, recorded as such
        assert 'zstd needs pg_dump 16' in dump['compression_note']
    else:
        assert 'TABLE DATA public items' in restore_list(dump['path'])
        assert dump['sha256'] == sha256_file(dump['path'])
        if compression == 'gzip':
            head = subprocess.run([os.path.join(PG_BIN, 'pg_restore'), '--list', dump['path']], capture_output=True, text=True,
                                  check=True).stdout
            assert 'Compression: 1' in head  # compressed once, by pg_dump itself


def test_all_databases_minus_excluded(tmp_path, pg):
    config, cfg = make_config(tmp_path, pg, databases='all', exclude_databases=['postgres'])
    rc, summary, stderr = run_runner(config)
    assert rc == 0, (summary, stderr)
    dbs = {item['db'] for item in summary['artifacts']}
    assert 'app_prod' in dbs
    assert not dbs & {'postgres', 'template0', 'template1'}


def test_databases_all_names_every_database_it_leaves_out_and_never_alters_a_name(tmp_path, pg):
    """A template, a database refusing connections, a name with a newline: not dumped, each named with the reason.

    "app_prod\\n" must not become a second "app_prod" (dumped twice under one stamp, the good manifest
    overwritten as failed): names discovered on the server are used exactly as they are, or refused.
    """
    pg.psql('CREATE DATABASE noconn')
    pg.psql('ALTER DATABASE noconn ALLOW_CONNECTIONS false')
    pg.psql('CREATE DATABASE "app_prod\n"')
    pg.psql('CREATE DATABASE "tab\there"')
    try:
        config, cfg = make_config(tmp_path, pg, databases='all', exclude_databases=['postgres'])
        rc, summary, stderr = run_runner(config)
        assert rc == 0, (summary, stderr)
        reasons = dict((item['db'], item['reason']) for item in summary['not_dumped'])
        assert {'template0', 'template1', 'noconn', 'app_prod\n', 'tab\there', 'postgres'} <= set(reasons)
        assert 'template' in reasons['template1'] and 'template' in reasons['template0']
        assert 'ALLOW_CONNECTIONS' in reasons['noconn'] and 'ALLOW_CONNECTIONS' in reasons['template0']
        assert 'control character' in reasons['app_prod\n'] and 'control character' in reasons['tab\there']
        assert 'exclude_databases' in reasons['postgres']
        for db in ('noconn', 'app_prod\n', 'tab\there'):
            assert any(repr(db) in text for text in summary['warnings']), (db, summary['warnings'])
        # Excluded on purpose, or a template: named in not_dumped and the log, but no warning every night.
        assert not any(name in text for text in summary['warnings'] for name in ("'postgres'", 'template0', 'template1'))
        with open(cfg['log_file'], encoding='utf-8') as handle:
            log = handle.read()
        assert "'app_prod\\n'" in log and "'noconn'" in log
        # app_prod is dumped once, good, and its manifest says so
        mine = [item for item in summary['artifacts'] if item['db'].startswith('app_prod')]
        assert [item['db'] for item in mine] == ['app_prod'] and mine[0]['status'] == 'ok'
        assert read_manifest(cfg['dest'], 'app_prod', mine[0]['stamp'])['status'] == 'ok'
        assert sha256_file(mine[0]['path']) == mine[0]['sha256']
        assert not [name for name in listing(cfg['dest']) if '\n' in name or '\t' in name]
        with open(os.path.join(cfg['state_dir'], 'last-run.json'), encoding='utf-8') as handle:
            assert json.load(handle)['not_dumped'] == summary['not_dumped']
        # the dry run says the same
        rc, report, _stderr = run_runner(config, args=('--dry-run', '--json'))
        assert rc == 0 and report['not_dumped'] == summary['not_dumped']
    finally:
        for db in ('noconn', 'app_prod\n', 'tab\there'):
            pg.psql('DROP DATABASE "%s"' % db)


# --------------------------------------------------------------------------
# least privilege: non-superuser roles, a password only in a passfile
# --------------------------------------------------------------------------

# Runs the runner as __main__ with subprocess.Popen wrapped, so every argv and
# environment the runner builds for a child process is recorded (JSON lines).
EXEC_RECORDER = """
import json, os, runpy, subprocess, sys
LOG = os.environ.pop('DBFLEET_TEST_EXEC_LOG')
_real_init = subprocess.Popen.__init__
def _recording_init(self, args, *rest, **kwargs):
    argv = [str(item) for item in args] if isinstance(args, (list, tuple)) else [str(args)]
    env = kwargs.get('env')
    with open(LOG, 'a', encoding='utf-8') as handle:
        handle.write(json.dumps({'argv': argv, 'env': dict(os.environ if env is None else env)}) + '\\n')
    _real_init(self, args, *rest, **kwargs)
subprocess.Popen.__init__ = _recording_init
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def run_recorded(tmp_path, config, args=('--json', '--quiet'), env=None):
    """Run the runner with every child argv/env recorded; returns (rc, summary, stderr, execs)."""
    recorder = tmp_path / 'exec_recorder.py'
    recorder.write_text(EXEC_RECORDER)
    exec_log = tmp_path / ('exec-%s.jsonl' % secrets.token_hex(4))
    env = dict(env or os.environ, DBFLEET_TEST_EXEC_LOG=str(exec_log))
    proc = subprocess.run([VENV_PY, str(recorder), RUNNER, '--config', config] + list(args), capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    summary = json.loads(proc.stdout) if proc.stdout.strip().startswith('{') else None
    execs = [json.loads(line) for line in exec_log.read_text().splitlines()] if exec_log.exists() else []
    return proc.returncode, summary, proc.stderr, execs


class ProcWatch(threading.Thread):
    """Scans every process's cmdline and environment in /proc for a secret while a run goes on (best effort)."""

    def __init__(self, secret):
        super().__init__(daemon=True)
        self.secret = secret.encode()
        self.hits = []
        self.scans = 0
        self.done = threading.Event()

    def run(self):
        own = str(os.getpid())
        while not self.done.is_set():
            for pid in os.listdir('/proc'):
                if not pid.isdigit() or pid == own:
                    continue
                for what in ('cmdline', 'environ'):
                    try:
                        with open('/proc/%s/%s' % (pid, what), 'rb') as handle:
                            data = handle.read()
                    except OSError:
                        continue
                    if self.secret in data:
                        self.hits.append((pid, what, data.replace(b'\0', b' ')[:200]))
            self.scans += 1
            time.sleep(0.002)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join(timeout=10)


def test_globals_as_least_privilege_role_over_tcp_with_passfile(tmp_path, pg):
    """dbf_backup is no superuser, but pg_read_all_data lets it read pg_authid: globals include role passwords.

    It connects over TCP to 127.0.0.1, where pg_hba.conf demands scram-sha-256: the run can only
    succeed with the password from the passfile.  A wrong PGPASSWORD in the caller's environment
    would win over the passfile in libpq, so it also proves the runner drops inherited PG* variables.
    The password appears in no argv or environment the runner builds, nor in any process's
    cmdline/environ seen while it runs, nor in the log, summary, manifests or dumps.
    """
    password = pg.backup_password
    passfile = pg.passfile(tmp_path, 'dbf_backup', password)
    conn = {'host': '127.0.0.1', 'port': pg.port, 'user': 'dbf_backup', 'dbname': 'postgres', 'passfile': passfile, 'sslmode': None}
    config, cfg = make_config(tmp_path, pg, globals=True, connection=conn)
    env = dict(os.environ, PGPASSWORD='wrong-inherited-password', PGUSER='postgres')
    with ProcWatch(password) as watch:
        rc, summary, stderr, execs = run_recorded(tmp_path, config, env=env)
    assert rc == 0, (summary, stderr)
    by_db = {item['db']: item for item in summary['artifacts']}
    glob, dump = by_db['globals'], by_db['app_prod']
    assert glob['status'] == 'ok' and glob['role_passwords'] is True and glob['notes'] == []
    assert '--no-role-passwords' not in glob['pipeline']
    sql = subprocess.run(['zstd', '-dc', glob['path']], capture_output=True, text=True, check=True).stdout
    assert 'CREATE ROLE dbf_backup' in sql and 'CREATE ROLE app_owner' in sql
    # the role passwords, as SCRAM verifiers (never the password itself, checked below)
    assert [line for line in sql.splitlines() if line.startswith('ALTER ROLE dbf_backup ') and "PASSWORD 'SCRAM-SHA-256$" in line]
    assert dump['status'] == 'ok' and 'TABLE DATA public items' in restore_list(dump['path'])  # pg_read_all_data suffices
    assert 'role_passwords' not in dump

    tools = {os.path.basename(item['argv'][0]): item for item in execs}
    assert {'psql', 'pg_dump', 'pg_dumpall', 'zstd'} <= set(tools)
    assert '--no-role-passwords' not in tools['pg_dumpall']['argv']
    for name in ('psql', 'pg_dump', 'pg_dumpall'):
        child_env = tools[name]['env']
        assert child_env['PGPASSFILE'] == passfile and child_env['PGHOST'] == '127.0.0.1' and child_env['PGUSER'] == 'dbf_backup'
        assert 'PGPASSWORD' not in child_env
    assert password not in json.dumps(execs)
    assert watch.scans > 0 and watch.hits == []
    with open(cfg['log_file'], encoding='utf-8') as handle:
        log = handle.read()
    assert 'role passwords not included' not in log
    texts = [log, json.dumps(summary), stderr, sql]
    paths = [os.path.join(cfg['dest'], name) for name in listing(cfg['dest']) if name.endswith('.manifest.json')]
    for path in paths + [os.path.join(cfg['state_dir'], 'last-run.json')]:
        with open(path, encoding='utf-8') as handle:
            texts.append(handle.read())
    assert not [text for text in texts if password in text]

    # the dry run shows the same globals command
    rc, report, _stderr = run_runner(config, args=('--dry-run', '--json'))
    assert rc == 0
    globals_item = [item for item in report['would_dump'] if item['kind'] == 'globals'][0]
    assert globals_item['role_passwords'] is True and '--no-role-passwords' not in globals_item['pipeline']
    assert runner_manifest.ROLE_PASSWORDS_NOTE not in globals_item['reason']

    # a wrong password in the passfile is a clear failure
    bad = pg.passfile(tmp_path / 'state', 'dbf_backup', 'not-the-password')
    bad_config, bad_cfg = make_config(tmp_path, pg, name='badpw', globals=True, connection=dict(conn, passfile=bad))
    rc, summary, _stderr = run_runner(bad_config)
    failed = assert_failed_cleanly(bad_cfg['dest'], 'app_prod', summary, rc, ['password authentication failed'])
    assert 'check connection.user and the passfile' in failed['error']


def test_globals_as_role_that_cannot_read_pg_authid(tmp_path, pg):
    """dbf_plain (LOGIN, no pg_read_all_data) cannot read pg_authid: globals come without role passwords, and say so."""
    password = pg.plain_password
    passfile = pg.passfile(tmp_path, 'dbf_plain', password)
    conn = {'host': '127.0.0.1', 'port': pg.port, 'user': 'dbf_plain', 'dbname': 'postgres', 'passfile': passfile, 'sslmode': None}
    config, cfg = make_config(tmp_path, pg, databases=['postgres'], globals=True, connection=conn)
    env = dict(os.environ, PGPASSWORD='wrong-inherited-password', PGUSER='postgres')
    rc, summary, stderr, execs = run_recorded(tmp_path, config, env=env)
    assert rc == 0, (summary, stderr)
    assert summary['status'] == 'ok' and summary['errors'] == []
    by_db = {item['db']: item for item in summary['artifacts']}
    assert set(by_db) == {'postgres', 'globals'}
    glob, dump = by_db['globals'], by_db['postgres']
    assert dump['status'] == 'ok' and 'role_passwords' not in dump
    assert glob['status'] == 'ok' and glob['role_passwords'] is False
    assert glob['notes'] == [runner_manifest.ROLE_PASSWORDS_NOTE]
    assert runner_manifest.ROLE_PASSWORDS_NOTE == ('role passwords not included: the backup role cannot read pg_authid '
                                                   '(grant it pg_read_all_data, or dump as a superuser)')
    assert read_manifest(cfg['dest'], 'globals', glob['stamp']) == glob
    assert '--no-role-passwords' in glob['pipeline']
    tools = {os.path.basename(item['argv'][0]): item for item in execs}
    assert '--no-role-passwords' in tools['pg_dumpall']['argv']
    assert tools['pg_dumpall']['env']['PGUSER'] == 'dbf_plain' and 'PGPASSWORD' not in tools['pg_dumpall']['env']
    sql = subprocess.run(['zstd', '-dc', glob['path']], capture_output=True, text=True, check=True).stdout
    assert 'CREATE ROLE dbf_plain' in sql and 'CREATE ROLE dbf_backup' in sql and 'CREATE ROLE app_owner' in sql
    assert 'SCRAM-SHA-256' not in sql
    with open(cfg['log_file'], encoding='utf-8') as handle:
        log = handle.read()
    assert runner_manifest.ROLE_PASSWORDS_NOTE in log
    assert password not in json.dumps(execs) and not [text for text in (log, json.dumps(summary), stderr, sql) if password in text]

    # the dry run says the same
    rc, report, _stderr = run_runner(config, args=('--dry-run', '--json'))
    assert rc == 0
    globals_item = [item for item in report['would_dump'] if item['kind'] == 'globals'][0]
    assert globals_item['role_passwords'] is False and '--no-role-passwords' in globals_item['pipeline']
    assert runner_manifest.ROLE_PASSWORDS_NOTE in globals_item['reason']


# --------------------------------------------------------------------------
# failures: nothing that looks like a backup, nothing partial, exit 1
# --------------------------------------------------------------------------

def test_wrong_database_name(tmp_path, pg):
    config, cfg = make_config(tmp_path, pg, databases=['app_prod', 'no_such_db'])
    rc, summary, _stderr = run_runner(config)
    failed = assert_failed_cleanly(cfg['dest'], 'no_such_db', summary, rc, ['does not exist'])
    assert failed['exit_status']['pg_dump'] != 0
    assert dumps_in(cfg['dest'], 'no_such_db') == []
    good = [item for item in summary['artifacts'] if item['db'] == 'app_prod'][0]
    assert good['status'] == 'ok' and os.path.exists(good['path'])
    assert any('no_such_db' in error for error in summary['errors'])
    with open(cfg['log_file'], encoding='utf-8') as handle:
        assert 'pg_dump: pg_dump: error:' in handle.read()  # the stage's stderr, captured to the log


def test_postgres_stopped(tmp_path, pg):
    config, cfg = make_config(tmp_path, pg, keep_min=1, retention_days=0)
    rc, summary, _stderr = run_runner(config)
    assert rc == 0
    good = summary['artifacts'][0]
    pg.stop()
    try:
        rc, summary, _stderr = run_runner(config)
        assert_failed_cleanly(cfg['dest'], 'app_prod', summary, rc, ['connection to server', 'No such file'])
        config_all, _cfg = make_config(tmp_path, pg, name='t_all', databases='all', dest=cfg['dest'])
        rc, summary, _stderr = run_runner(config_all)
        assert rc == 1 and summary['status'] == 'failed'
        assert any('cannot list databases' in error for error in summary['errors'])
    finally:
        pg.start()
    assert dumps_in(cfg['dest']) == [os.path.basename(good['path'])]  # retention did not touch the good one
    assert sha256_file(good['path']) == good['sha256']


def test_disk_full_never_leaves_a_backup_and_keeps_the_newest_good(tmp_path, pg):
    pg.psql('CREATE DATABASE tiny')
    pg.psql('CREATE TABLE t (id int, v text); INSERT INTO t SELECT g, g::text FROM generate_series(1, 50) g', db='tiny')
    mount = tmp_path / 'small'
    mount.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k,mode=0750', 'tmpfs', str(mount)], check=True)
    try:
        config, cfg = make_config(tmp_path, pg, databases=['tiny'], dest=str(mount), keep_min=1, retention_days=0)
        rc, summary, stderr = run_runner(config)
        assert rc == 0, (summary, stderr)
        first = summary['artifacts'][0]
        # ~300 kB of hex: compresses to far more than the 64 kB filesystem holds
        pg.psql('INSERT INTO t SELECT g, md5(random()::text) || md5(random()::text) FROM generate_series(1, 5000) g', db='tiny')
        for _attempt in range(3):
            rc, summary, _stderr = run_runner(config)
            failed = assert_failed_cleanly(str(mount), 'tiny', summary, rc, ['No space left on device'])
            assert 'filesystem is full' in failed['error']
            assert dumps_in(str(mount)) == [os.path.basename(first['path'])]
            assert sha256_file(first['path']) == first['sha256']
            assert summary['pruned'] == []
        pg.psql('DELETE FROM t WHERE id > 50 OR length(v) > 10', db='tiny')
        rc, summary, stderr = run_runner(config)
        assert rc == 0, (summary, stderr)
        newest = summary['artifacts'][0]
        # now that a newer good dump exists, retention (0 days, keep 1) removes the old one and the failed manifests
        assert dumps_in(str(mount)) == [os.path.basename(newest['path'])]
        assert listing(str(mount)) == sorted([os.path.basename(newest['path']), naming.manifest_name('tiny', newest['stamp'])])
        assert first['path'] in summary['pruned']
    finally:
        subprocess.run(['umount', str(mount)], check=False)
        if os.path.ismount(str(mount)):
            subprocess.run(['umount', '-l', str(mount)], check=False)


def test_failing_compressor_is_a_failed_dump(tmp_path, pg):
    fake = tmp_path / 'fakebin'
    fake.mkdir()
    (fake / 'zstd').write_text('#!/bin/sh\nhead -c 100 >/dev/null\necho "zstd: simulated write error" >&2\nexit 1\n')
    os.chmod(str(fake / 'zstd'), 0o755)
    config, cfg = make_config(tmp_path, pg)
    env = dict(os.environ, PATH='%s:/usr/bin:/bin' % fake)
    rc, summary, _stderr = run_runner(config, env=env)
    failed = assert_failed_cleanly(cfg['dest'], 'app_prod', summary, rc, ['zstd exited with status 1'])
    assert 'simulated write error' in failed['error']
    assert failed['exit_status']['zstd'] == 1


def test_pg_dump_failing_after_complete_output_is_a_failed_dump(tmp_path, pg):
    """The output is a complete archive, but pg_dump said it failed: that is not a backup."""
    pgbin = wrapper_bin(tmp_path, '"$REAL" "$@"\necho "pg_dump: error: simulated failure at the end" >&2\nexit 1')
    config, cfg = make_config(tmp_path, pg, pg_bin=pgbin)
    rc, summary, _stderr = run_runner(config)
    failed = assert_failed_cleanly(cfg['dest'], 'app_prod', summary, rc, ['simulated failure at the end'])
    assert failed['exit_status'] == {'pg_dump': 1, 'zstd': 0}


def test_sigterm_cleans_up(tmp_path, pg):
    pgbin = wrapper_bin(tmp_path, 'sleep 5\nexec "$REAL" "$@"')
    config, cfg = make_config(tmp_path, pg, pg_bin=pgbin)
    proc = subprocess.Popen(runner_cmd(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 15
    while not partials_in(cfg['dest']):
        assert time.monotonic() < deadline, 'the runner never started writing'
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _err = proc.communicate(timeout=30)
    summary = json.loads(out)
    failed = assert_failed_cleanly(cfg['dest'], 'app_prod', summary, proc.returncode, ['signal 15'])
    assert failed['status'] == 'failed'


def test_stale_partials_from_crashed_runs_are_removed(tmp_path, pg):
    dead = subprocess.Popen(['true'])
    dead.wait()
    dest = tmp_path / 'backups'
    dest.mkdir()
    stale_file = dest / ('.app_prod-20200101T000000Z.dump.zst.partial-%d' % dead.pid)
    stale_file.write_bytes(b'half a dump')
    stale_dir = dest / ('.app_prod-20200101T000000Z.dir.partial-%d' % dead.pid)
    stale_dir.mkdir()
    (stale_dir / 'toc.dat').write_bytes(b'x')
    foreign = dest / '.bashrc.partial-1'
    foreign.write_bytes(b'not ours')
    config, _cfg = make_config(tmp_path, pg)
    rc, summary, _stderr = run_runner(config)
    assert rc == 0, summary
    assert not stale_file.exists() and not stale_dir.exists()
    assert foreign.exists()


def test_bad_config_exits_2(tmp_path, pg):
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps({'name': 'x', 'dest': str(tmp_path / 'b'), 'keep_min': 0, 'connection': {'password': 'pw'}}))
    rc, summary, stderr = run_runner(str(path))
    assert rc == 2
    assert 'keep_min' in stderr and 'passfile' in stderr
    assert summary['status'] == 'failed' and len(summary['errors']) == 2
    assert not (tmp_path / 'b').exists()
    rc, _summary, stderr = run_runner(str(tmp_path / 'missing.json'))
    assert rc == 2 and 'cannot read config' in stderr


def test_version_flag():
    proc = subprocess.run([DEBIAN_PY, RUNNER, '--version'], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and runner_manifest.RUNNER_VERSION in proc.stdout


# --------------------------------------------------------------------------
# lock
# --------------------------------------------------------------------------

def test_two_runs_at_once_one_is_skipped(tmp_path, pg):
    pgbin = wrapper_bin(tmp_path, 'sleep 2\nexec "$REAL" "$@"')  # makes the overlap certain
    config, cfg = make_config(tmp_path, pg, pg_bin=pgbin)
    procs = [subprocess.Popen(runner_cmd(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _attempt in range(2)]
    results = [(proc.wait(timeout=60), json.loads(proc.stdout.read())) for proc in procs]
    for proc in procs:
        proc.stdout.close()
        proc.stderr.close()
    codes = sorted(code for code, _summary in results)
    assert codes == [0, 75], results
    skipped = [summary for code, summary in results if code == 75][0]
    assert skipped['status'] == 'skipped' and skipped['artifacts'] == [] and 'holds' in skipped['errors'][0]
    produced = dumps_in(cfg['dest'])
    assert len(produced) == 1
    assert 'TABLE DATA public items' in restore_list(os.path.join(cfg['dest'], produced[0]))


def test_lock_wait(tmp_path, pg):
    config, cfg = make_config(tmp_path, pg)
    os.makedirs(os.path.dirname(cfg['lock_file']))
    holder = os.open(cfg['lock_file'], os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        rc, summary, _stderr = run_runner(config)
        assert rc == 75 and summary['status'] == 'skipped'
        assert not os.path.exists(cfg['dest'])  # touched nothing but its record:
        assert listing(cfg['state_dir']) == ['last-run.json']
        with open(os.path.join(cfg['state_dir'], 'last-run.json'), encoding='utf-8') as handle:
            recorded = json.load(handle)
        assert recorded == summary and 'holds' in recorded['errors'][0]
        _config, cfg = make_config(tmp_path, pg, lock_wait=20)
        proc = subprocess.Popen(runner_cmd(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert proc.poll() is None, 'the runner should be waiting for the lock'
    finally:
        os.close(holder)
    out, _err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and json.loads(out)['status'] == 'ok'


# --------------------------------------------------------------------------
# no run waits forever, every run leaves a record
# --------------------------------------------------------------------------

def last_run(cfg):
    with open(os.path.join(cfg['state_dir'], 'last-run.json'), encoding='utf-8') as handle:
        return json.load(handle)


def test_a_table_lock_makes_the_dump_fail_after_lock_timeout_instead_of_waiting(tmp_path, pg):
    locker = subprocess.Popen([os.path.join(PG_BIN, 'psql'), '-X', '-q', '-h', pg.sockdir, '-p', str(pg.port), '-U', 'postgres',
                               '-d', 'app_prod'], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        locker.stdin.write('BEGIN;\nLOCK TABLE items IN ACCESS EXCLUSIVE MODE;\n')
        locker.stdin.flush()
        deadline = time.monotonic() + 15
        while pg.psql("SELECT count(*) FROM pg_locks WHERE relation = 'items'::regclass AND mode = 'AccessExclusiveLock' "
                      "AND granted", db='app_prod') != '1':
            assert time.monotonic() < deadline, 'could not take the table lock'
            time.sleep(0.05)
        config, cfg = make_config(tmp_path, pg, lock_timeout=2)
        started = time.monotonic()
        rc, summary, _stderr = run_runner(config, timeout=40)
        assert time.monotonic() - started < 30
        failed = assert_failed_cleanly(cfg['dest'], 'app_prod', summary, rc, ['LOCK TABLE public.items'])
        assert '--lock-wait-timeout=2s' in failed['pipeline'] and 'lock_timeout' in failed['error']  # with a hint
    finally:
        locker.stdin.write('ROLLBACK;\n')
        locker.stdin.close()
        locker.wait(timeout=30)


def test_run_timeout_kills_the_run_and_records_it(tmp_path, pg):
    pids = tmp_path / 'pids'
    pgbin = wrapper_bin(tmp_path, 'sleep 60 &\necho $! > %s\nwait' % pids)
    config, cfg = make_config(tmp_path, pg, pg_bin=pgbin, run_timeout=2)
    started = time.monotonic()
    rc, summary, _stderr = run_runner(config, timeout=40)
    assert time.monotonic() - started < 20
    failed = assert_failed_cleanly(cfg['dest'], 'app_prod', summary, rc, ['timed out'])
    assert 'run_timeout' in failed['error']
    assert any('timed out' in error for error in summary['errors'])
    assert last_run(cfg) == summary and last_run(cfg)['status'] == 'failed'
    child = int(pids.read_text())
    time.sleep(0.2)
    assert not os.path.exists('/proc/%d' % child) or 'Z' in open('/proc/%d/stat' % child, encoding='utf-8').read().split()[2]


def test_failures_reach_stderr_even_with_quiet(tmp_path, pg):
    config, _cfg = make_config(tmp_path, pg, databases=['app_prod', 'no_such_db'])
    rc, _summary, stderr = run_runner(config, args=('--quiet',))
    assert rc == 1
    assert 'no_such_db' in stderr and 'does not exist' in stderr and 'failed' in stderr  # cron mails what the program prints
    config, _cfg = make_config(tmp_path, pg, name='fine')
    rc, _summary, stderr = run_runner(config, args=('--quiet',))
    assert rc == 0 and stderr == ''


def test_a_destination_made_read_only_mid_run_never_reports_a_dump_as_ok(pg, installed_runner):
    """pg_dump finishes, then dest becomes read-only: the rename fails, so does removing the partial.

    The artifact is failed (not "ok" with a path that does not exist), the state file says so, and the
    next run, with dest writable again, removes the partial and succeeds.  Runs as postgres (root ignores modes).
    """
    base = cluster_base('dbfleet-ro-dest-')
    try:
        dest = os.path.join(base, 'backups')
        pgbin = os.path.join(base, 'pgbin')
        os.mkdir(pgbin)
        for tool in ('psql', 'pg_dumpall'):
            os.symlink(os.path.join(PG_BIN, tool), os.path.join(pgbin, tool))
        with open(os.path.join(pgbin, 'pg_dump'), 'w', encoding='utf-8') as handle:
            handle.write('#!/bin/sh\ncase "$1" in --version) exec %s "$@";; esac\n%s "$@"\nstatus=$?\n'
                         'if [ -e %s/readonly ]; then chmod 0555 %s; fi\nexit $status\n'
                         % ((os.path.join(PG_BIN, 'pg_dump'),) * 2 + (base, dest)))
        os.chmod(os.path.join(pgbin, 'pg_dump'), 0o755)
        cfg = {'name': 'ro', 'databases': ['app_prod'], 'globals': False, 'dest': dest, 'pg_bin': pgbin,
               'connection': {'host': pg.sockdir, 'port': pg.port, 'user': 'postgres'},
               'lock_file': os.path.join(base, 'state', 'lock'), 'state_dir': os.path.join(base, 'state'),
               'log_file': os.path.join(base, 'log', 'ro.log')}
        config = os.path.join(base, 'ro.json')
        with open(config, 'w', encoding='utf-8') as handle:
            json.dump(cfg, handle)
        subprocess.run(['chown', '-R', 'postgres:postgres', base], check=True)
        with open(os.path.join(base, 'readonly'), 'w', encoding='utf-8'):
            pass
        argv = ['runuser', '-u', 'postgres', '--', DEBIAN_PY, installed_runner, '--config', config, '--json', '--quiet']
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        summary = json.loads(proc.stdout)
        assert proc.returncode == 1, summary
        [dump] = summary['artifacts']
        assert dump['status'] == 'failed' and dump['path'] is None and dump['sha256'] is None, dump
        assert 'Permission denied' in dump['error']
        assert summary['status'] == 'failed'
        with open(os.path.join(base, 'state', 'last-run.json'), encoding='utf-8') as handle:
            recorded = json.load(handle)
        assert recorded['status'] == 'failed' and [item['status'] for item in recorded['artifacts']] == ['failed']
        os.chmod(dest, 0o750)
        os.unlink(os.path.join(base, 'readonly'))
        assert dumps_in(dest) == []  # nothing that looks like a backup, and no manifest that says ok
        assert [name for name in listing(dest) if name.endswith('.manifest.json') and read_json(os.path.join(dest, name))['status'] == 'ok'] == []
        assert any('partial' in text for text in summary['warnings'] + summary['errors'])  # it says what it could not clean up
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout
        assert partials_in(dest) == [] and len(dumps_in(dest)) == 1
    finally:
        if os.path.isdir(os.path.join(base, 'backups')):
            os.chmod(os.path.join(base, 'backups'), 0o750)
        shutil.rmtree(base, ignore_errors=True)


def read_json(path):
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def test_a_run_killed_with_sigkill_is_reported_by_the_next_run(tmp_path, pg):
    pgbin = wrapper_bin(tmp_path, 'sleep 30\nexec "$REAL" "$@"')
    config, cfg = make_config(tmp_path, pg, pg_bin=pgbin)
    proc = subprocess.Popen(runner_cmd(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    marker = os.path.join(cfg['state_dir'], 'running.json')
    deadline = time.monotonic() + 15
    while not (os.path.exists(marker) and partials_in(cfg['dest'])):
        assert time.monotonic() < deadline, 'the runner never started'
        time.sleep(0.05)
    running = read_json(marker)
    assert running['pid'] == proc.pid and running['name'] == 't' and running['started_at']
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    config, cfg = make_config(tmp_path, pg)  # the same schedule, now with the real pg_dump
    rc, summary, stderr = run_runner(config)
    assert rc == 0, (summary, stderr)
    message = 'previous run (pid %d, started %s) died without finishing' % (proc.pid, running['started_at'])
    assert message in summary['warnings']
    assert summary['previous_run'] == dict(running, died=True)
    assert last_run(cfg)['previous_run'] == summary['previous_run']
    assert not os.path.exists(marker)
    assert partials_in(cfg['dest']) == []


# --------------------------------------------------------------------------
# dry run and retention
# --------------------------------------------------------------------------

def snapshot(path):
    result = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            info = os.lstat(full)
            result[full] = (info.st_size, info.st_mtime_ns, info.st_mode)
    return result


def fake_copy(dest, real, db, days_ago, status='ok', with_dump=True, with_manifest=True, mtime_days_ago=None, schedule=None):
    """Copy a real dump + manifest under an older stamp (the name is the age source); ``schedule`` None: the real one's."""
    stamp = naming.format_stamp(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago))
    name = naming.artifact_name(db, stamp, 'custom', 'zstd')
    paths = []
    if with_dump:
        shutil.copyfile(real['path'], os.path.join(dest, name))
        paths.append(os.path.join(dest, name))
    if with_manifest:
        manifest = dict(real, stamp=stamp, db=db, status=status, path=os.path.join(dest, name) if status == 'ok' else None,
                        schedule=schedule or real['schedule'])
        if status != 'ok':
            manifest.update(sha256=None, size=None, error='pg_dump exited with status 1: simulated')
        mpath = os.path.join(dest, naming.manifest_name(db, stamp))
        with open(mpath, 'w', encoding='utf-8') as handle:
            json.dump(manifest, handle)
        paths.append(mpath)
    if mtime_days_ago is not None:
        when = time.time() - mtime_days_ago * 86400
        for path in paths:
            os.utime(path, (when, when))
    return paths


def test_dry_run_writes_nothing(tmp_path, pg):
    config, cfg = make_config(tmp_path, pg, retention_days=7, keep_min=1)
    rc, summary, _stderr = run_runner(config)
    assert rc == 0
    old = fake_copy(cfg['dest'], summary['artifacts'][0], 'app_prod', 30, schedule='dry')  # retention prunes its own schedule's
    dry_config, dry_cfg = make_config(tmp_path, pg, name='dry', dest=cfg['dest'], retention_days=7, keep_min=1, globals=True)
    before = snapshot(str(tmp_path))
    rc, report, stderr = run_runner(dry_config, args=('--dry-run', '--json'))
    assert rc == 0, (report, stderr)
    assert report['dry_run'] is True
    assert [item['db'] for item in report['would_dump']] == ['app_prod', 'globals']
    assert report['would_dump'][0]['path'].startswith(os.path.join(cfg['dest'], 'app_prod-'))
    assert sorted(report['would_prune']) == sorted(old)
    proc = subprocess.run(runner_cmd(dry_config, args=('--dry-run',)), capture_output=True, text=True, check=True)
    assert 'would prune %s' % old[0] in proc.stdout
    assert snapshot(str(tmp_path)) == before
    for path in (dry_cfg['log_file'], dry_cfg['lock_file'], dry_cfg['state_dir']):
        assert not os.path.exists(path)


def test_retention_uses_the_stamp_and_keeps_keep_min_good(tmp_path, pg):
    """Fakes are copies of a real dump under older stamps; mtimes are set to mislead.

    The age comes from the stamp in the name: a 3-day-old dump whose mtime says 100 days
    is kept, a 20-day-old one whose mtime says now is deleted.
    """
    config, cfg = make_config(tmp_path, pg, retention_days=7, keep_min=4)
    rc, summary, _stderr = run_runner(config)
    assert rc == 0
    real = summary['artifacts'][0]
    dest = cfg['dest']
    keep = [real['path'], os.path.join(dest, naming.manifest_name('app_prod', real['stamp']))]
    keep += fake_copy(dest, real, 'app_prod', 3, mtime_days_ago=100)        # young by name
    keep += fake_copy(dest, real, 'app_prod', 10)                           # old, but one of the newest 4 good
    keep += fake_copy(dest, real, 'app_prod', 1, status='failed', with_dump=False)  # young failed manifest
    gone = fake_copy(dest, real, 'app_prod', 20, mtime_days_ago=0)          # old by name, fresh mtime
    gone += fake_copy(dest, real, 'app_prod', 30)
    gone += fake_copy(dest, real, 'app_prod', 45, status='failed', with_dump=False)  # old failed manifest
    gone += fake_copy(dest, real, 'app_prod', 50, with_manifest=False)     # dump without manifest
    gone += fake_copy(dest, real, 'app_prod', 60, with_dump=False)         # ok manifest, dump gone
    untouched = fake_copy(dest, real, 'other_db', 90)                       # not in this config
    notes = os.path.join(dest, 'notes.txt')
    with open(notes, 'w', encoding='utf-8') as handle:
        handle.write('operator notes\n')
    untouched.append(notes)

    rc, summary, stderr = run_runner(config)
    assert rc == 0, (summary, stderr)
    newest = summary['artifacts'][0]
    keep += [newest['path'], os.path.join(dest, naming.manifest_name('app_prod', newest['stamp']))]
    assert sorted(summary['pruned']) == sorted(gone)
    assert sorted(os.path.join(dest, name) for name in listing(dest)) == sorted(keep + untouched)


def test_two_schedules_sharing_a_directory_prune_only_their_own(tmp_path, pg):
    """nightly (every database, 14 days, keep 3) and hourly (app_prod, 0 days, keep 1) write into one directory."""
    dest = str(tmp_path / 'shared')
    nightly_config, _nightly = make_config(tmp_path, pg, name='nightly', databases='all', dest=dest, retention_days=14, keep_min=3,
                                           globals=True)
    hourly_config, _hourly = make_config(tmp_path, pg, name='hourly', databases=['app_prod'], dest=dest, retention_days=0, keep_min=1)
    rc, summary, stderr = run_runner(nightly_config)
    assert rc == 0, (summary, stderr)
    night = [item for item in summary['artifacts'] if item['db'] == 'app_prod'][0]
    nightly_own = [night['path'], os.path.join(dest, naming.manifest_name('app_prod', night['stamp']))]
    nightly_own += fake_copy(dest, night, 'app_prod', 20) + fake_copy(dest, night, 'app_prod', 30)
    hourly_made = []
    for _run in range(2):
        rc, summary, stderr = run_runner(hourly_config)
        assert rc == 0, (summary, stderr)
        [hour] = summary['artifacts']
        assert hour['schedule'] == 'hourly'
        hourly_made.append([hour['path'], os.path.join(dest, naming.manifest_name('app_prod', hour['stamp']))])
    # hourly pruned its own first dump, and nothing of nightly's
    assert sorted(summary['pruned']) == sorted(hourly_made[0])
    assert all(os.path.exists(path) for path in nightly_own + hourly_made[1])

    # nightly neither counts hourly's dumps as its good ones nor prunes them
    hourly_old = fake_copy(dest, hour, 'app_prod', 1) + fake_copy(dest, hour, 'app_prod', 2) + fake_copy(dest, hour, 'app_prod', 30)
    nightly_gone = fake_copy(dest, night, 'app_prod', 40)
    rc, summary, stderr = run_runner(nightly_config)
    assert rc == 0, (summary, stderr)
    # nightly's newest 3 good: tonight's, yesterday's real one, the 20-day one; the 30- and 40-day ones go
    nightly_gone += nightly_own[4:6]
    assert sorted(path for path in summary['pruned'] if 'app_prod' in path) == sorted(nightly_gone)
    assert all(os.path.exists(path) for path in nightly_own[:4] + hourly_made[1] + hourly_old)


def corrupt(path):
    """Flip one byte in the middle: same size, another SHA-256."""
    with open(path, 'r+b') as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_a_corrupted_dump_is_not_counted_as_good(tmp_path, pg):
    """keep_min 2: the newest earlier dump no longer matches its manifest, so the older intact one is kept instead."""
    config, cfg = make_config(tmp_path, pg, retention_days=0, keep_min=2)
    made = []
    for _run in range(2):
        rc, summary, stderr = run_runner(config)
        assert rc == 0, (summary, stderr)
        made.append(summary['artifacts'][0])
    corrupt(made[1]['path'])
    rc, summary, stderr = run_runner(config)
    assert rc == 0, (summary, stderr)
    newest = summary['artifacts'][0]
    assert os.path.exists(made[0]['path']) and sha256_file(made[0]['path']) == made[0]['sha256']  # the older intact one stays
    assert os.path.exists(newest['path'])
    assert made[1]['path'] in summary['pruned']  # not good, and older than 0 days
    [warning] = [text for text in summary['warnings'] if made[1]['stamp'] in text]
    assert 'does not match its manifest' in warning and made[1]['sha256'] in warning
    with open(cfg['log_file'], encoding='utf-8') as handle:
        assert 'does not match its manifest' in handle.read()
    # the dry run relies on the same check
    corrupt(newest['path'])
    rc, report, _stderr = run_runner(config, args=('--dry-run', '--json'))
    assert rc == 0 and newest['path'] in report['would_prune'] and made[0]['path'] not in report['would_prune']
    assert any('does not match its manifest' in text for text in report['warnings'])


def test_a_dump_stamped_in_the_future_is_never_one_of_the_newest_good(tmp_path, pg):
    config, cfg = make_config(tmp_path, pg, retention_days=0, keep_min=1)
    rc, summary, stderr = run_runner(config)
    assert rc == 0, (summary, stderr)
    first = summary['artifacts'][0]
    future = fake_copy(cfg['dest'], first, 'app_prod', -3)  # a wrong clock, or a planted file
    rc, summary, stderr = run_runner(config)
    assert rc == 0, (summary, stderr)
    newest = summary['artifacts'][0]
    assert os.path.exists(newest['path']), 'the dump just made was pruned in favour of one stamped in the future'
    assert first['path'] in summary['pruned'] and all(os.path.exists(path) for path in future)
    assert any('in the future' in text and os.path.basename(future[0]) in text for text in summary['warnings'])


# --------------------------------------------------------------------------
# S3 off-site copies (moto server on 127.0.0.1)
# --------------------------------------------------------------------------

SECRET = 'SECRET-never-in-logs-4f1c'


def s3_setup(tmp_path, moto, bucket):
    import boto3
    client = boto3.client('s3', endpoint_url=moto, region_name='us-east-1', aws_access_key_id='AKIDTEST', aws_secret_access_key=SECRET)
    try:
        client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={'Status': 'Enabled'})
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    creds = tmp_path / 's3.json'
    creds.write_text(json.dumps({'aws_access_key_id': 'AKIDTEST', 'aws_secret_access_key': SECRET}))
    os.chmod(str(creds), 0o600)
    return client, str(creds)


@pytest.mark.parametrize('interpreter', ['venv', 'debian-installed'])
def test_s3_upload_verified(tmp_path, pg, moto, installed_runner, interpreter):
    python, script = (VENV_PY, RUNNER) if interpreter == 'venv' else (DEBIAN_PY, installed_runner)
    client, creds = s3_setup(tmp_path, moto, 'dbfleet-offsite')
    s3 = {'bucket': 'dbfleet-offsite', 'prefix': 'db1/%s/' % interpreter, 'endpoint_url': moto, 'region': 'us-east-1',
          'credentials_file': creds}
    config, cfg = make_config(tmp_path, pg, s3=s3)
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('AWS_'))
    rc, summary, stderr = run_runner(config, python, script, env=env)
    assert rc == 0, (summary, stderr)
    dump = summary['artifacts'][0]
    offsite = dump['offsite']
    assert offsite['verified'] is True and offsite['error'] is None and offsite['multipart'] is False
    assert offsite['key'] == 'db1/%s/%s' % (interpreter, os.path.basename(dump['path']))
    assert offsite['version_id']
    head = client.head_object(Bucket='dbfleet-offsite', Key=offsite['key'])
    assert head['Metadata']['sha256'] == dump['sha256']
    body = client.get_object(Bucket='dbfleet-offsite', Key=offsite['key'])['Body'].read()
    assert hashlib.sha256(body).hexdigest() == dump['sha256']
    assert read_manifest(cfg['dest'], 'app_prod', dump['stamp'])['offsite'] == offsite
    with open(cfg['log_file'], encoding='utf-8') as handle:
        log = handle.read()
    assert SECRET not in log and SECRET not in json.dumps(summary) and SECRET not in stderr
    assert 'uploaded' in log


def test_s3_multipart_upload_compares_composite_checksums(tmp_path, pg, moto):
    pg.psql('CREATE DATABASE bigdb')
    pg.psql("CREATE TABLE big AS SELECT g, md5(g::text) || md5((g + 1)::text) AS s FROM generate_series(1, 120000) g", db='bigdb')
    client, creds = s3_setup(tmp_path, moto, 'dbfleet-offsite')
    s3 = {'bucket': 'dbfleet-offsite', 'prefix': 'multi/', 'endpoint_url': moto, 'region': 'us-east-1', 'credentials_file': creds,
          'part_size_mb': 5}
    config, cfg = make_config(tmp_path, pg, databases=['bigdb'], compression='none', s3=s3)
    rc, summary, stderr = run_runner(config)
    assert rc == 0, (summary, stderr)
    dump = summary['artifacts'][0]
    assert dump['size'] > 5 * 1024 * 1024
    assert dump['offsite']['multipart'] is True and dump['offsite']['verified'] is True
    head = client.head_object(Bucket='dbfleet-offsite', Key=dump['offsite']['key'])
    assert head['Metadata']['sha256'] == dump['sha256'] and head['ContentLength'] == dump['size']


def test_s3_failure_keeps_the_local_dump_but_fails_the_run(tmp_path, pg, moto):
    _client, creds = s3_setup(tmp_path, moto, 'dbfleet-offsite')
    s3 = {'bucket': 'no-such-bucket-here', 'prefix': '', 'endpoint_url': moto, 'region': 'us-east-1', 'credentials_file': creds}
    config, cfg = make_config(tmp_path, pg, s3=s3)
    rc, summary, _stderr = run_runner(config)
    assert rc == 1 and summary['status'] == 'failed'
    dump = summary['artifacts'][0]
    assert dump['status'] == 'ok' and os.path.exists(dump['path']) and sha256_file(dump['path']) == dump['sha256']
    assert dump['offsite']['verified'] is False and 'NoSuchBucket' in dump['offsite']['error']
    assert read_manifest(cfg['dest'], 'app_prod', dump['stamp'])['offsite']['verified'] is False
    assert any('the local dump is fine' in error for error in summary['errors'])
