# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_server_info's reading of a host without a server: layout and restart method (Debian, PGDG, initdb, systemd
from a cgroup line), the postmaster from postmaster.pid and /proc, and the facts from the query results."""

from __future__ import annotations

import os
import sys

import pytest

from ansible_collections.dbfleet.postgresql.plugins.modules import pg_server_info as psi

DEBIAN_CONF = '/etc/postgresql/15/main/postgresql.conf'
PGDG_DATA = '/var/lib/pgsql/15/data'


def server_settings(config_file=DEBIAN_CONF, data_directory='/var/lib/postgresql/15/main'):
    return dict(config_file=config_file, data_directory=data_directory)


# --- systemd unit from a cgroup ---------------------------------------------------------------------------------

@pytest.mark.parametrize('text,unit', [
    ('0::/system.slice/postgresql-15.service\n', 'postgresql-15.service'),
    ('0::/system.slice/system-postgresql.slice/postgresql@15-main.service\n', 'postgresql@15-main.service'),
    ('12:pids:/system.slice/postgresql-16.service\n1:name=systemd:/system.slice/postgresql-16.service\n',
     'postgresql-16.service'),
    ('0::/user.slice/user-0.slice/session-3.scope\n', None),
    ('0::/\n', None),
    ('0::/system.slice/postgresql-15.service/extra\n', None),
    ('', None),
])
def test_unit_from_cgroup(text, unit):
    assert psi.unit_from_cgroup(text) == unit


def test_no_unit_without_a_pid_or_without_systemctl(monkeypatch):
    assert psi.systemd_unit(None) is None and psi.systemd_unit(0) is None
    monkeypatch.setattr(psi.shutil, 'which', lambda name: None)
    assert psi.systemd_unit(os.getpid()) is None


# --- Debian's clusters ------------------------------------------------------------------------------------------

def test_debian_cluster_from_the_config_path():
    assert psi.debian_cluster(DEBIAN_CONF, True) == ('15', 'main')
    assert psi.debian_cluster('/etc/postgresql/16/reporting/postgresql.conf', True) == ('16', 'reporting')
    assert psi.debian_cluster(DEBIAN_CONF, False) is None, 'a Debian-looking path without pg_ctlcluster is not Debian'


@pytest.mark.parametrize('config_file', [PGDG_DATA + '/postgresql.conf', '/etc/postgresql/15/main/postgresql.conf.bak',
                                         '/etc/postgresql/15/postgresql.conf', '', None,
                                         '/etc/postgresql/15/main/../x/postgresql.conf.d'])
def test_not_debian_clusters(config_file):
    assert psi.debian_cluster(config_file, True) is None


def test_debian_cluster_looks_for_pg_ctlcluster_on_path(monkeypatch):
    monkeypatch.setattr(psi.shutil, 'which', lambda name: '/usr/bin/pg_ctlcluster' if name == 'pg_ctlcluster' else None)
    assert psi.debian_cluster(DEBIAN_CONF) == ('15', 'main')
    monkeypatch.setattr(psi.shutil, 'which', lambda name: None)
    assert psi.debian_cluster(DEBIAN_CONF) is None


# --- layout and restart -----------------------------------------------------------------------------------------

def test_debian_restarts_with_pg_ctlcluster_even_under_systemd():
    layout, restart = psi.restart_plan(server_settings(), '/usr/lib/postgresql/15/bin', ('15', 'main'),
                                       'postgresql@15-main.service')
    assert layout == 'debian'
    assert restart == dict(method='pg_ctlcluster', argv=['pg_ctlcluster', '15', 'main', 'restart'], run_as='root')


def test_pgdg_under_systemd_restarts_its_unit():
    layout, restart = psi.restart_plan(server_settings(PGDG_DATA + '/postgresql.conf', PGDG_DATA), '/usr/pgsql-15/bin',
                                       None, 'postgresql-15.service')
    assert layout == 'pgdg'
    assert restart == dict(method='systemd', argv=['systemctl', 'restart', 'postgresql-15.service'], run_as='root',
                           unit='postgresql-15.service')


def test_pgdg_without_systemd_restarts_with_its_own_pg_ctl():
    layout, restart = psi.restart_plan(server_settings(PGDG_DATA + '/postgresql.conf', PGDG_DATA), '/usr/pgsql-15/bin')
    assert layout == 'pgdg'
    assert restart == dict(method='pg_ctl', run_as='postgres',
                           argv=['/usr/pgsql-15/bin/pg_ctl', 'restart', '-D', PGDG_DATA, '-m', 'fast', '-w', '-t', '300'])


@pytest.mark.parametrize('bin_dir', ['/opt/pg16/bin', '/usr/pgsql-15/bin/', '/usr/pgsql-x/bin', '/usr/local/pgsql/bin'])
def test_anything_else_is_a_cluster_made_by_hand(bin_dir):
    layout, restart = psi.restart_plan(server_settings('/srv/pg/postgresql.conf', '/srv/pg'), bin_dir)
    assert layout == 'initdb' and restart['method'] == 'pg_ctl' and restart['argv'][:4] == [
        os.path.join(bin_dir, 'pg_ctl'), 'restart', '-D', '/srv/pg']


@pytest.mark.parametrize('bin_dir,data_directory', [(None, '/srv/pg'), ('/opt/pg/bin', None), (None, None)])
def test_no_restart_method_when_the_postmaster_is_not_found(bin_dir, data_directory):
    layout, restart = psi.restart_plan(server_settings('/srv/pg/postgresql.conf', data_directory), bin_dir)
    assert layout == 'initdb'
    assert (restart['method'], restart['argv'], restart['run_as']) == (None, None, None)
    assert 'connect as a superuser' in restart['reason']


# --- the postmaster ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('text,pid', [(b'4242\n/var/lib/postgresql/15/main\n1733000000\n5432\n', 4242), (b'77', 77),
                                      (b'', None), (None, None), (b'\n4242\n', None), (b'not a pid\n', None),
                                      (b'\xff\xfe\n', None)])
def test_pid_from_pidfile(text, pid):
    assert psi.pid_from_pidfile(text) == pid


def test_bin_dir_from_exe_of_a_replaced_binary():
    assert psi.bin_dir_from_exe('/usr/lib/postgresql/15/bin/postgres') == '/usr/lib/postgresql/15/bin'
    assert psi.bin_dir_from_exe('/usr/pgsql-15/bin/postgres (deleted)') == '/usr/pgsql-15/bin'


def test_postmaster_from_postmaster_pid_and_proc(tmp_path):
    (tmp_path / 'postmaster.pid').write_text('%d\n%s\n' % (os.getpid(), tmp_path))
    pid, bin_dir = psi.postmaster(str(tmp_path))
    assert pid == os.getpid()
    assert bin_dir == os.path.dirname(os.path.realpath('/proc/self/exe')) == os.path.dirname(os.path.realpath(sys.executable))


def test_postmaster_that_is_gone_has_a_pid_and_no_bin_dir(tmp_path):
    with open('/proc/sys/kernel/pid_max') as handle:
        beyond = int(handle.read()) + 1
    (tmp_path / 'postmaster.pid').write_text('%d\n' % beyond)
    assert psi.postmaster(str(tmp_path)) == (beyond, None)


def test_no_postmaster_without_a_usable_pidfile(tmp_path):
    assert psi.postmaster(None) == (None, None) and psi.postmaster('') == (None, None)
    assert psi.postmaster(str(tmp_path)) == (None, None)
    assert psi.postmaster(str(tmp_path / 'missing')) == (None, None)
    (tmp_path / 'postmaster.pid').write_text('')
    assert psi.postmaster(str(tmp_path)) == (None, None)


def test_a_pidfile_that_is_a_fifo_or_a_symlink_is_not_read(tmp_path):
    """Root reads it: a FIFO must not hang the module and a link must not point it elsewhere."""
    fifo_dir, link_dir = tmp_path / 'fifo', tmp_path / 'link'
    fifo_dir.mkdir()
    link_dir.mkdir()
    os.mkfifo(str(fifo_dir / 'postmaster.pid'))
    assert psi.postmaster(str(fifo_dir)) == (None, None)
    (tmp_path / 'elsewhere').write_text('%d\n' % os.getpid())
    os.symlink(str(tmp_path / 'elsewhere'), str(link_dir / 'postmaster.pid'))
    assert psi.postmaster(str(link_dir)) == (None, None)


# --- facts from the query results -------------------------------------------------------------------------------

def test_facts_from_results():
    first = dict(rows=[['15.10 (Debian 15.10-0+deb12u1)', 150010, False, 3600.5]])
    settings = dict(rows=[['data_directory', '/var/lib/postgresql/15/main'], ['wal_level', 'replica']])
    pending = dict(rows=[['shared_buffers']])
    databases = dict(rows=[['app_prod', True, False, 9000], ['postgres', True, False, 7000],
                           ['secret', True, False, None], ['template0', False, True, 7000]])
    facts = psi.facts_from_results(first, settings, pending, databases)
    assert (facts['version_num'], facts['major'], facts['in_recovery'], facts['uptime_seconds']) == (150010, 15, False, 3600.5)
    assert facts['settings']['data_directory'] == '/var/lib/postgresql/15/main'
    assert set(facts['settings']) == set(psi.SETTINGS) and facts['settings']['archive_library'] is None
    assert facts['pending_restart'] == ['shared_buffers']
    assert facts['databases'][2] == dict(name='secret', allow_connections=True, is_template=False, size=None)
    assert facts['total_db_bytes'] == 23000
    assert psi.facts_from_results(dict(rows=[['9.6.24', 90624, True, 1.0]]), dict(rows=[]), dict(rows=[]),
                                  dict(rows=[]))['major'] == 9
