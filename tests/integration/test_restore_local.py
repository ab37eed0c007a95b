# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pitr_restore on a cluster made by hand with initdb (pg_ctl, options on its command line), no lab needed: a drill
to a time in a throwaway instance, a disaster restore to just before a DELETE, and a disaster restore that fails
after the outage began and puts the safety snapshot back.

The cluster archives with the collection's archiver and gets its base backup from the dump runner, as on a real host.
The modules run through ansible (connection local), as root, as they do on a host. Needs root and PostgreSQL 15.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import types

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import config as runner_config
from tests.integration.ansible_cli import host_results, run_module
from tests.integration.test_dump_runner_local import DEBIAN_PY, PG_BIN, Cluster, cluster_base, free_port, install_program

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: runs initdb and postgres as user postgres'),
    pytest.mark.skipif(not os.path.exists(os.path.join(PG_BIN, 'pg_verifybackup')), reason='PostgreSQL 15 binaries missing'),
    pytest.mark.skipif(not all(shutil.which(tool) for tool in ('zstd', 'runuser', 'tar')), reason='zstd/runuser/tar missing'),
]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORY = 'all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: /usr/bin/python3\n'


@pytest.fixture(scope='module')
def archived(tmp_path_factory):
    """A cluster archiving WAL with dbfleet-wal-archive, with one base backup made by the runner."""
    base = cluster_base('dbfleet-restore-local-')
    archive = os.path.join(base, 'wal-archive')
    os.mkdir(archive, 0o750)
    shutil.chown(archive, 'postgres', 'postgres')
    archiver = install_program(os.path.join(base, 'dbfleet-wal-archive'), DEBIAN_PY, 'dbfleet-wal-archive')
    with open(os.path.join(base, 'wal-archive.json'), 'w', encoding='utf-8') as handle:
        json.dump({'archive_dir': archive}, handle)
    port = free_port()
    cluster = Cluster(base, port=port, options="-c archive_mode=on -c wal_level=replica -c archive_command='%s %s --config %s "
                                               "%%p %%f'" % (DEBIAN_PY, archiver, os.path.join(base, 'wal-archive.json')))
    try:
        cluster.init()
        with open(os.path.join(cluster.data, 'pg_hba.conf'), 'a', encoding='utf-8') as handle:
            handle.write('local replication all trust\n')
        cluster.start()
        cluster.psql('CREATE DATABASE app_prod')
        cluster.psql("CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, md5(g::text) "
                     "FROM generate_series(1, 2000) g", db='app_prod')
        runner = install_program(os.path.join(base, 'dbfleet-pg-dump'), DEBIAN_PY)
        cfg = runner_config.build_config('bb', os.path.join(base, 'basebackups'), kind='basebackup', pg_bin=PG_BIN,
                                         connection={'host': base, 'port': port, 'user': 'postgres'},
                                         lock_file=os.path.join(base, 'bb.lock'), state_dir=os.path.join(base, 'bb-state'),
                                         log_file=os.path.join(base, 'bb.log'))
        assert runner_config.validate_config(cfg) == []
        with open(os.path.join(base, 'bb.json'), 'w', encoding='utf-8') as handle:
            json.dump(cfg, handle)
        subprocess.run(['runuser', '-u', 'postgres', '--', DEBIAN_PY, runner, '--config', os.path.join(base, 'bb.json'),
                        '--quiet'], check=True)
        inventory = tmp_path_factory.mktemp('inventory') / 'hosts.yml'
        inventory.write_text(INVENTORY)
        cluster.archive = archive
        cluster.handle = types.SimpleNamespace(inventory=str(inventory), repo=REPO)
        cluster.args = dict(basebackup_dir=os.path.join(base, 'basebackups'), wal_archive=archive, login_unix_socket=base,
                            login_port=port, restore_root=os.path.join(base, 'restore'), config_dir=os.path.join(base, 'etc'),
                            program_path=os.path.join(base, 'bin', 'dbfleet-wal-restore'),
                            restart=dict(method='pg_ctl', run_as='postgres', argv=[os.path.join(PG_BIN, 'pg_ctl'), 'restart',
                                                                                   '-D', cluster.data, '-m', 'fast', '-w']))
        for directory in ('restore', 'etc', 'bin'):  # root's, as /srv, /etc/dbfleet and /opt/dbfleet/bin are
            os.makedirs(os.path.join(base, directory), 0o755)
            os.chown(os.path.join(base, directory), 0, 0)
        yield cluster
    finally:
        cluster.discard()


