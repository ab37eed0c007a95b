"""The lab's own records under /var/lib/dbfleet-lab: the lock, what was created outside the
state dir (so `down` removes exactly that), and the per-lab secrets."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from .config import CREATED, SECRETS, STATE, LabError, warn
from .proc import write_file

SECRET_KEYS = ("postgres_password", "replication_password", "backup_password", "pgdg_postgres_password")


class StateLock:
    """flock on the state directory: concurrent `up`s (pytest-xdist workers) take turns.
    Re-checks the inode after locking, because `down` may have removed the directory meanwhile."""

    def __init__(self, create: bool):
        self.create = create
        self.fd = None

    def __enter__(self):
        while True:
            if self.create:
                STATE.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd = os.open(STATE, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                return None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(STATE).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)
            if not self.create:
                return None

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)


# --- mount targets created on the real machine ---------------------------------------------------

def load_created() -> list[str]:
    try:
        return json.loads(CREATED.read_text())
    except (OSError, ValueError):
        return []


def ensure_real_target(path: str, is_file: bool) -> None:
    """Make a bind-mount target exist on the real machine, recording what we create
    (before creating it) so `down` removes exactly that and nothing else."""
    missing = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        p = p.parent
    if not missing:
        return
    created = load_created()
    for p in reversed(missing):
        created.append(str(p))
        write_file(CREATED, json.dumps(created, indent=1) + "\n", 0o600)
        if is_file and p == Path(path):
            p.touch(mode=0o644)
        else:
            p.mkdir(mode=0o755)


def remove_created() -> None:
    """Undo ensure_real_target: newest first, and only what is still empty."""
    for path in reversed(load_created()):
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            elif os.path.isfile(path) and os.path.getsize(path) == 0:
                os.unlink(path)
            elif os.path.exists(path):
                warn(f"left {path} in place: it is no longer empty")
        except OSError as exc:
            warn(f"left {path} in place: {exc.strerror}")


# --- secrets -------------------------------------------------------------------------------------

def load_secrets(create: bool = True) -> dict:
    try:
        data = json.loads(SECRETS.read_text())
        if all(data.get(key) for key in SECRET_KEYS):
            return data
    except (OSError, ValueError):
        data = {}
    if not create:
        raise LabError(f"{SECRETS} is missing: the lab is not up (run: tests/lab/fleetlab up)")
    for key in SECRET_KEYS:  # keys a lab made by an older fleetlab lacks are added, the rest kept
        data.setdefault(key, secrets.token_urlsafe(18))
    write_file(SECRETS, json.dumps(data, indent=1) + "\n", 0o600)
    return data


def secrets_digest(sec: dict, keys: tuple[str, ...]) -> str:
    """Fingerprint of the secrets a cluster was given, so `up` notices when they change."""
    return hashlib.sha256(json.dumps([sec[k] for k in keys]).encode()).hexdigest()[:16]


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """SCRAM-SHA-256 verifier computed here, so the clear-text password never reaches the
    server (nor its logs); PostgreSQL stores a pre-hashed password as given."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
