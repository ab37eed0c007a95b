# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Off-site on the fleet lab: the bucket both ways (a dump round-trips through the lab's S3 endpoint, verified on
download against its manifest; SSE, storage class, object lock), and playbooks/ship_offsite.yml (newest good dump per
database to backup-box and the bucket, verified, per-host results, retention that only prunes its own copies)."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.ansible_cli import host_results, run_module, run_playbook
from tests.integration.sendfile_helpers import DEST, SOURCE, make_dump, sha256_on

SRC = '/srv/offsite-test/backups'        # scratch backup directory on db-primary
ROOT = '/srv/offsite-test/offsite'       # scratch off-site root on backup-box
PLAYBOOK = 'playbooks/ship_offsite.yml'


def remove_every_version(client, bucket, prefix, **extra):
    """Delete every version of every key under ``prefix``, newest first (moto's list_object_versions takes minutes
    on a bucket holding other tests' gigabytes, so each key's versions are walked with head_object instead)."""
    for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get('Contents', []):
        while True:
            try:
                version = client.head_object(Bucket=bucket, Key=item['Key'])['VersionId']
            except Exception:  # pylint: disable=broad-except  # botocore's ClientError 404: no version left
                break
            client.delete_object(Bucket=bucket, Key=item['Key'], VersionId=version, **extra)


@pytest.fixture()
def s3(fleet_lab):
    """The lab's bucket and a key prefix of this test's own, every version under it removed afterwards."""
    client = fleet_lab.s3_client()
    prefix = 'offsite-test-%s/' % uuid.uuid4().hex[:8]
    yield client, prefix
    remove_every_version(client, fleet_lab.s3_bucket, prefix)


@pytest.fixture()
def scratch(fleet_lab):
    for host in (SOURCE, DEST):
        fleet_lab.exec(host, 'sh', '-c', 'rm -rf /srv/offsite-test && mkdir -p /srv/offsite-test')
    yield
    for host in (SOURCE, DEST):
        fleet_lab.exec(host, 'rm', '-rf', '/srv/offsite-test')


def s3_args(lab, **extra):
    args = dict(bucket=lab.s3_bucket, endpoint_url=lab.vars['dbfleet_s3_endpoint_url'], region=lab.vars['dbfleet_s3_region'],
                access_key=lab.vars['dbfleet_s3_access_key'], secret_key=lab.vars['dbfleet_s3_secret_key'])
    args.update(extra)
    return args


def call(lab, host, module, args, *extra):
    run = run_module(lab, host, 'dbfleet.postgresql.' + module, args, *extra)
    return host_results(run).get(host, {'failed': True, 'msg': run.stdout + run.stderr})


# --------------------------------------------------------------------------
# the bucket both ways
# --------------------------------------------------------------------------

def test_a_dump_round_trips_through_the_bucket_verified_against_its_manifest(fleet_lab, scratch, s3):
    client, prefix = s3
    manifest = make_dump(fleet_lab, SOURCE, SRC, 'app_prod', '20260101T010000Z')
    up = call(fleet_lab, SOURCE, 's3_copy', s3_args(fleet_lab, direction='upload', path=manifest['path'], prefix=prefix,
                                                    sse='AES256', storage_class='STANDARD_IA'))
    assert not up.get('failed'), up['msg']
    assert up['changed'] and up['verified'] and up['sha256'] == manifest['sha256']
    key = prefix + 'app_prod-20260101T010000Z.dump'
    head = client.head_object(Bucket=fleet_lab.s3_bucket, Key=key, ChecksumMode='ENABLED')
    assert head['Metadata']['sha256'] == manifest['sha256'] and head['ServerSideEncryption'] == 'AES256'
    assert head['StorageClass'] == 'STANDARD_IA' and up['objects'][0]['storage_class'] == 'STANDARD_IA'
    assert json.loads(client.get_object(Bucket=fleet_lab.s3_bucket, Key=prefix + 'app_prod-20260101T010000Z.manifest.json')
                      ['Body'].read())['sha256'] == manifest['sha256']
    assert 'dbfleet-lab-secret' not in json.dumps(up)                        # the secret is never in a result
    again = call(fleet_lab, SOURCE, 's3_copy', s3_args(fleet_lab, direction='upload', path=manifest['path'], prefix=prefix))
    assert again['changed'] is False and again['verified'] and 'already holds' in again['msg']

    dest = '/srv/offsite-test/fetched/app_prod-20260101T010000Z.dump'
    down = call(fleet_lab, DEST, 's3_copy', s3_args(fleet_lab, direction='download', key=key, dest=dest, create_dirs=True))
    assert not down.get('failed'), down['msg']
    assert down['verified'] and down['sha256'] == manifest['sha256'] == sha256_on(fleet_lab, DEST, dest)
    checked = call(fleet_lab, DEST, 'file_stat', dict(path=dest, checksum=True, manifest='required', validate='pg_archive'))
    assert checked['ok'] and checked['manifest']['matches'] and checked['valid'], checked['violations']


