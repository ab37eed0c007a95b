# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure parts of the restore code: TOC selection of a partial restore, tool command lines, stop/start of the
live server, a throwaway instance's settings, pg_controldata and base-backup file checks."""

from __future__ import annotations

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import basebackup, instance, live, logical

TOC = """;
; Archive created at 2026-12-01 22:45:36 UTC
;     dbname: app_prod
;
214; 1259 16386 TABLE public customers postgres
215; 1259 16395 TABLE public orders postgres
216; 1259 16400 TABLE sales leads app
3350; 0 16386 TABLE DATA public customers postgres
3351; 0 16395 TABLE DATA public orders postgres
3352; 0 16400 TABLE DATA sales leads app
3201; 2606 16394 CONSTRAINT public customers customers_email_key postgres
3203; 2606 16392 CONSTRAINT public customers customers_pkey postgres
3206; 2606 16401 CONSTRAINT public orders orders_pkey postgres
3204; 1259 16407 INDEX public orders_customer_id_idx postgres
3207; 2606 16402 FK CONSTRAINT public orders orders_customer_id_fkey postgres
3208; 2615 16380 SCHEMA - sales app
"""
INDEX_SQL = """--
-- Name: orders_customer_id_idx; Type: INDEX; Schema: public; Owner: postgres
--

CREATE INDEX orders_customer_id_idx ON public.orders USING btree (customer_id);
CREATE UNIQUE INDEX "Odd" ON "my schema".t2 USING btree (a);
"""


def test_toc_lines_are_parsed_with_multi_word_kinds():
    entries = logical.parse_toc(TOC)
    assert [(e['kind'], e['schema'], e['tag']) for e in entries][3] == ('TABLE DATA', 'public', 'customers')
    assert ('FK CONSTRAINT', 'public', 'orders orders_customer_id_fkey') in [(e['kind'], e['schema'], e['tag']) for e in entries]
    assert entries[-1]['kind'] == 'SCHEMA' and entries[-1]['tag'] == 'sales'


def test_a_table_comes_with_its_data_constraints_and_indexes_but_no_foreign_keys():
    entries = logical.parse_toc(TOC)
    indexes = logical.index_tables(INDEX_SQL)
    assert indexes == {('public', 'orders_customer_id_idx'): 'orders', ('my schema', 'Odd'): 't2'}
    lines = logical.select_entries(entries, tables=[('public', 'orders')], indexes=indexes)
    assert [line.split(';')[0] for line in lines] == ['215', '3351', '3206', '3204']
    schema = logical.select_entries(entries, schemas=['sales'])
    assert [line.split(';')[0] for line in schema] == ['216', '3352', '3208']
    with pytest.raises(ValueError, match='no table public.nope'):
        logical.select_entries(entries, tables=[('public', 'nope')])


def test_names_reach_tools_only_as_names():
    assert logical.dbname_conninfo("app'prod") == "dbname='app\\'prod'"
    assert logical.dbname_conninfo('host=evil') == "dbname='host=evil'"
    argv = logical.pg_restore_argv('/usr/lib/postgresql/15/bin', '/w/archive.dump', 'custom', 2, dbname='app_prod')
    assert argv == ['/usr/lib/postgresql/15/bin/pg_restore', '--no-owner', '--no-privileges', '--jobs=2', '--dbname',
                    "dbname='app_prod'", '/w/archive.dump']
    assert '--create' in logical.pg_restore_argv('/b', '/a', 'custom', 2, create=True)
    assert logical.pg_restore_argv('/b', '/a.sql', 'plain', 4, dbname='x')[0] == '/b/psql'
    for bad in ('Restore', 'a-b', 'x;drop', '', 'a' * 64):
        with pytest.raises(ValueError):
            logical.check_identifier(bad, 'into_schema')


