# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Off-site copies to S3 and back (boto3, imported lazily), verified by the checksums taken while dumping.

Uploads carry the options an off-site copy wants (server-side encryption, a storage class, object-lock
retention where the bucket has it) and are checked with ``head_object`` like with like (a multipart
upload's composite checksum against the composite of the part digests).  Downloads stream into a
:class:`landing.Landing`, hashing as they go, and are published only when the SHA-256 the manifest
recorded at dump time matches.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import sys

from .config import DEFAULT_PART_SIZE_MB
from .fsutil import read_json_object, write_json_atomic
from .hashing import READ_CHUNK, StreamDigest, s3_composite_checksum, tree_sha256
from .log import clean_exc
from .manifest import RUNNER_VERSION, public
from .naming import manifest_name


def upload(run, manifest):
    """Upload a good artifact to S3 and verify it; record ``offsite`` in the manifest."""
    s3cfg = run.cfg["s3"]
    digest = manifest.get("_digest")
    base = os.path.basename(manifest["path"])
    try:
        client = s3_client(s3cfg)
        if manifest.get("files") is not None:  # a directory: a dump in directory format or a base backup
            objects = []
            for entry in sorted(manifest["files"]):
                result = upload_verified(client, s3cfg, os.path.join(manifest["path"], entry), "%s%s/%s" % (s3cfg["prefix"], base, entry),
                                         manifest["files"][entry]["sha256"], digest.files[entry].part_digests())
                objects.append(result)
            offsite = {"bucket": s3cfg["bucket"], "key": "%s%s/" % (s3cfg["prefix"], base), "objects": objects,
                       "verified": all(item["verified"] for item in objects),
                       "error": "; ".join(item["error"] for item in objects if item.get("error")) or None}
        else:
            offsite = upload_verified(client, s3cfg, manifest["path"], s3cfg["prefix"] + base, manifest["sha256"], digest.part_digests())
    except ImportError as exc:
        offsite = {"bucket": s3cfg["bucket"], "key": s3cfg["prefix"] + base, "version_id": None, "verified": False,
                   "error": "boto3 is not importable by %s (%s): install python3-boto3" % (sys.executable, exc)}
    except Exception as exc:  # pylint: disable=broad-except
        offsite = {"bucket": s3cfg["bucket"], "key": s3cfg["prefix"] + base, "version_id": None,
                   "verified": False, "error": "S3 upload failed: %s" % clean_exc(exc)}
    manifest["offsite"] = offsite
    if offsite["verified"]:
        run.log("uploaded %s to s3://%s/%s (verified)" % (manifest["path"], offsite["bucket"], offsite["key"]))
    else:
        message = "upload of %s to s3://%s/%s failed: %s (the local dump is fine)" % (
            manifest["path"], offsite["bucket"], offsite["key"], offsite.get("error"))
        run.log(message)
        run.errors.append(message)
    try:
        write_json_atomic(os.path.join(run.dest, manifest_name(manifest["db"], manifest["stamp"])), public(manifest))
    except OSError as exc:
        message = "could not record the upload in the manifest of %s: %s" % (manifest["path"], exc)
        run.log(message)
        run.errors.append(message)


def s3_client(s3cfg):
    """Create a boto3 S3 client from the s3 config (boto3 imported here, lazily).

    Credentials come from ``credentials`` (a dict a module holds in memory,
    never written anywhere), ``credentials_file`` (JSON with
    aws_access_key_id, aws_secret_access_key, optional aws_session_token) or
    boto3's default chain.
    """
    import boto3  # pylint: disable=import-outside-toplevel,import-error
    kwargs = {}
    creds = s3cfg.get("credentials")
    where = "the module's credentials"
    if creds is None and s3cfg.get("credentials_file"):
        where = "S3 credentials file %s" % s3cfg["credentials_file"]
        creds, problem = read_json_object(s3cfg["credentials_file"])
        if problem:
            # The credentials' content never reaches a message: only that the file could not be read.
            raise RuntimeError("cannot read %s (missing, not a regular file, or not a JSON object)" % where)
    if creds is not None:
        if not isinstance(creds, dict) or not creds.get("aws_access_key_id") or not creds.get("aws_secret_access_key"):
            raise RuntimeError("%s must hold aws_access_key_id and aws_secret_access_key" % where)
        kwargs["aws_access_key_id"] = creds["aws_access_key_id"]
        kwargs["aws_secret_access_key"] = creds["aws_secret_access_key"]
        if creds.get("aws_session_token"):
            kwargs["aws_session_token"] = creds["aws_session_token"]
    if s3cfg.get("region"):
        kwargs["region_name"] = s3cfg["region"]
    session = boto3.session.Session(**kwargs)
    # Bounded waits: a store that does not answer fails the upload in minutes, not hours.
    from botocore.config import Config  # pylint: disable=import-outside-toplevel,import-error
    config = Config(connect_timeout=15, read_timeout=120, retries={"max_attempts": 4, "mode": "standard"})
    return session.client("s3", endpoint_url=s3cfg.get("endpoint_url"), config=config)


def put_options(s3cfg):
    """The ``ExtraArgs`` an upload gets from the s3 config: SSE, storage class, object-lock retention."""
    extra = {}
    if s3cfg.get("sse"):
        extra["ServerSideEncryption"] = s3cfg["sse"]
        if s3cfg.get("sse_kms_key_id"):
            extra["SSEKMSKeyId"] = s3cfg["sse_kms_key_id"]
    if s3cfg.get("storage_class"):
        extra["StorageClass"] = s3cfg["storage_class"]
    if s3cfg.get("object_lock_mode") and s3cfg.get("object_lock_until"):
        extra["ObjectLockMode"] = s3cfg["object_lock_mode"]
        extra["ObjectLockRetainUntilDate"] = s3cfg["object_lock_until"]
    return extra


def _option_problems(head, extra):
    """What ``head_object`` shows that differs from the options the upload asked for."""
    problems = []
    if extra.get("ServerSideEncryption") and head.get("ServerSideEncryption") != extra["ServerSideEncryption"]:
        problems.append("server-side encryption %r, not %r" % (head.get("ServerSideEncryption"), extra["ServerSideEncryption"]))
    wanted = extra.get("StorageClass")
    if wanted and (head.get("StorageClass") or "STANDARD") != wanted:
        problems.append("storage class %r, not %r" % (head.get("StorageClass") or "STANDARD", wanted))
    if extra.get("ObjectLockMode") and head.get("ObjectLockMode") != extra["ObjectLockMode"]:
        problems.append("object lock %r, not %r" % (head.get("ObjectLockMode"), extra["ObjectLockMode"]))
    return problems


def object_lock_supported(client, bucket):
    """Whether ``bucket`` has object lock enabled (it can only be turned on when a bucket is made)."""
    try:
        config = client.get_object_lock_configuration(Bucket=bucket)
    except Exception as exc:  # pylint: disable=broad-except  # botocore's ClientError, without importing botocore
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        if code in ("ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration", "NotImplemented"):
            return False
        raise
    return (config.get("ObjectLockConfiguration") or {}).get("ObjectLockEnabled") == "Enabled"


def checksum_matches(remote, expected):
    """Whether S3's ChecksumSHA256 ``remote`` is ``expected`` (a missing ``-N`` part count is accepted)."""
    remote_b64, _sep, remote_parts = remote.partition("-")
    expected_b64, _sep, expected_parts = expected.partition("-")
    return remote_b64 == expected_b64 and (not remote_parts or remote_parts == expected_parts)


def upload_verified(client, s3cfg, path, key, sha256_hex, part_digests):
    """Upload ``path`` to ``key`` with SHA-256 checksums, then verify with head_object.

    The object gets metadata ``sha256`` = our whole-file hex digest.  Verified
    means: ContentLength equals the local size, metadata sha256 matches, and
    S3's ChecksumSHA256 matches -- the plain base64 SHA-256 for a single-part
    upload, or for a multipart upload the composite ``BASE64-N`` computed from
    the part digests we took while streaming (like with like).
    Returns ``{"bucket", "key", "version_id", "verified", "checksum_sha256",
    "multipart", "error"}``.
    """
    from boto3.s3.transfer import TransferConfig  # pylint: disable=import-outside-toplevel,import-error
    part_size = int(s3cfg.get("part_size_mb") or DEFAULT_PART_SIZE_MB) * 1024 * 1024
    size = os.path.getsize(path)
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size)
    extra = {"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": sha256_hex, "dbfleet-runner": RUNNER_VERSION}}
    extra.update(put_options(s3cfg))
    client.upload_file(path, s3cfg["bucket"], key, ExtraArgs=extra, Config=config)
    head = client.head_object(Bucket=s3cfg["bucket"], Key=key, ChecksumMode="ENABLED")
    result = {"bucket": s3cfg["bucket"], "key": key, "version_id": head.get("VersionId"), "verified": False,
              "checksum_sha256": head.get("ChecksumSHA256"), "multipart": size >= part_size, "error": None}
    problems = []
    if head.get("ContentLength") != size:
        problems.append("size %s in S3 != %d locally" % (head.get("ContentLength"), size))
    if (head.get("Metadata") or {}).get("sha256") != sha256_hex:
        problems.append("metadata sha256 %r != %s" % ((head.get("Metadata") or {}).get("sha256"), sha256_hex))
    remote = head.get("ChecksumSHA256")
    if size >= part_size:
        # Multipart: S3 reports the checksum of the part checksums ("B64-N"),
        # so compare it with the composite of the part digests taken while
        # streaming.  Some S3 implementations (moto) omit the "-N" suffix.
        expected = s3_composite_checksum(part_digests) if part_digests else None
    else:
        expected = base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
    problems.extend(_option_problems(head, extra))
    for name, field in (("sse", "ServerSideEncryption"), ("storage_class", "StorageClass"), ("object_lock_mode", "ObjectLockMode"),
                        ("object_lock_until", "ObjectLockRetainUntilDate")):
        if field in extra:
            value = head.get(field)
            result[name] = value.isoformat() if hasattr(value, "isoformat") else value
    if remote is None:
        problems.append("S3 returned no ChecksumSHA256")
    elif expected is None or not checksum_matches(remote, expected):
        problems.append("ChecksumSHA256 %s in S3 != %s computed while dumping" % (remote, expected))
    if problems:
        result["error"] = "verification failed: " + "; ".join(problems)
    else:
        result["verified"] = True
    return result


