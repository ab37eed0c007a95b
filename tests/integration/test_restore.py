# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restores on the fleet lab (issue 12, "Must show"): a drill to a time T has exactly the rows up to T and leaves the
primary untouched; a disaster restore refuses without authorization and, with it, brings the primary back to just
before a destructive DELETE (disruptive: DBFLEET_LAB_DISRUPTIVE=1); one table comes back from last night's dump into
a scratch schema beside the live one; a WAL segment missing from the archive aborts the pre-flight, naming it.

The module fixture makes what the restores need with the backup role itself (nightly_backup.yml on db-primary): WAL
archiving, a base backup in /srv/basebackups (the lab's own schedule) and a dump of app_prod by a schedule of its own
into /srv/restore-test/dumps (so other tests cleaning /srv/backups do not pull it away), removed afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from tests.integration.ansible_cli import host_results, run_module, run_playbook
from tests.integration.test_offsite import remove_every_version, s3_args

PRIMARY = 'db-primary'
DUMPS = '/srv/restore-test/dumps'
HOOK = '/srv/restore-test/maintenance-mode'
HOOK_LOG = '/srv/restore-test/maintenance.log'
SCHEDULE = {'name': 'restoretest', 'schedule': '0 0 3 * * *', 'databases': ['app_prod'], 'dest': DUMPS, 'globals': False}
HOOK_SCRIPT = """#!/bin/sh
# a maintenance switch for the tests: a flag file, and a log of every call
echo "$1" >> %s
case "$1" in on) touch /srv/restore-test/maintenance.flag ;; off) rm -f /srv/restore-test/maintenance.flag ;;
status) if [ -e /srv/restore-test/maintenance.flag ]; then echo on; else echo off; fi ;; esac
""" % HOOK_LOG
HOOKS = {'restore_maintenance_on': [HOOK, 'on'], 'restore_maintenance_off': [HOOK, 'off'],
         'restore_maintenance_status': [HOOK, 'status']}
FINGERPRINT = ("ls -la --time-style=+ /var/lib/postgresql/15; cd /etc/postgresql/15/main && find . -type f -exec sha256sum {} +"
               " | sort; sha256sum /var/lib/postgresql/15/main/postgresql.auto.conf; ls /srv/dbfleet-restore 2>/dev/null")


def now(lab, host=PRIMARY):
    """The server's clock, as a target time."""
    return lab.psql(host, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")


def fingerprint(lab, host=PRIMARY):
    """What a restore would change on the primary: its data directory's neighbours, PostgreSQL's config files, every
    setting, and the postmaster (a restart changes its start time)."""
    files = lab.exec(host, 'sh', '-c', FINGERPRINT, check=False).stdout
    settings = lab.psql(host, "SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_settings "
                              "WHERE name NOT IN ('transaction_read_only', 'application_name')")
    return dict(files=files, settings=settings, started=lab.psql(host, 'SELECT pg_postmaster_start_time()'),
                recovery=lab.psql(host, 'SELECT pg_is_in_recovery()'))


def module(lab, name, args, host=PRIMARY, timeout=600):
    run = run_module(lab, host, 'dbfleet.postgresql.%s' % name, args, timeout=timeout)
    return host_results(run)[host]


@pytest.fixture(scope='module')
def backed_up(fleet_lab):
    """WAL archiving, a fresh base backup and a dump of app_prod with a table the partial-restore test knows."""
    lab = fleet_lab
    lab.psql(PRIMARY, 'DROP TABLE IF EXISTS restore_partial_t; CREATE TABLE restore_partial_t (id int PRIMARY KEY, '
                      "v text NOT NULL); CREATE INDEX ON restore_partial_t (v); INSERT INTO restore_partial_t "
                      "SELECT g, md5(g::text) FROM generate_series(1, 1000) g", db='app_prod')
    lab.exec(PRIMARY, 'sh', '-c', 'mkdir -p /srv/restore-test && cat > %s && chmod 755 %s && rm -f %s /srv/restore-test/'
                                  'maintenance.flag' % (HOOK, HOOK, HOOK_LOG), input=HOOK_SCRIPT)
    run = run_playbook(lab, 'playbooks/nightly_backup.yml', '-l', PRIMARY, timeout=600,
                       extra_vars={'backup_run_now': True, 'backup_schedules': [SCHEDULE]})
    assert run.rc == 0, run.stdout[-3000:]
    # what the dump holds of restore_partial_t: nothing writes it between the dump and here
    reference = module(lab, 'restore_verify', {'databases': ['app_prod'], 'tables': ['public.restore_partial_t']})
    assert reference['databases']['app_prod']['tables']['public.restore_partial_t']['rows'] == 1000
    yield dict(lab=lab, partial_reference=reference)
    module(lab, 'pg_dump_schedule', dict(SCHEDULE, state='absent', dest=DUMPS))
    lab.exec(PRIMARY, 'rm', '-rf', DUMPS, check=False)
    lab.psql(PRIMARY, 'DROP TABLE IF EXISTS restore_partial_t, restore_drill_marks', db='app_prod')


def test_drill_to_time_t_has_exactly_the_rows_up_to_t_and_the_primary_is_untouched(backed_up):
    lab = backed_up['lab']
    lab.psql(PRIMARY, 'DROP TABLE IF EXISTS restore_drill_marks; CREATE TABLE restore_drill_marks (id int PRIMARY KEY, '
                      "at timestamptz NOT NULL DEFAULT clock_timestamp()); INSERT INTO restore_drill_marks (id) "
                      "SELECT generate_series(1, 100)", db='app_prod')
    target = now(lab)
    reference = module(lab, 'restore_verify', {'databases': ['app_prod']})  # the reference taken at T
    time.sleep(1.1)
    lab.psql(PRIMARY, 'INSERT INTO restore_drill_marks (id) SELECT generate_series(101, 150)', db='app_prod')
    before = fingerprint(lab)
    run = run_playbook(lab, 'playbooks/restore_drill.yml', timeout=900, extra_vars={
        'restore_target': {'time': target}, 'restore_reference': reference, 'restore_databases': ['app_prod'],
        'restore_dump_dir': DUMPS})
    assert run.rc == 0, run.stdout[-4000:]
    report = run.results('Put the drill')[PRIMARY]['ansible_facts']['restore_drill']['dbfleet_report']
    assert report['kind'] == 'restore_drill' and report['verdict'] == 'ok', report['problems']
    pitr = report['databases']['app_prod']['pitr']['checksums']
    marks = pitr['public.restore_drill_marks']
    assert marks['equal'] and marks['restored'] == marks['reference'] and marks['restored']['rows'] == 100
    assert all(entry['equal'] for entry in pitr.values()), pitr
    assert any('recovery stopping before commit' in line for line in report['pitr']['evidence']), report['pitr']
    assert report['rto_seconds'] > 0 and report['rpo_seconds'] == 0
    # the nightly dump is older than T: the table made after it is reported missing, its RPO is measured
    logical = report['databases']['app_prod']['logical']
    assert logical['rpo_seconds'] > 0 and 'public.customers' in logical['checksums']
    assert fingerprint(lab) == before


def test_disaster_restore_without_authorization_refuses_and_changes_nothing(backed_up):
    lab = backed_up['lab']
    before = fingerprint(lab)
    extra = dict(HOOKS, restore_databases=['app_prod'])
    run = run_playbook(lab, 'playbooks/disaster_restore.yml', '-l', PRIMARY, extra_vars=extra)
    assert run.rc != 0
    refused = run.results('Refuse without the explicit authorization')[PRIMARY]['msg']
    assert 'Nothing was done' in refused and 'restore_authorization=disaster:%s' % PRIMARY in refused
    wrong = run_playbook(lab, 'playbooks/disaster_restore.yml', '-l', PRIMARY,
                         extra_vars=dict(extra, restore_authorization='disaster:db-replica-1'))
    assert wrong.rc != 0 and 'Refused' in wrong.results('Refuse without the explicit authorization')[PRIMARY]['msg']
    assert fingerprint(lab) == before
    assert lab.exec(PRIMARY, 'test', '-e', HOOK_LOG, check=False).returncode != 0  # maintenance was never touched


def test_one_table_from_last_nights_dump_into_a_scratch_schema_beside_the_live_one(backed_up):
    lab = backed_up['lab']
    lab.psql(PRIMARY, 'DELETE FROM restore_partial_t WHERE id > 900', db='app_prod')  # "someone deleted rows"
    live = dict(databases=['app_prod'], tables=['public.restore_partial_t'])
    damaged = module(lab, 'restore_verify', live)['databases']['app_prod']['tables']['public.restore_partial_t']
    result = module(lab, 'dump_restore', {'database': 'app_prod', 'dump_dir': DUMPS, 'into': 'schema',
                                          'target_database': 'app_prod', 'tables': ['public.restore_partial_t'],
                                          'into_schema': 'restore_partial_x',
                                          'verify': {'reference': backed_up['partial_reference']}})
    try:
        assert not result.get('failed'), result.get('msg')
        compared = result['verification']['databases']['app_prod']
        assert result['verification']['verdict'] == 'verified' and compared['schema']['equal'], compared
        table = compared['tables']['public.restore_partial_t']
        assert table['equal'] and table['restored']['rows'] == 1000  # the dump's content, index and primary key too
        after = module(lab, 'restore_verify', live)['databases']['app_prod']['tables']['public.restore_partial_t']
        assert (after['rows'], after['sha256']) == (damaged['rows'], damaged['sha256']) == (900, damaged['sha256'])
        assert lab.psql(PRIMARY, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'restore_partial_x'", db='app_prod') == '2'
    finally:
        lab.psql(PRIMARY, 'DROP SCHEMA IF EXISTS restore_partial_x CASCADE', db='app_prod')


def test_a_logical_drill_from_the_bucket_fetches_the_dump_verified_and_restores_it(backed_up):
    """The off-site path: the newest dump of app_prod in the bucket (uploaded as the runner uploads it), then a drill
    with restore_dump_source s3 fetches it back verified against its manifest, restores it and removes the copy."""
    lab = backed_up['lab']
    client, prefix = lab.s3_client(), 'restore-test-%s/' % uuid.uuid4().hex[:8]
    dump = lab.exec(PRIMARY, 'sh', '-c', 'ls %s/app_prod-*.dump* | tail -1' % DUMPS).stdout.strip()
    manifest = json.loads(lab.exec(PRIMARY, 'cat', dump.split('.dump')[0] + '.manifest.json').stdout)
    try:
        up = module(lab, 's3_copy', s3_args(lab, direction='upload', path=dump, prefix=prefix))
        assert not up.get('failed') and up['verified'], up.get('msg')
        run = run_playbook(lab, 'playbooks/restore_drill.yml', '-l', PRIMARY, timeout=900, extra_vars={
            'restore_paths': ['logical'], 'restore_databases': ['app_prod'], 'restore_dump_dir': DUMPS,
            'restore_dump_source': 's3', 'restore_s3_prefix': prefix})
        assert run.rc == 0, run.stdout[-4000:]
        fetched = run.results('Fetch each dump from the bucket')[PRIMARY]['results'][0]
        assert fetched['verified'] and fetched['sha256'] == manifest['sha256'], fetched
        report = run.results('Put the drill')[PRIMARY]['ansible_facts']['restore_drill']['dbfleet_report']
        restored = report['databases']['app_prod']['logical']['checksums']['public.restore_partial_t']['restored']
        reference = backed_up['partial_reference']['databases']['app_prod']['tables']['public.restore_partial_t']
        assert (restored['rows'], restored['sha256']) == (reference['rows'], reference['sha256']), restored
        assert lab.exec(PRIMARY, 'test', '-e', '/srv/dbfleet-restore/offsite', check=False).returncode != 0
    finally:
        remove_every_version(client, lab.s3_bucket, prefix)


def test_a_logical_drill_on_the_backup_host_restores_its_shipped_copy(backed_up):
    """The other off-site path: ship_offsite.yml copies the newest dump to backup-box, which restores its copy into a
    throwaway instance of its own (restore_dump_source host), verified against the reference."""
    lab = backed_up['lab']
    root, backup_host = '/srv/restore-test-offsite', 'backup-box'
    try:
        shipped = run_playbook(lab, 'playbooks/ship_offsite.yml', '-l', '%s,%s' % (PRIMARY, backup_host), timeout=600,
                               extra_vars={'ship_offsite_backup_dirs': [DUMPS], 'ship_offsite_databases': ['app_prod'],
                                           'ship_offsite_kinds': ['database'], 'ship_offsite_root': root})
        assert shipped.rc == 0, shipped.stdout[-4000:]
        run = run_playbook(lab, 'playbooks/restore_drill.yml', '-l', PRIMARY, timeout=900, extra_vars={
            'restore_paths': ['logical'], 'restore_databases': ['app_prod'], 'restore_dump_source': 'host',
            'restore_dump_host': backup_host, 'restore_dump_host_dir': '%s/%s' % (root, PRIMARY)})
        assert run.rc == 0, run.stdout[-4000:]
        report = run.results('Put the drill')[PRIMARY]['ansible_facts']['restore_drill']['dbfleet_report']
        restored = report['databases']['app_prod']['logical']['checksums']['public.restore_partial_t']['restored']
        reference = backed_up['partial_reference']['databases']['app_prod']['tables']['public.restore_partial_t']
        assert (restored['rows'], restored['sha256']) == (reference['rows'], reference['sha256']), restored
        # the restore ran on the backup host, from its copy
        restore = run.results('Restore each database')[PRIMARY]['results'][0]
        assert restore['dump']['path'].startswith('%s/%s/app_prod-' % (root, PRIMARY)), restore['dump']
    finally:
        lab.exec(backup_host, 'rm', '-rf', root, check=False)


def test_a_wal_segment_missing_from_the_archive_aborts_before_any_outage_naming_it(backed_up):
    lab = backed_up['lab']
    newest = lab.exec(PRIMARY, 'sh', '-c', 'ls /srv/basebackups/base-*.manifest.json | tail -1').stdout.strip()
    manifest = json.loads(lab.exec(PRIMARY, 'cat', newest).stdout)
    end = manifest['end_wal_file']
    needed = '%s%08X' % (end[:16], int(end[16:], 16) + 1)  # the first segment after the base backup's own WAL
    archive = '/srv/wal-archive'
    later = '%s%08X' % (end[:16], int(end[16:], 16) + 2)
    for _attempt in range(150):  # a hole in the archive, not its unshipped tail: a later segment is archived too
        if lab.exec(PRIMARY, 'test', '-e', '%s/%s' % (archive, later), check=False).returncode == 0:
            break
        lab.psql(PRIMARY, 'CREATE TEMP TABLE t AS SELECT 1; SELECT pg_switch_wal()')
        time.sleep(0.2)
    before = fingerprint(lab)
    lab.exec(PRIMARY, 'mv', '%s/%s' % (archive, needed), '%s/.%s.hidden-by-test' % (archive, needed))
    try:
        # the hook that would freeze the site fails: should the pre-flight ever pass, nothing happens after it either
        run = run_playbook(lab, 'playbooks/disaster_restore.yml', '-l', PRIMARY, extra_vars=dict(
            HOOKS, restore_maintenance_on=['/bin/false'], restore_databases=['app_prod'],
            restore_authorization='disaster:%s' % PRIMARY, restore_base_backup=manifest['stamp']))
    finally:
        lab.exec(PRIMARY, 'mv', '%s/.%s.hidden-by-test' % (archive, needed), '%s/%s' % (archive, needed))
    assert run.rc != 0
    failure = run.results('Pre-flight')[PRIMARY]
    assert 'nothing was touched' in failure['msg'] and needed in failure['msg'], failure['msg']
    assert failure['stage'] == 'preflight'
    assert fingerprint(lab) == before
    assert lab.exec(PRIMARY, 'test', '-e', HOOK_LOG, check=False).returncode != 0


@pytest.mark.skipif(os.environ.get('DBFLEET_LAB_DISRUPTIVE') != '1',
                    reason='replaces db-primary\'s data directory (other tests break meanwhile): DBFLEET_LAB_DISRUPTIVE=1')
def test_disaster_restore_brings_the_primary_back_to_just_before_the_delete(backed_up):
    lab = backed_up['lab']
    lab.psql(PRIMARY, 'DROP TABLE IF EXISTS restore_disaster_t; CREATE TABLE restore_disaster_t (id int PRIMARY KEY, '
                      "v text); INSERT INTO restore_disaster_t SELECT g, 'row ' || g FROM generate_series(1, 500) g", db='app_prod')
    time.sleep(1.1)
    t2 = now(lab)
    time.sleep(1.1)
    lab.psql(PRIMARY, 'DELETE FROM restore_disaster_t WHERE id > 5', db='app_prod')  # the destructive DELETE at T2
    try:
        run = run_playbook(lab, 'playbooks/disaster_restore.yml', '-l', PRIMARY, timeout=900, extra_vars=dict(
            HOOKS, restore_databases=['app_prod'], restore_authorization='disaster:%s' % PRIMARY,
            restore_target={'time': t2}, restore_replica_wait=15))
        assert run.rc == 0, run.stdout[-4000:]
        assert lab.psql(PRIMARY, 'SELECT count(*) FROM restore_disaster_t', db='app_prod') == '500'
        report = run.results('Name the replicas')[PRIMARY]['ansible_facts']['restore_disaster']['dbfleet_report']
        assert report['verdict'] == 'verified' and report['kind'] == 'disaster_restore'
        state = report['states']['app_prod']['public.restore_disaster_t']
        assert (state['baseline']['rows'], state['restored']['rows']) == (5, 500)
        assert lab.exec(PRIMARY, 'test', '-d', report['snapshot']).returncode == 0  # the safety snapshot is there
        assert lab.exec(PRIMARY, 'cat', HOOK_LOG).stdout.split() == ['on', 'status', 'off', 'status']
        replicas = report['replicas']
        assert sorted(replicas['following'] + replicas['need_resync']) == sorted(lab.replicas), replicas
        assert lab.psql(PRIMARY, 'SELECT pg_is_in_recovery()') == 'f'
    finally:
        lab.psql(PRIMARY, 'DROP TABLE IF EXISTS restore_disaster_t', db='app_prod')
        lab.exec(PRIMARY, 'sh', '-c', 'rm -rf /var/lib/postgresql/15/main-before-restore-*', check=False)
        repaired = subprocess.run([os.path.join(str(lab.repo), 'tests', 'lab', 'fleetlab'), 'up'], capture_output=True,
                                  text=True, timeout=600, check=False)
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert subprocess.run([os.path.join(str(lab.repo), 'tests', 'lab', 'fleetlab'), 'status'],
                              capture_output=True, check=False).returncode == 0