def test_stop_and_start_the_way_the_host_does():
    debian = dict(method='pg_ctlcluster', argv=['pg_ctlcluster', '15', 'main', 'restart'], run_as='root')
    assert live.control_argv(debian, 'stop', '/d', None) == (['pg_ctlcluster', '15', 'main', 'stop'], 'root')
    unit = dict(method='systemd', argv=['systemctl', 'restart', 'postgresql-15.service'], run_as='root')
    assert live.control_argv(unit, 'start', '/d', None) == (['systemctl', 'start', 'postgresql-15.service'], 'root')
    pg_ctl = dict(method='pg_ctl', argv=['/usr/pgsql-15/bin/pg_ctl', 'restart', '-D', '/var/lib/pgsql/15/data'], run_as='postgres')
    assert live.control_argv(pg_ctl, 'stop', '/var/lib/pgsql/15/data', None)[0][:2] == ['/usr/pgsql-15/bin/pg_ctl', 'stop']
    start, user = live.control_argv(pg_ctl, 'start', '/var/lib/pgsql/15/data', None, log_file='/var/lib/pgsql/15/startup.log')
    assert start[1] == 'restart' and start[-2:] == ['-l', '/var/lib/pgsql/15/startup.log'] and user == 'postgres'
    assert live.control_argv({}, 'stop', '/d', '/usr/lib/postgresql/15/bin')[0][0] == '/usr/lib/postgresql/15/bin/pg_ctl'
    with pytest.raises(live.ControlError):
        live.control_argv({}, 'stop', '/d', None)


def test_configuration_is_carried_over(tmp_path):
    for name in ('postgresql.conf', 'pg_hba.conf', 'postgresql.auto.conf', 'postmaster.opts', 'PG_VERSION', 'extra.conf'):
        (tmp_path / name).write_text('x')
    for name in ('conf.d', 'base', 'pg_wal', 'log'):
        (tmp_path / name).mkdir()
    assert live.config_entries(str(tmp_path)) == ['conf.d', 'extra.conf', 'pg_hba.conf', 'postgresql.auto.conf',
                                                  'postgresql.conf', 'postmaster.opts']


def test_a_throwaway_instance_listens_on_nothing_and_never_archives():
    settings = dict(instance.instance_settings(55432, '/var/lib/dbfleet/restore/pitr-x', {'max_connections': 200},
                                               [('restore_command', 'x')]))
    assert settings['listen_addresses'] == '' and settings['archive_mode'] == 'off' and settings['archive_command'] == ''
    assert settings['unix_socket_directories'] == '/var/lib/dbfleet/restore/pitr-x/socket'
    assert settings['primary_conninfo'] == '' and settings['max_connections'] == '200' and settings['port'] == '55432'
    log = ('LOG:  restored log file "000000010000000000000003" from archive\n'
           'LOG:  recovery stopping before commit of transaction 727, time 2026-12-01 22:45:18.05+00\nLOG:  checkpoint\n')
    assert instance.evidence(log) == ['LOG:  recovery stopping before commit of transaction 727, time 2026-12-01 22:45:18.05+00']


def test_controldata_and_backup_files():
    text = 'pg_control version number:            1300\nmax_connections setting:              100\n' \
           'max_locks_per_xact setting:           64\nmax_wal_senders setting:              10\n'
    assert basebackup.parse_controldata(text) == dict(max_connections=100, max_locks_per_transaction=64, max_wal_senders=10)
    manifest = dict(path='/srv/basebackups/base-x.dir', files={'base.tar.zst': {}, 'pg_wal.tar': {}, 'backup_manifest': {}})
    assert basebackup.backup_files(manifest) == ('base.tar.zst', 'pg_wal.tar')
    with pytest.raises(basebackup.BackupError, match='tablespaces'):
        basebackup.backup_files(dict(manifest, files=dict(manifest['files'], **{'16385.tar': {}})))
    with pytest.raises(basebackup.BackupError, match='lacks'):
        basebackup.backup_files(dict(manifest, files={'base.tar.zst': {}}))
