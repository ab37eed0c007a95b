#!/usr/bin/python
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: s3_copy
short_description: Copy a dump to an S3 bucket or back, verified against its manifest
version_added: 0.2.0
description:
  - O(direction=upload) sends an existing dump (a file, or a directory-format dump or base backup, one object per file
    under O(key)) and its manifest to the bucket, for hosts whose schedule had no bucket configured or to add a
    bucket later. The dump is hashed first and must match what its manifest recorded at dump time; the upload is then
    checked with C(head_object), like with like (S3's composite checksum of a multipart upload against the composite
    of the part digests). An object already there with the same SHA-256 is left alone.
  - Server-side encryption (O(sse), O(sse_kms_key_id)), a storage class (O(storage_class)) and object-lock retention
    (O(object_lock_mode), O(object_lock_days)) where the bucket has object lock enabled.
  - O(direction=download) fetches a dump and its manifest from the bucket to O(dest), streaming and hashing as it
    arrives, and publishes it only when its SHA-256 (every file's, and the tree's, for a directory) is what the
    manifest recorded; otherwise nothing is kept. The manifest is saved beside the dump, so
    M(dbfleet.postgresql.file_stat) with O(dbfleet.postgresql.file_stat#module:manifest=required) checks it later.
  - Credentials are module options marked C(no_log), held in memory only (never on a command line, in an
    environment or in a file); without them boto3's own chain (instance profile, environment) is used.
extends_documentation_fragment:
  - dbfleet.postgresql.safety
options:
  direction:
    description:
      - V(upload) (this host to the bucket) or V(download) (the bucket to this host).
    type: str
    choices: [upload, download]
    required: true
  path:
    description:
      - O(direction=upload) - the dump to upload, as the dump runner made it (its manifest beside it).
    type: path
  dest:
    description:
      - O(direction=download) - where the dump goes on this host (the file or directory itself).
    type: path
  manifest:
    description:
      - O(direction=upload) - the dump's manifest; by default the one beside it (C(DB-STAMP.manifest.json)).
    type: path
  bucket:
    description:
      - The bucket.
    type: str
    required: true
  key:
    description:
      - The object key of the dump (for a directory, the prefix its files go under).
      - O(direction=upload) - V(O(prefix) + the dump's name) by default. O(direction=download) - required.
    type: str
  prefix:
    description:
      - O(direction=upload) - key prefix when O(key) is not given, such as V(db-primary/).
    type: str
    default: ''
  manifest_key:
    description:
      - O(direction=download) - the manifest's key; by default the manifest name beside O(key).
    type: str
  upload_manifest:
    description:
      - O(direction=upload) - upload the manifest beside the dump too (so a download can verify against it).
    type: bool
    default: true
  endpoint_url:
    description:
      - S3 endpoint for non-AWS stores (MinIO, Ceph, moto), such as V(http://127.0.0.15:9000).
    type: str
  region:
    description:
      - The bucket's region.
    type: str
  access_key:
    description:
      - Access key id. Never logged.
    type: str
  secret_key:
    description:
      - Secret access key. Never logged.
    type: str
  session_token:
    description:
      - Session token for temporary credentials. Never logged.
    type: str
  sse:
    description:
      - Server-side encryption of uploaded objects.
    type: str
    choices: [AES256, 'aws:kms']
  sse_kms_key_id:
    description:
      - The KMS key for O(sse=aws:kms) (the bucket's default key otherwise).
    type: str
  storage_class:
    description:
      - Storage class of uploaded objects, such as V(STANDARD_IA) or V(GLACIER_IR).
    type: str
  object_lock_mode:
    description:
      - Object-lock retention of uploaded objects (needs O(object_lock_days)). Only buckets made with object lock
        enabled support it; see O(object_lock).
    type: str
    choices: [GOVERNANCE, COMPLIANCE]
  object_lock_days:
    description:
      - Days from now the uploaded objects are retained under O(object_lock_mode).
    type: int
  object_lock:
    description:
      - V(if_supported) uploads without retention (and says so in RV(object_lock)) to a bucket without object lock;
        V(required) fails instead.
    type: str
    choices: [if_supported, required]
    default: if_supported
  part_size_mb:
    description:
      - Multipart part size for uploads (the same cut the dump runner uses, so composite checksums compare).
    type: int
    default: 64
  create_dirs:
    description:
      - O(direction=download) - create the directory O(dest) goes into when missing.
    type: bool
    default: false
  owner:
    description:
      - O(direction=download) - owner of the downloaded dump and manifest.
    type: str
    default: root
  group:
    description:
      - O(direction=download) - their group; the owner's primary group by default.
    type: str
  mode:
    description:
      - O(direction=download) - permissions of the downloaded files.
    type: str
    default: '0640'
  directory_mode:
    description:
      - O(direction=download) - permissions of downloaded directories.
    type: str
    default: '0750'
attributes:
  check_mode:
    description: Nothing is uploaded or written; the result says what would be.
    support: full
  diff_mode:
    description: Not supported; the result's C(msg) says what would change.
    support: none
requirements:
  - boto3 on the host that runs it (Debian's C(python3-boto3)).
seealso:
  - module: dbfleet.postgresql.file_stat
    description: Checks a downloaded dump against the manifest saved beside it.
  - module: dbfleet.postgresql.send_file
    description: Host to host instead of host to bucket.
author:
  - dbfleet maintainers (@dbfleet)
'''

EXAMPLES = r'''
- name: Upload a dump a host made before it had a bucket, encrypted, infrequent-access, retained 30 days
  dbfleet.postgresql.s3_copy:
    direction: upload
    path: /srv/backups/app_prod-20260618T030000Z.dump.zst
    bucket: dbfleet-offsite
    prefix: db-primary/
    sse: AES256
    storage_class: STANDARD_IA
    object_lock_mode: GOVERNANCE
    object_lock_days: 30
    access_key: "{{ vault_s3_access_key }}"
    secret_key: "{{ vault_s3_secret_key }}"

- name: Fetch it back for a restore, verified against its manifest
  dbfleet.postgresql.s3_copy:
    direction: download
    bucket: dbfleet-offsite
    key: db-primary/app_prod-20260618T030000Z.dump.zst
    dest: /srv/restore/app_prod-20260618T030000Z.dump.zst
    create_dirs: true
    access_key: "{{ vault_s3_access_key }}"
    secret_key: "{{ vault_s3_secret_key }}"
'''

RETURN = r'''
key:
  description: The dump's key.
  returned: always
  type: str
manifest_key:
  description: The manifest's key.
  returned: when a manifest was uploaded or read
  type: str
sha256:
  description: SHA-256 of the dump (tree SHA-256 for a directory), as its manifest records it and as verified.
  returned: success
  type: str
size:
  description: Size of the dump in bytes (the sum of its files for a directory).
  returned: success
  type: int
verified:
  description: Whether the copy was checked and matches (in S3 after an upload, on disk after a download).
  returned: always
  type: bool
objects:
  description: Per object uploaded, what C(head_object) showed (key, version_id, checksum, sse, storage_class, object lock).
  returned: when uploaded
  type: list
  elements: dict
object_lock:
  description: Retention applied (mode and until), or why none was (the bucket has no object lock).
  returned: when object_lock_mode is set
  type: str
dest:
  description: Where the dump was downloaded to (O(dest)).
  returned: when downloading
  type: str
backup_file:
  description: Where a replaced O(dest) was kept (edit mode), or null.
  returned: when downloaded
  type: str
'''

import datetime
import hashlib
import json
import os
import stat

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _destination, _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner import s3
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.hashing import hash_file, hash_tree
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.landing import Landing
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.log import clean_exc
from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.naming import manifest_name, parse_artifact_name
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import DbfleetModule

MANIFEST_LIMIT = 4 * 1024 * 1024


def s3_config(module, extra=None):
    """The s3 config ``_runner.s3`` takes, credentials in memory only."""
    params = module.params
    cfg = dict(bucket=params['bucket'], endpoint_url=params['endpoint_url'], region=params['region'],
               part_size_mb=params['part_size_mb'], sse=params['sse'], sse_kms_key_id=params['sse_kms_key_id'],
               storage_class=params['storage_class'])
    if params['access_key'] or params['secret_key']:
        cfg['credentials'] = dict(aws_access_key_id=params['access_key'], aws_secret_access_key=params['secret_key'],
                                  aws_session_token=params['session_token'])
    cfg.update(extra or {})
    return cfg


def _manifest_beside(name):
    parsed = parse_artifact_name(name)
    return manifest_name(parsed['db'], parsed['stamp']) if parsed and parsed['kind'] == 'dump' else None


def _client(module, cfg):
    try:
        return s3.s3_client(cfg)
    except ImportError as exc:
        module.fail_json(msg='boto3 is not importable here (%s): install python3-boto3' % exc)
    except RuntimeError as exc:
        module.fail_json(msg=str(exc))


def _aws_error(module, what, exc, **result):
    module.fail_json(msg='%s failed: %s' % (what, clean_exc(exc)), **result)


def _lock_options(module, client, result):
    """Object-lock settings for the upload, when asked for and the bucket has object lock."""
    params = module.params
    if not params['object_lock_mode']:
        return {}
    if not params['object_lock_days'] or params['object_lock_days'] < 1:
        module.fail_json(msg='object_lock_mode needs object_lock_days (at least 1)')
    if not s3.object_lock_supported(client, params['bucket']):
        if params['object_lock'] == 'required':
            module.fail_json(msg='bucket %s has no object lock (it can only be enabled when a bucket is made): nothing '
                                 'uploaded' % params['bucket'])
        result['object_lock'] = 'not applied: bucket %s has no object lock' % params['bucket']
        module.warn(result['object_lock'])
        return {}
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=params['object_lock_days'])
    result['object_lock'] = '%s until %s' % (params['object_lock_mode'], until.strftime('%Y-%m-%dT%H:%M:%SZ'))
    return dict(object_lock_mode=params['object_lock_mode'], object_lock_until=until)


def _in_bucket(client, bucket, key, sha256, size):
    """Whether ``key`` already holds an object with this SHA-256 (our metadata) and size."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # pylint: disable=broad-except  # botocore's ClientError, without importing botocore
        if getattr(exc, 'response', {}).get('Error', {}).get('Code') in ('404', 'NoSuchKey', 'NotFound'):
            return False
        raise
    return head.get('ContentLength') == size and (head.get('Metadata') or {}).get('sha256') == sha256


def upload(module):
    params = module.params
    if not params['path']:
        module.fail_json(msg='direction=upload needs path: the dump to upload')
    path = params['path'].rstrip('/')
    info = _files.lstat_or_none(path)
    if info is None or stat.S_ISLNK(info.st_mode):
        module.fail_json(msg='%s does not exist (or is a symlink): nothing to upload' % path)
    name = os.path.basename(path)
    manifest_path = params['manifest']
    if not manifest_path and _manifest_beside(name):
        manifest_path = os.path.join(os.path.dirname(path), _manifest_beside(name))
    if not manifest_path:
        module.fail_json(msg='%s is not named like a dump the runner made (DB-STAMP.EXT) and no manifest was given: '
                             's3_copy uploads dumps it can verify against their manifest' % path)
    try:
        raw = _files.read_regular(manifest_path, MANIFEST_LIMIT)
        manifest = json.loads(raw.decode('utf-8')) if raw is not None else None
    except (OSError, ValueError, _files.UnsafePath) as exc:
        module.fail_json(msg='cannot read the manifest %s: %s' % (manifest_path, exc))
    if not isinstance(manifest, dict) or manifest.get('status') != 'ok' or os.path.basename(manifest.get('path') or '') != name:
        module.fail_json(msg='the manifest %s does not describe a good dump %s (status %r): not uploaded'
                             % (manifest_path, name, (manifest or {}).get('status')))
    part_size = params['part_size_mb'] * 1024 * 1024
    is_dir = stat.S_ISDIR(info.st_mode)
    digest = hash_tree(path, part_size) if is_dir else hash_file(path, part_size)
    if digest.hexdigest() != manifest.get('sha256') or digest.size != manifest.get('size'):
        module.fail_json(msg='%s is %d bytes with SHA-256 %s, but its manifest recorded %s bytes with SHA-256 %s: the dump '
                             'changed after it was made; not uploaded'
                             % (path, digest.size, digest.hexdigest(), manifest.get('size'), manifest.get('sha256')))
    key = params['key'] or params['prefix'] + name
    manifest_key = '%s%s' % (key.rsplit('/', 1)[0] + '/' if '/' in key.rstrip('/') else '', os.path.basename(manifest_path))
    result = dict(changed=False, key=key, sha256=digest.hexdigest(), size=digest.size, verified=False,
                  manifest_key=manifest_key if params['upload_manifest'] else None)
    cfg = s3_config(module)
    client = _client(module, cfg)
    try:
        cfg.update(_lock_options(module, client, result))
        members = sorted(digest.files) if is_dir else [None]
        targets = [(os.path.join(path, rel) if rel else path, key.rstrip('/') + '/' + rel if rel else key,
                    (digest.files[rel] if rel else digest)) for rel in members]
        todo = [t for t in targets if not _in_bucket(client, params['bucket'], t[1], t[2].hexdigest(), t[2].size)]
        if params['upload_manifest'] and not _in_bucket(client, params['bucket'], manifest_key, _sha(raw), len(raw)):
            todo.append('manifest')
        if not todo:
            result.update(verified=True, msg='s3://%s/%s already holds this dump (SHA-256 %s)' % (params['bucket'], key, digest.hexdigest()))
            module.exit_json(**result)
        result['changed'] = True
        if module.check_mode:
            module.exit_json(msg='would upload %d object(s) to s3://%s/%s' % (len(todo), params['bucket'], key), **result)
        objects = [s3.upload_verified(client, cfg, local, remote, part.hexdigest(), part.part_digests())
                   for local, remote, part in [t for t in todo if t != 'manifest']]
        if 'manifest' in todo:
            objects.append(_put_manifest(client, cfg, manifest_key, raw))
    except Exception as exc:  # pylint: disable=broad-except  # boto3 and botocore errors, kept for -vvv
        _aws_error(module, 'upload of %s to s3://%s/%s' % (path, params['bucket'], key), exc, **result)
    result['objects'] = objects
    result['verified'] = all(item.get('verified') for item in objects)
    if not result['verified']:
        module.fail_json(msg='upload of %s to s3://%s/%s did not verify: %s' % (
            path, params['bucket'], key, '; '.join(item['error'] for item in objects if item.get('error'))), **result)
    module.exit_json(msg='uploaded %s to s3://%s/%s, verified' % (path, params['bucket'], key), **result)


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _put_manifest(client, cfg, key, raw):
    extra = s3.put_options(cfg)
    response = client.put_object(Bucket=cfg['bucket'], Key=key, Body=raw, ChecksumAlgorithm='SHA256',
                                 Metadata={'sha256': _sha(raw)}, **extra)
    head = client.head_object(Bucket=cfg['bucket'], Key=key)
    ok = head.get('ContentLength') == len(raw) and (head.get('Metadata') or {}).get('sha256') == _sha(raw)
    return dict(key=key, version_id=response.get('VersionId'), verified=ok,
                error=None if ok else 'the manifest object does not match what was sent')


def download(module):
    params = module.params
    if not params['dest'] or not params['key']:
        module.fail_json(msg='direction=download needs key (the dump in the bucket) and dest (where it goes here)')
    dest, key = params['dest'].rstrip('/'), params['key']
    module.require_write_destination(dest, 'dest')
    name = os.path.basename(key.rstrip('/'))
    manifest_key = params['manifest_key']
    if not manifest_key and _manifest_beside(name):
        manifest_key = key.rstrip('/')[:-len(name)] + _manifest_beside(name)
    if not manifest_key:
        module.fail_json(msg='%s is not named like a runner dump and no manifest_key was given: nothing to verify against' % key)
    client = _client(module, s3_config(module))
    result = dict(changed=False, key=key, manifest_key=manifest_key, dest=dest, verified=False)
    try:
        raw = client.get_object(Bucket=params['bucket'], Key=manifest_key)['Body'].read(MANIFEST_LIMIT)
        manifest = json.loads(raw.decode('utf-8'))
    except Exception as exc:  # pylint: disable=broad-except  # a missing key, a bad endpoint, not JSON: said in words
        _aws_error(module, 'reading the manifest s3://%s/%s' % (params['bucket'], manifest_key), exc, **result)
    if not isinstance(manifest, dict) or manifest.get('status') != 'ok' or os.path.basename(manifest.get('path') or '') != name:
        module.fail_json(msg='the manifest s3://%s/%s does not describe a good dump %s (status %r): nothing downloaded'
                             % (params['bucket'], manifest_key, name, (manifest or {}).get('status')), **result)
    kind = 'tree' if manifest.get('files') else 'file'
    result.update(sha256=manifest.get('sha256'), size=manifest.get('size'))
    owner = _destination.owner_ids(module)
    file_mode, dir_mode = _destination.parse_mode(module, 'mode'), _destination.parse_mode(module, 'directory_mode')
    directory = os.path.dirname(dest)
    dir_id = _destination.checked_directory(module, directory, owner, dir_mode, result)
    existing = _files.lstat_or_none(dest)
    if existing is not None:
        if stat.S_ISLNK(existing.st_mode) or stat.S_ISDIR(existing.st_mode) != (kind == 'tree'):
            module.fail_json(msg='%s exists and is not a %s: refused' % (dest, 'directory' if kind == 'tree' else 'file'), **result)
        have = hash_tree(dest) if kind == 'tree' else hash_file(dest)
        if have.hexdigest() == manifest.get('sha256'):
            result.update(verified=True, msg='%s already is this dump (SHA-256 %s)' % (dest, have.hexdigest()))
            module.exit_json(**result)
    result['changed'] = True
    if module.check_mode:
        module.exit_json(msg='would download s3://%s/%s to %s and verify it against its manifest' % (params['bucket'], key, dest), **result)
    _destination.require_space(module, directory, manifest.get('size') or 0, result)
    backups = _destination.backup_dir(directory) if existing is not None and module.dbfleet_mode == 'edit' else None
    landing = Landing(dest, kind, dir_id, owner, file_mode, dir_mode, module.dbfleet_mode, backups)
    try:
        landing.open()
        landing.restart()       # a partial from an earlier download cannot be checked against a prefix hash: start over
        stamp = parse_artifact_name(name)
        fetched = s3.download_verified(client, params['bucket'], key, landing, manifest,
                                       mtime=int(stamp['when'].timestamp()) if stamp else None)
    except Exception as exc:  # pylint: disable=broad-except  # boto3, botocore and OS errors, kept for -vvv
        landing.discard()
        _aws_error(module, 'download of s3://%s/%s to %s' % (params['bucket'], key, dest), exc, **result)
    finally:
        landing.close()
    result.update(verified=fetched['verified'], backup_file=fetched['backup'], version_id=fetched['version_id'])
    if not fetched['verified']:
        module.fail_json(msg='download of s3://%s/%s: %s' % (params['bucket'], key, fetched['error']), **result)
    side = os.path.join(directory, os.path.basename(manifest_key))
    module.backup_before_overwrite(side)
    _files.write_file(side, raw, owner[0], owner[1], file_mode)
    module.exit_json(msg='downloaded s3://%s/%s to %s, SHA-256 %s as its manifest recorded' % (
        params['bucket'], key, dest, fetched['sha256']), **result)


def main():
    module = DbfleetModule(
        argument_spec=dict(
            direction=dict(type='str', choices=['upload', 'download'], required=True),
            path=dict(type='path'),
            dest=dict(type='path'),
            manifest=dict(type='path'),
            bucket=dict(type='str', required=True),
            key=dict(type='str', no_log=False),
            prefix=dict(type='str', default=''),
            manifest_key=dict(type='str', no_log=False),
            upload_manifest=dict(type='bool', default=True),
            endpoint_url=dict(type='str'),
            region=dict(type='str'),
            access_key=dict(type='str', no_log=True),
            secret_key=dict(type='str', no_log=True),
            session_token=dict(type='str', no_log=True),
            sse=dict(type='str', choices=['AES256', 'aws:kms']),
            sse_kms_key_id=dict(type='str', no_log=False),
            storage_class=dict(type='str'),
            object_lock_mode=dict(type='str', choices=['GOVERNANCE', 'COMPLIANCE']),
            object_lock_days=dict(type='int'),
            object_lock=dict(type='str', choices=['if_supported', 'required'], default='if_supported'),
            part_size_mb=dict(type='int', default=64),
            create_dirs=dict(type='bool', default=False),
            owner=dict(type='str', default='root'),
            group=dict(type='str'),
            mode=dict(type='str', default='0640'),
            directory_mode=dict(type='str', default='0750'),
        ),
        supports_check_mode=True,
    )
    if not 5 <= module.params['part_size_mb'] <= 5120:
        module.fail_json(msg='part_size_mb must be between 5 and 5120 (S3 part limits)')
    if module.params['direction'] == 'upload':
        upload(module)
    download(module)


if __name__ == '__main__':
    main()
