"""The S3 endpoint: moto's server mode on 127.0.0.15:9000, with one versioned bucket."""

from __future__ import annotations

import http.client
import importlib.util
import shutil
import subprocess
import sys

from .config import (LOGS, REPO, RUN, S3_ACCESS_KEY, S3_ADDR, S3_BUCKET, S3_PORT, S3_REGION, S3_SECRET_KEY, S3_URL,
                     STATE, LabError)
from .proc import ensure_port, proc_alive, proc_cmdline, read_pid, signal_and_wait, spawn, tail, wait_for, write_pid


def moto_command() -> list[str]:
    venv_server = REPO / ".venv" / "bin" / "moto_server"
    if venv_server.exists():
        return [str(venv_server)]
    found = shutil.which("moto_server")
    if found:
        return [found]
    if importlib.util.find_spec("moto") is not None:
        return [sys.executable, "-m", "moto.server"]
    raise LabError("moto's S3 server is not installed: install the PyPI package 'moto[server]' "
                   f"(requirements.txt) into {REPO / '.venv'}")


def moto_pid() -> int | None:
    pid = read_pid(RUN / "moto.pid")
    if pid and proc_alive(pid):
        args = " ".join(proc_cmdline(pid))
        if "moto" in args and S3_ADDR in args:
            return pid
    return None


def s3_request(method: str, path: str, timeout: float = 2.0) -> tuple[int, bytes] | None:
    """Unsigned request to the lab endpoint (moto does not check signatures)."""
    try:
        conn = http.client.HTTPConnection(S3_ADDR, S3_PORT, timeout=timeout)
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp.status, body
    except OSError:
        return None


def bucket_state() -> dict:
    """Whether the endpoint answers, the bucket exists and has versioning on."""
    up = bool(s3_request("GET", "/"))
    head = s3_request("HEAD", f"/{S3_BUCKET}") if up else None
    vers = s3_request("GET", f"/{S3_BUCKET}?versioning") if up else None
    return {"up": up, "bucket_exists": bool(head and head[0] == 200),
            "versioning": bool(vers and b"<Status>Enabled</Status>" in vers[1])}


def start_moto(changes: list) -> subprocess.Popen | None:
    if moto_pid() and s3_request("GET", "/"):
        return None
    if moto_pid():
        signal_and_wait([moto_pid()], 5)
    ensure_port(S3_ADDR, S3_PORT, "the S3 endpoint (moto)")
    (STATE / "s3").mkdir(mode=0o700, exist_ok=True)
    proc = spawn(moto_command() + ["-H", S3_ADDR, "-p", str(S3_PORT)], LOGS / "moto.log", cwd=STATE / "s3")
    write_pid(RUN / "moto.pid", proc.pid)
    changes.append("s3: moto server")
    return proc


def ensure_bucket(proc: subprocess.Popen | None, changes: list) -> None:
    def died() -> bool:
        return proc is not None and proc.poll() is not None
    if not wait_for(lambda: died() or s3_request("GET", "/"), 30, 0.1) or died():
        raise LabError(f"the S3 endpoint did not come up at {S3_URL}; log {LOGS / 'moto.log'}:\n{tail(LOGS / 'moto.log')}")
    state = bucket_state()
    if state["bucket_exists"] and state["versioning"]:
        return
    try:
        import boto3  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise LabError("boto3 is needed to create the lab bucket: use the repository venv (.venv) "
                       "or install the Debian package python3-boto3") from exc
    s3 = s3_client(boto3)
    if not state["bucket_exists"]:
        s3.create_bucket(Bucket=S3_BUCKET)
    s3.put_bucket_versioning(Bucket=S3_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    changes.append(f"s3: bucket {S3_BUCKET}")


def s3_client(boto3=None):
    if boto3 is None:
        import boto3  # pylint: disable=import-outside-toplevel,redefined-outer-name
    return boto3.client("s3", endpoint_url=S3_URL, aws_access_key_id=S3_ACCESS_KEY,
                        aws_secret_access_key=S3_SECRET_KEY, region_name=S3_REGION)