def _stream_object(client, bucket, key, write):
    """Stream one object into ``write(view)``; its :class:`StreamDigest` and VersionId."""
    response = client.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    digest = StreamDigest()
    for chunk in response["Body"].iter_chunks(READ_CHUNK):
        view = memoryview(chunk)
        digest.update(view)
        write(view)
    return digest, response.get("VersionId")


def download_verified(client, bucket, key, landing, recorded, mtime=None):
    """Stream ``key`` (a dump, or for a directory dump the objects under ``key/``) into ``landing`` and verify it.

    ``recorded``: what the dump's manifest says (``size``, ``sha256``, ``files`` for a directory).
    Verified means every byte that arrived hashes to what the manifest recorded when the dump was made
    (and, for a directory, every file and the tree SHA-256 do); only then is the landing published.
    Returns ``{"bucket", "key", "version_id", "size", "sha256", "verified", "error", "backup"}``.
    """
    result = {"bucket": bucket, "key": key, "version_id": None, "size": None, "sha256": None, "verified": False,
              "error": None, "backup": None}
    problems = []
    if landing.kind == "file":
        digest, result["version_id"] = _stream_object(client, bucket, key, landing.write)
        result.update(size=digest.size, sha256=digest.hexdigest())
        if digest.size != recorded.get("size") or digest.hexdigest() != recorded.get("sha256"):
            problems.append("%d bytes with SHA-256 %s arrived; the manifest recorded %s bytes with SHA-256 %s"
                            % (digest.size, digest.hexdigest(), recorded.get("size"), recorded.get("sha256")))
    else:
        made = set()
        files = recorded.get("files") or {}
        for rel in sorted(files):
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                if "/".join(parts[:depth]) not in made:
                    landing.directory_member("/".join(parts[:depth]))
                    made.add("/".join(parts[:depth]))
            landing.file_start(rel, files[rel].get("size"), int(mtime or 0))
            digest, _version = _stream_object(client, bucket, key.rstrip("/") + "/" + rel, landing.file_data)
            landing.file_end()
            if digest.hexdigest() != files[rel].get("sha256"):
                problems.append("%s has SHA-256 %s; the manifest recorded %s" % (rel, digest.hexdigest(), files[rel].get("sha256")))
        tree = tree_sha256(dict((rel, d.hexdigest()) for rel, d in landing.files.items()))
        result.update(size=sum(d.size for d in landing.files.values()), sha256=tree)
        if tree != recorded.get("sha256"):
            problems.append("tree SHA-256 %s; the manifest recorded %s" % (tree, recorded.get("sha256")))
    if problems:
        landing.discard()
        result["error"] = "verification failed, nothing kept: " + "; ".join(problems)
        return result
    result["backup"] = landing.publish(mtime if landing.kind == "file" else None)
    result["verified"] = True
    return result