def restore(cluster, *options, **args):
    run = run_module(cluster.handle, 'localhost', 'dbfleet.postgresql.pitr_restore', dict(cluster.args, **args), *options)
    return host_results(run)['localhost']


def clock(cluster):
    return cluster.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")


def test_a_drill_to_a_time_restores_exactly_what_was_committed_before_it(archived):
    archived.psql('CREATE TABLE marks (id int PRIMARY KEY); INSERT INTO marks SELECT generate_series(1, 10)', db='app_prod')
    target = clock(archived)
    time.sleep(1.1)
    archived.psql('INSERT INTO marks SELECT generate_series(11, 15)', db='app_prod')
    result = restore(archived, target={"time": target}, verify={"databases": ["app_prod"]})
    assert not result.get('failed'), result.get('msg')
    assert result['verification']['databases']['app_prod']['tables']['public.marks']['rows'] == 10
    assert result['reached']['promoted'] and result['rpo_seconds'] == 0 and result['instance']['removed']
    assert os.listdir(archived.args['restore_root']) == []
    assert os.listdir(os.path.dirname(archived.args['program_path'])) == []  # a drill leaves no program behind


def test_a_disaster_restore_of_a_hand_made_cluster_brings_back_what_a_delete_took(archived):
    time.sleep(1.1)
    target = clock(archived)
    time.sleep(1.1)
    archived.psql('DELETE FROM items WHERE id > 10', db='app_prod')
    started = archived.psql('SELECT pg_postmaster_start_time()')
    refused = restore(archived, mode='disaster', target={'time': target})
    assert refused.get('failed') and 'Refused' in refused['msg'] and archived.psql('SELECT pg_postmaster_start_time()') == started
    plan = restore(archived, '--check', mode='disaster', target={'time': target})
    assert not plan.get('failed') and plan['authorization_required'] == refused['authorization_required'], plan.get('msg')
    assert archived.psql('SELECT count(*) FROM items', db='app_prod') == '10'  # the plan changed nothing
    result = restore(archived, mode='disaster', target={'time': target}, authorization=refused['authorization_required'])
    assert not result.get('failed'), result.get('msg')
    assert archived.psql('SELECT count(*) FROM items', db='app_prod') == '2000'
    assert os.path.isdir(result['snapshot']) and result['snapshot'].startswith(archived.data + '-before-restore-')
    assert any('recovery stopping before' in line for line in result['evidence']), result['evidence']
    assert archived.psql('SHOW restore_command') == ''  # the recovery settings are reset after the promotion
    assert archived.psql('SHOW port') == str(archived.port)  # started with its own options again (postmaster.opts)
    shutil.rmtree(result['snapshot'])


def test_a_disaster_restore_that_fails_after_the_stop_puts_the_snapshot_back(archived):
    archived.psql('INSERT INTO items SELECT g, md5(g::text) FROM generate_series(2001, 2100) g', db='app_prod')
    result = restore(archived, mode='disaster', target={'xid': '4000000000'}, timeout=120,
                     authorization='disaster:%s' % os.uname()[1])
    assert result.get('failed') and 'Put back' in result['msg'], result.get('msg')
    assert archived.psql('SELECT count(*) FROM items', db='app_prod') == '2100'  # the data directory as it was, running
    failed = [name for name in os.listdir(os.path.dirname(archived.data)) if '-failed-restore-' in name]
    assert len(failed) == 1 and not [name for name in os.listdir(os.path.dirname(archived.data)) if '-before-restore-' in name]
    shutil.rmtree(os.path.join(os.path.dirname(archived.data), failed[0]))
