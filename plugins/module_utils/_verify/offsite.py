# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is the off-site copy a manifest names really there, and is it the same bytes? One ``head_object`` per object.

The dump runner uploaded it with the SHA-256 it computed while dumping in the object's metadata and S3's own
``ChecksumSHA256``, and recorded both in the manifest (``offsite``). Here the object's size, metadata and S3
checksum are compared with the manifest - like with like: for a multipart upload S3 reports a composite
checksum, which the manifest recorded as it was at upload. Credentials come from the schedule's
``s3.credentials_file`` (read root-safely) or boto3's own chain, and never appear in a result or a message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import sys

from ansible_collections.dbfleet.postgresql.plugins.module_utils._runner.s3 import checksum_matches
from ansible_collections.dbfleet.postgresql.plugins.module_utils._verify.artifact import read_json_object

CREDENTIAL_KEYS = ('aws_access_key_id', 'aws_secret_access_key', 'aws_session_token')


class OffsiteError(Exception):
    """The copy cannot be checked at all (no boto3, unreadable credentials, S3 not answering)."""


def client_for(s3cfg, timeout):
    """A boto3 S3 client for a schedule's ``s3`` config that gives up after ``timeout`` seconds, without retrying."""
    try:
        import boto3  # pylint: disable=import-outside-toplevel,import-error
        from botocore.config import Config  # pylint: disable=import-outside-toplevel,import-error
    except ImportError as exc:
        raise OffsiteError('boto3 is not importable by %s (%s): install python3-boto3 on this host' % (sys.executable, exc))
    session_args = {}
    if s3cfg.get('credentials_file'):
        creds, problem = read_json_object(s3cfg['credentials_file'])
        if problem:
            raise OffsiteError('cannot read the S3 credentials file %s: %s' % (s3cfg['credentials_file'], problem))
        session_args = dict((key, creds[key]) for key in CREDENTIAL_KEYS if creds.get(key))
    if s3cfg.get('region'):
        session_args['region_name'] = s3cfg['region']
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={'max_attempts': 1})
    return boto3.session.Session(**session_args).client('s3', endpoint_url=s3cfg.get('endpoint_url'), config=config)


def _expected_checksum(recorded, sha256_hex):
    """What S3's ChecksumSHA256 must be: as recorded at upload, else the base64 SHA-256 of a single-part object."""
    if recorded:
        return recorded
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode('ascii') if sha256_hex else None


def check_object(client, bucket, key, size, sha256_hex, recorded_checksum, what):
    """``(facts, problems)`` for one object: present, size, metadata sha256 and S3 checksum against the manifest."""
    where = 's3://%s/%s' % (bucket, key)
    facts = dict(bucket=bucket, key=key, present=False, size=None, matches=False)
    try:
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode='ENABLED')
    except Exception as exc:  # pylint: disable=broad-except  # botocore's errors: each one means "not checked"
        code = str(getattr(exc, 'response', {}).get('Error', {}).get('Code', ''))
        if code in ('404', 'NoSuchKey', 'NotFound'):
            return facts, ['the off-site copy %s of %s is missing: S3 answers 404 (deleted, expired by a lifecycle '
                           'rule, or never uploaded there)' % (where, what)]
        raise OffsiteError('cannot check the off-site copy %s of %s: %s' % (where, what, exc))
    facts.update(present=True, size=head.get('ContentLength'), version_id=head.get('VersionId'),
                 checksum_sha256=head.get('ChecksumSHA256'))
    problems = []
    if size is not None and head.get('ContentLength') != size:
        problems.append('the off-site copy %s of %s is %s bytes, its manifest says %s: a truncated or different object'
                        % (where, what, head.get('ContentLength'), size))
    remote_sha = (head.get('Metadata') or {}).get('sha256')
    if sha256_hex and remote_sha != sha256_hex:
        problems.append('the off-site copy %s of %s has sha256 metadata %s, its manifest says %s: not the same dump'
                        % (where, what, remote_sha, sha256_hex))
    expected = _expected_checksum(recorded_checksum, sha256_hex)
    remote = head.get('ChecksumSHA256')
    if expected and remote and not checksum_matches(remote, expected):
        problems.append("the off-site copy %s of %s has S3 ChecksumSHA256 %s, but %s was verified at upload: S3 holds "
                        "other bytes now" % (where, what, remote, expected))
    facts['matches'] = not problems
    return facts, problems


def check_offsite(client, manifest, what):
    """``(facts, problems)`` for the copy ``manifest['offsite']`` names: one object, or one per file of a directory."""
    offsite = manifest.get('offsite') or {}
    bucket = offsite.get('bucket')
    if offsite.get('objects') is not None:
        files = manifest.get('files') or {}
        prefix = offsite.get('key') or ''
        objects, problems = [], []
        for item in offsite['objects']:
            rel = (item.get('key') or '')[len(prefix):]
            recorded = files.get(rel) or {}
            facts, found = check_object(client, item.get('bucket') or bucket, item.get('key'), recorded.get('size'),
                                        recorded.get('sha256'), item.get('checksum_sha256'), '%s/%s' % (what, rel))
            objects.append(facts)
            problems.extend(found)
        missing = sorted(set(files) - set((o['key'] or '')[len(prefix):] for o in objects))
        if missing:
            problems.append('the off-site copy s3://%s/%s of %s lacks %s, which the manifest lists'
                            % (bucket, prefix, what, ', '.join(missing)))
        return dict(bucket=bucket, key=prefix, objects=objects, present=all(o['present'] for o in objects),
                    matches=not problems), problems
    return check_object(client, bucket, offsite.get('key'), manifest.get('size'), manifest.get('sha256'),
                        offsite.get('checksum_sha256'), what)