def test_a_download_that_does_not_match_its_manifest_keeps_nothing(fleet_lab, scratch, s3):
    client, prefix = s3
    manifest = make_dump(fleet_lab, SOURCE, SRC, 'app_prod', '20260101T020000Z')
    call(fleet_lab, SOURCE, 's3_copy', s3_args(fleet_lab, direction='upload', path=manifest['path'], prefix=prefix))
    key = prefix + 'app_prod-20260101T020000Z.dump'
    client.put_object(Bucket=fleet_lab.s3_bucket, Key=key, Body=b'PGDMP not the dump the manifest describes')
    dest = '/srv/offsite-test/app_prod-20260101T020000Z.dump'
    down = call(fleet_lab, DEST, 's3_copy', s3_args(fleet_lab, direction='download', key=key, dest=dest))
    assert down['failed'] and 'verification failed, nothing kept' in down['msg'] and manifest['sha256'] in down['msg']
    assert fleet_lab.exec(DEST, 'ls', '-A', '/srv/offsite-test').stdout == ''


def test_a_directory_format_dump_round_trips_file_by_file(fleet_lab, scratch, s3):
    _client, prefix = s3
    manifest = make_dump(fleet_lab, SOURCE, SRC, 'app_prod', '20260101T030000Z', fmt='directory')
    up = call(fleet_lab, SOURCE, 's3_copy', s3_args(fleet_lab, direction='upload', path=manifest['path'], prefix=prefix))
    assert up['verified'] and len(up['objects']) == len(manifest['files']) + 1
    dest = '/srv/offsite-test/app_prod-20260101T030000Z.dir'
    down = call(fleet_lab, DEST, 's3_copy', s3_args(fleet_lab, direction='download', key=prefix + 'app_prod-20260101T030000Z.dir',
                                                    dest=dest))
    assert down['verified'] and down['sha256'] == manifest['sha256']
    assert fleet_lab.exec(DEST, 'pg_restore', '--list', dest).stdout.count('TABLE DATA') >= 2


def test_object_lock_is_applied_where_the_bucket_has_it_and_said_where_it_does_not(fleet_lab, scratch, s3):
    client, prefix = s3
    manifest = make_dump(fleet_lab, SOURCE, SRC, 'app_prod', '20260101T040000Z')
    lock = dict(direction='upload', path=manifest['path'], prefix=prefix, object_lock_mode='GOVERNANCE', object_lock_days=1)
    refused = call(fleet_lab, SOURCE, 's3_copy', s3_args(fleet_lab, object_lock='required', **lock))
    assert refused['failed'] and 'has no object lock' in refused['msg'] and 'nothing uploaded' in refused['msg']
    warned = call(fleet_lab, SOURCE, 's3_copy', s3_args(fleet_lab, **lock))
    assert warned['verified'] and warned['object_lock'].startswith('not applied')
    bucket = 'dbfleet-lock-test-%s' % uuid.uuid4().hex[:8]
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    try:
        locked = call(fleet_lab, SOURCE, 's3_copy', s3_args(fleet_lab, bucket=bucket, object_lock='required', **lock))
        assert not locked.get('failed'), locked['msg']
        assert locked['object_lock'].startswith('GOVERNANCE until') and locked['objects'][0]['object_lock_mode'] == 'GOVERNANCE'
        head = client.head_object(Bucket=bucket, Key=prefix + 'app_prod-20260101T040000Z.dump')
        assert head['ObjectLockMode'] == 'GOVERNANCE' and head['ObjectLockRetainUntilDate']
    finally:
        remove_every_version(client, bucket, '', BypassGovernanceRetention=True)
        client.delete_bucket(Bucket=bucket)


# --------------------------------------------------------------------------
# playbooks/ship_offsite.yml
# --------------------------------------------------------------------------

def ship(lab, *args, **extra):
    extra_vars = dict(ship_offsite_backup_dirs=[SRC], ship_offsite_root=ROOT, ship_offsite_keep=2)
    extra_vars.update(extra)
    return run_playbook(lab, PLAYBOOK, *args, extra_vars=extra_vars)


def offsite(lab):
    return lab.exec(DEST, 'sh', '-c', 'cd %s/%s 2>/dev/null && ls -A | sort' % (ROOT, SOURCE), check=False).stdout.split()


def test_ship_offsite_sends_the_newest_good_dumps_verified_and_keeps_the_newest_copies(fleet_lab, scratch, s3):
    _client, prefix = s3
    for stamp in ('20260102T030000Z', '20260103T030000Z'):
        make_dump(fleet_lab, SOURCE, SRC, 'app_prod', stamp)
        make_dump(fleet_lab, SOURCE, SRC, 'globals', stamp)
    make_dump(fleet_lab, SOURCE, SRC, 'app_prod', '20260104T030000Z', status='failed')   # newer, but it failed
    newest = make_dump(fleet_lab, SOURCE, SRC, 'app_prod', '20260103T030000Z')

    # plan first: --check changes nothing anywhere
    planned = ship(fleet_lab, '--check', ship_offsite_sources='primary', ship_offsite_bucket=fleet_lab.s3_bucket,
                   ship_offsite_s3_prefix=prefix)
    assert planned.rc == 0, planned.stdout[-3000:]
    assert offsite(fleet_lab) == [] and fleet_lab.exec(DEST, 'test', '-e', ROOT, check=False).returncode != 0

    run = ship(fleet_lab, ship_offsite_sources='primary', ship_offsite_bucket=fleet_lab.s3_bucket, ship_offsite_s3_prefix=prefix)
    assert run.rc == 0 and run.failed_hosts() == [], run.stdout[-3000:]
    sent = run.results('Send each dump to each backup host')[SOURCE]['results']
    assert sorted(item['item'][0]['name'] for item in sent) == ['app_prod-20260103T030000Z.dump', 'globals-20260103T030000Z.dump']
    assert all(item['item'][1] == DEST and item['sha256'] == item['item'][0]['sha256'] for item in sent)
    assert offsite(fleet_lab) == ['.dbfleet-offsite.json', 'app_prod-20260103T030000Z.dump', 'app_prod-20260103T030000Z.manifest.json',
                                  'globals-20260103T030000Z.dump', 'globals-20260103T030000Z.manifest.json']
    copy = '%s/%s/app_prod-20260103T030000Z.dump' % (ROOT, SOURCE)
    assert sha256_on(fleet_lab, DEST, copy) == newest['sha256']
    said = run.results('Say what was shipped')[SOURCE]['msg']
    assert 'app_prod-20260103T030000Z.dump to backup-box by' in said and 'SHA-256 verified' in said and '2 verified' in said
    uploaded = run.results('Upload each dump to the bucket')[SOURCE]['results']
    assert all(item['verified'] for item in uploaded)

    # two nights later, keeping one copy, with an older copy someone put there by hand: only the playbook's own
    # copies are pruned
    fleet_lab.exec(DEST, 'sh', '-c', 'echo by hand > %s/%s/app_prod-20250101T000000Z.dump' % (ROOT, SOURCE))
    make_dump(fleet_lab, SOURCE, SRC, 'app_prod', '20260105T030000Z')
    run = ship(fleet_lab, ship_offsite_sources='primary', ship_offsite_keep=1)
    assert run.rc == 0, run.stdout[-3000:]
    kept = offsite(fleet_lab)
    assert 'app_prod-20260105T030000Z.dump' in kept and 'app_prod-20260105T030000Z.manifest.json' in kept
    assert 'app_prod-20260103T030000Z.dump' not in kept and 'app_prod-20260103T030000Z.manifest.json' not in kept
    assert 'app_prod-20250101T000000Z.dump' in kept                            # not the playbook's: never touched
    assert 'globals-20260103T030000Z.dump' in kept                             # the only copy of globals stays
    retention = run.results('Record the verified copies')[DEST]['results'][0]
    assert retention['pruned'] == ['app_prod-20260103T030000Z.dump', 'app_prod-20260103T030000Z.manifest.json']


def test_ship_offsite_gives_each_host_its_own_result(fleet_lab, scratch):
    make_dump(fleet_lab, SOURCE, SRC, 'app_prod', '20260102T030000Z')
    run = ship(fleet_lab, ship_offsite_sources='db')
    assert run.ok_hosts() == [DEST, SOURCE]
    assert run.failed_hosts() == ['db-replica-1', 'db-replica-2']       # no backups there: red in the recap, words in the result
    found = run.results('Find the newest good dump')
    assert 'is not a directory' in found['db-replica-1']['results'][0]['msg']
    assert offsite(fleet_lab)[1:] == ['app_prod-20260102T030000Z.dump', 'app_prod-20260102T030000Z.manifest.json']


def test_a_plan_mode_backup_host_gets_nothing_from_the_playbook(fleet_lab, scratch, tmp_path):
    make_dump(fleet_lab, SOURCE, SRC, 'app_prod', '20260102T030000Z')
    run = ship(fleet_lab, '-e', json.dumps({'dbfleet_mode': 'plan'}), ship_offsite_sources='primary')
    assert run.rc == 0, run.stdout[-3000:]
    sent = run.results('Send each dump to each backup host')[SOURCE]['results'][0]
    assert sent['would_send'] and 'plan mode' in sent['msg']
    assert fleet_lab.exec(DEST, 'test', '-e', ROOT, check=False).returncode != 0
