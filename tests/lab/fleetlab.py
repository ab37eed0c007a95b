"""Fleet lab: a small PostgreSQL fleet on one machine, for dbfleet.postgresql's tests.

Four "hosts" on loopback addresses, each a mount + UTS namespace holding its own sshd, cron
and (for the database hosts) PostgreSQL 15, with per-host directories bind-mounted over the
usual paths; plus an S3 endpoint (moto's server mode). Run as root:

    fleetlab.py up | down | status [--json]
    fleetlab.py exec HOST -- CMD...      run CMD inside HOST's namespaces
    fleetlab.py stop-pg HOST | start-pg HOST

Only the standard library is used, except boto3 (imported lazily) to create the bucket.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import errno
import fcntl
import grp
import hashlib
import hmac
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab" / "hosts.yml"
STATE = Path("/var/lib/dbfleet-lab")
RUN = STATE / "run"
LOGS = STATE / "logs"
KEY = STATE / "ssh" / "id_ed25519"
SECRETS = STATE / "secrets.json"
CREATED = STATE / "created.json"

# Every process the lab starts carries this variable, so `down` can find its children
# (postgres backends, archive_command, ...) even if some record got lost.
MARKER = "DBFLEET_LAB_MEMBER"

PG_VERSION = "15"
PG_BIN = "/usr/lib/postgresql/15/bin"
PG_DATA = "/var/lib/postgresql/15/main"
PG_CONF = "/etc/postgresql/15/main"
PG_PORT = 5432
PG_LOG = "/var/log/postgresql/postgresql-15-main.log"
WAL_ARCHIVE = "/srv/wal-archive"
REPL_PASSFILE = "/var/lib/postgresql/.replicator.pgpass"

S3_ADDR = "127.0.0.15"
S3_PORT = 9000
S3_URL = f"http://{S3_ADDR}:{S3_PORT}"
S3_BUCKET = "dbfleet-offsite"
S3_ACCESS_KEY = "dbfleet-lab"
S3_SECRET_KEY = "dbfleet-lab-secret"
S3_REGION = "us-east-1"

SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Host:
    name: str
    addr: str
    role: str  # primary | replica | backup

    @property
    def is_db(self) -> bool:
        return self.role in ("primary", "replica")

    @property
    def root(self) -> Path:
        """This host's private files as seen from the real machine."""
        return STATE / "hosts" / self.name / "root"

    def path(self, inside: str) -> Path:
        """Where a path inside the host lives on the real machine."""
        return self.root / inside.lstrip("/")

    @property
    def tag(self) -> str:
        # argv[0] of the namespace holder: names the host and the lab in `ps`.
        return f"dbfleet-lab:{self.name}:{STATE}"


HOSTS = (
    Host("db-primary", "127.0.0.11", "primary"),
    Host("db-replica-1", "127.0.0.12", "replica"),
    Host("db-replica-2", "127.0.0.13", "replica"),
    Host("backup-box", "127.0.0.14", "backup"),
)
BY_NAME = {h.name: h for h in HOSTS}
PRIMARY = HOSTS[0]
REPLICAS = tuple(h for h in HOSTS if h.role == "replica")
LAB_ADDRS = tuple(h.addr for h in HOSTS) + (S3_ADDR,)
LAB_ADDR_RE = re.compile(r"(?<![\d.])(?:" + "|".join(re.escape(a) for a in LAB_ADDRS) + r")(?![\d])")

# Per-host directories bind-mounted over these paths: (path, owner, group, mode), as Debian has them.
HOST_DIRS = (
    ("/srv", "root", "root", 0o755),
    ("/var/lib/postgresql", "postgres", "postgres", 0o755),
    ("/etc/postgresql", "postgres", "postgres", 0o755),
    ("/run/postgresql", "postgres", "postgres", 0o2775),
    ("/var/log/postgresql", "root", "postgres", 0o1775),
    ("/etc/cron.d", "root", "root", 0o755),
    ("/var/spool/cron/crontabs", "root", "crontab", 0o1730),
    ("/opt/dbfleet", "root", "root", 0o755),
    ("/etc/dbfleet", "root", "root", 0o755),
    ("/var/lib/dbfleet", "root", "root", 0o755),
    ("/var/log/dbfleet", "root", "root", 0o755),
    # Lab extras: each host has its own host keys and sshd_config ...
    ("/etc/ssh", "root", "root", 0o755),
)
# ... its own /etc/hosts (knows the lab names) and a quiet /etc/crontab (the machine's
# hourly/daily run-parts would otherwise run once per lab host).
HOST_FILES = ("/etc/hosts", "/etc/crontab")

# Command -> Debian package, checked before anything starts.
REQUIRED = (
    (f"{PG_BIN}/postgres", "postgresql-15"),
    (f"{PG_BIN}/initdb", "postgresql-15"),
    (f"{PG_BIN}/psql", "postgresql-client-15"),
    (f"{PG_BIN}/pg_basebackup", "postgresql-client-15"),
    ("/usr/bin/pg_createcluster", "postgresql-common"),
    ("/usr/bin/pg_ctlcluster", "postgresql-common"),
    ("/usr/sbin/sshd", "openssh-server"),
    ("/usr/lib/openssh/sftp-server", "openssh-sftp-server"),
    ("/usr/bin/ssh", "openssh-client"),
    ("/usr/bin/ssh-keygen", "openssh-client"),
    ("/usr/sbin/cron", "cron"),
    ("/usr/bin/unshare", "util-linux"),
    ("/usr/bin/nsenter", "util-linux"),
    ("/usr/sbin/runuser", "util-linux"),
    ("/bin/mount", "mount"),
    ("/bin/hostname", "hostname"),
)


class LabError(Exception):
    """A failure with a message meant for the person running the lab."""


def say(msg: str) -> None:
    print(msg, flush=True)


def warn(msg: str) -> None:
    print(f"fleetlab: warning: {msg}", file=sys.stderr, flush=True)


# --- small process and file helpers ------------------------------------------------------------

def daemon_env() -> dict:
    return {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": "/root", MARKER: str(STATE),
            # pg_ctlcluster would hand over to systemctl if it believed systemd ran the machine.
            "_SYSTEMCTL_SKIP_REDIRECT": "1"}


def run(cmd, *, input_text=None, check=True, timeout=120, what=None):
    """Run a short command; output goes through temp files, never pipes, because some of these
    commands start daemons that would otherwise keep our pipes (and our caller) open."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(
                cmd, input=None if input_text is None else input_text.encode(),
                stdin=subprocess.DEVNULL if input_text is None else None,
                stdout=out, stderr=err, timeout=timeout, env=daemon_env(), cwd="/", check=False)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{what or cmd[0]} did not finish within {timeout}s") from exc
        out.seek(0)
        err.seek(0)
        res = subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode(errors="replace"),
                                          err.read().decode(errors="replace"))
    if check and res.returncode != 0:
        detail = (res.stderr.strip() or res.stdout.strip())[-2000:]
        raise LabError(f"{what or ' '.join(map(str, cmd))} failed (exit {res.returncode}): {detail}")
    return res


def spawn(cmd, log: Path) -> subprocess.Popen:
    """Start a long-running process detached from us (own session, no inherited pipes)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as logf:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, env=daemon_env(), cwd="/")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def write_file(path: Path, content: str, mode: int = 0o644, owner: str = "root", group: str | None = None) -> bool:
    """Write atomically if the content differs; returns whether it changed."""
    try:
        if path.read_text() == content:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as fh:
        fh.write(content)
    os.chmod(tmp, mode)
    os.chown(tmp, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group or owner).gr_gid)
    os.replace(tmp, path)
    return True


def make_dir(path: Path, owner: str = "root", group: str = "root", mode: int = 0o755) -> None:
    if path.is_dir():
        return
    path.mkdir(parents=True)
    os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
    os.chmod(path, mode)  # after mkdir: the umask would eat setgid/sticky bits


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def proc_alive(pid: int | None) -> bool:
    """True for a live (non-zombie) process."""
    if not pid:
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X")


def proc_comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def mnt_ns(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


def has_marker(pid: int) -> bool:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{MARKER}={STATE}".encode() in env.split(b"\0")


def port_free(addr: str, port: int) -> bool:
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, port))
        return True
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        raise
    finally:
        sock.close()


def port_owner(addr: str, port: int) -> tuple[int, str] | None:
    """Which process listens on addr:port (or on a wildcard address covering it)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            ip_hex, port_hex = cols[1].split(":")
            if cols[3] != "0A" or int(port_hex, 16) != port:
                continue
            if len(ip_hex) == 8:
                ip = socket.inet_ntoa(bytes.fromhex(ip_hex)[::-1])
            else:
                ip = "::" if set(ip_hex) == {"0"} else ip_hex
            if ip in (addr, "0.0.0.0", "::"):
                inodes.add(cols[9])
    targets = {f"socket:[{i}]" for i in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in targets:
                    pid = int(entry.name)
                    return pid, " ".join(proc_cmdline(pid))
        except OSError:
            continue
    return None


def ensure_port(addr: str, port: int, what: str) -> None:
    if port_free(addr, port):
        return
    owner = port_owner(addr, port)
    who = f"pid {owner[0]} ({owner[1][:120]})" if owner else "another process"
    raise LabError(f"{addr}:{port} is already in use by {who}, which is not part of the fleet lab; "
                   f"{what} needs it. Stop that process or make it listen on other addresses.")


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --- lab state -----------------------------------------------------------------------------------

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


def load_secrets(create: bool = True) -> dict:
    try:
        data = json.loads(SECRETS.read_text())
        if data.get("postgres_password") and data.get("replication_password") and data.get("backup_password"):
            return data
    except (OSError, ValueError):
        data = {}
    if not create:
        raise LabError(f"{SECRETS} is missing: the lab is not up (run: tests/lab/fleetlab up)")
    for key in ("postgres_password", "replication_password", "backup_password"):
        data.setdefault(key, secrets.token_urlsafe(18))
    write_file(SECRETS, json.dumps(data, indent=1) + "\n", 0o600)
    return data


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


# --- hosts: namespaces, sshd, cron ---------------------------------------------------------------

def holder_pid(h: Host) -> int | None:
    pid = read_pid(RUN / f"{h.name}.holder.pid")
    if pid and proc_alive(pid) and proc_cmdline(pid)[:1] == [h.tag]:
        return pid
    return None


def recorded_ns(h: Host) -> int | None:
    return read_pid(RUN / f"{h.name}.mntns")


def in_host(h: Host, pid: int | None, comm: str | None = None) -> bool:
    """pid is alive, inside h's mount namespace, and (optionally) has the given comm."""
    ns = recorded_ns(h)
    return bool(pid and ns and proc_alive(pid) and mnt_ns(pid) == ns and (comm is None or proc_comm(pid) == comm))


def ns_prefix(pid: int) -> list[str]:
    return ["nsenter", f"--mount=/proc/{pid}/ns/mnt", f"--uts=/proc/{pid}/ns/uts", "--"]


def host_cmd(h: Host, cmd: list[str], user: str | None = None) -> list[str]:
    pid = holder_pid(h)
    if not pid:
        raise LabError(f"host {h.name} is not up (run: tests/lab/fleetlab up)")
    return ns_prefix(pid) + (["runuser", "-u", user, "--"] if user else []) + list(cmd)


def run_in(h: Host, cmd: list[str], user: str | None = None, **kw):
    kw.setdefault("what", f"{h.name}: {' '.join(cmd)}")
    return run(host_cmd(h, cmd, user), **kw)


def prepare_host_files(h: Host, pubkey: str) -> bool:
    """Create the host's private tree (idempotent); returns whether sshd_config changed."""
    for path, owner, group, mode in HOST_DIRS:
        make_dir(h.path(path), owner, group, mode)
    if h.is_db:
        make_dir(h.path(WAL_ARCHIVE), "postgres", "postgres", 0o750)
    if h.role == "backup":
        make_dir(h.path("/srv/offsite"))

    ssh_dir = h.path("/etc/ssh")
    for name in ("ssh_config", "moduli"):  # the client config and DH groups; never the machine's host keys
        if Path("/etc/ssh", name).is_file() and not (ssh_dir / name).exists():
            shutil.copy2(Path("/etc/ssh", name), ssh_dir / name)
    if Path("/etc/ssh/ssh_config.d").is_dir() and not (ssh_dir / "ssh_config.d").exists():
        shutil.copytree("/etc/ssh/ssh_config.d", ssh_dir / "ssh_config.d")
    hostkey = ssh_dir / "ssh_host_ed25519_key"
    if not hostkey.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{h.name}", "-f", str(hostkey)])
    write_file(ssh_dir / "lab_authorized_keys", pubkey, 0o644)
    changed = write_file(ssh_dir / "sshd_config", f"""\
# sshd of fleet-lab host {h.name} (generated by tests/lab/fleetlab.py).
# ListenAddress {h.addr}:22 is passed with -o on the command line, so `ps` shows which host it is.
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile /etc/ssh/lab_authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes yes
X11Forwarding no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
# Ansible forks open many sessions at once.
MaxStartups 64:30:128
MaxSessions 64
Subsystem sftp /usr/lib/openssh/sftp-server
""")
    try:
        hosts = Path("/etc/hosts").read_text()
    except OSError:
        hosts = "127.0.0.1 localhost\n"
    lab_names = "".join(f"{x.addr} {x.name}\n" for x in HOSTS)
    write_file(h.path("/etc/hosts"), f"{hosts.rstrip()}\n# fleet lab\n{lab_names}", 0o644)
    write_file(h.path("/etc/crontab"), f"""\
# /etc/crontab of fleet-lab host {h.name}. The machine's hourly/daily run-parts jobs are left
# out on purpose; schedules belong in /etc/cron.d or crontab -e.
SHELL=/bin/sh
PATH={CLEAN_PATH}
""", 0o644)

    binds = "\n".join(f"mount --bind {h.path(d[0])} {d[0]}" for d in HOST_DIRS)
    binds += "\n" + "\n".join(f"mount --bind {h.path(p)} {p}" for p in HOST_FILES)
    write_file(STATE / "hosts" / h.name / "ns-setup.sh", f"""\
# First process of fleet-lab host {h.name}'s mount+UTS namespace: sets up the host's view of
# the file system, then stays as the namespace's holder (nsenter targets it).
set -eu
mount --make-rprivate /
# A private /run: per-host /run/sshd.pid, /run/crond.pid (Debian cron refuses a second
# instance machine-wide otherwise) and /run/lock.
mount -t tmpfs -o mode=0755,nosuid,nodev,size=64m dbfleet-lab-run /run
mkdir -m 0755 /run/sshd /run/mount /run/postgresql
mkdir -m 1777 /run/lock
ln -s /dev/shm /run/shm
{binds}
hostname {h.name}
# Hide the lab's state (other hosts' files, the controller key) from inside the host.
mount -t tmpfs -o mode=0700,size=1m dbfleet-lab-hidden {STATE}
exec -a {h.tag} sleep infinity
""", 0o700)
    return changed


def forget_dead_hosts() -> None:
    """Clear the records of hosts whose holder is gone (a crash, a reboot, a state dir copied
    from another machine): stop what is left in their namespaces, then drop their pid and
    namespace files. Runs before any host starts: namespace inode numbers are reused, so a
    stale record checked while new hosts start could name a new host's namespace."""
    dead = [h for h in HOSTS if not holder_pid(h)]
    stale = {recorded_ns(h) for h in dead} & lab_namespaces()
    if stale:
        signal_and_wait([p for p in all_pids() if mnt_ns(p) in stale], 5)
    for h in dead:
        for kind in ("holder.pid", "mntns", "sshd.pid", "cron.pid"):
            (RUN / f"{h.name}.{kind}").unlink(missing_ok=True)


def start_holder(h: Host) -> int:
    proc = spawn(["unshare", "--mount", "--uts", "--propagation", "private",
                  "/bin/bash", str(STATE / "hosts" / h.name / "ns-setup.sh")], LOGS / f"{h.name}-ns.log")

    def ready():
        return proc.poll() is not None or proc_cmdline(proc.pid)[:1] == [h.tag]
    wait_for(ready, 10, 0.01)
    if proc.poll() is not None or proc_cmdline(proc.pid)[:1] != [h.tag]:
        raise LabError(f"setting up the namespace of {h.name} failed; log {LOGS / (h.name + '-ns.log')}:\n"
                       + tail(LOGS / f"{h.name}-ns.log"))
    write_file(RUN / f"{h.name}.holder.pid", f"{proc.pid}\n", 0o600)
    write_file(RUN / f"{h.name}.mntns", f"{mnt_ns(proc.pid)}\n", 0o600)
    return proc.pid


def sshd_pid(h: Host) -> int | None:
    pid = read_pid(RUN / f"{h.name}.sshd.pid")
    return pid if in_host(h, pid, "sshd") else None


def ssh_banner(addr: str, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((addr, 22), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def start_sshd(h: Host) -> None:
    ensure_port(h.addr, 22, f"sshd of {h.name}")
    log = LOGS / f"{h.name}-sshd.log"
    proc = spawn(host_cmd(h, ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config",
                              "-o", f"ListenAddress={h.addr}:22"]), log)
    if not wait_for(lambda: proc.poll() is not None or ssh_banner(h.addr, 0.5), 10) or proc.poll() is not None:
        raise LabError(f"sshd of {h.name} did not start; log {log}:\n{tail(log)}")
    write_file(RUN / f"{h.name}.sshd.pid", f"{proc.pid}\n", 0o600)


def cron_pid(h: Host) -> int | None:
    pid = read_pid(RUN / f"{h.name}.cron.pid")
    return pid if in_host(h, pid, "cron") else None


def start_cron(h: Host) -> None:
    log = LOGS / f"{h.name}-cron.log"
    proc = spawn(host_cmd(h, ["/usr/sbin/cron", "-f"]), log)
    holder = holder_pid(h)
    pidfile = Path(f"/proc/{holder}/root/run/crond.pid")
    if not wait_for(lambda: proc.poll() is not None or read_pid(pidfile) == proc.pid, 5) or proc.poll() is not None:
        raise LabError(f"cron of {h.name} did not start; log {log}:\n{tail(log)}")
    write_file(RUN / f"{h.name}.cron.pid", f"{proc.pid}\n", 0o600)


def ensure_host(h: Host, pubkey: str, changes: list) -> None:
    sshd_config_changed = prepare_host_files(h, pubkey)
    if not holder_pid(h):
        start_holder(h)
        changes.append(f"{h.name}: namespace")
    if sshd_config_changed and sshd_pid(h):
        signal_and_wait([sshd_pid(h)], 5)
    if not sshd_pid(h):
        start_sshd(h)
        changes.append(f"{h.name}: sshd")
    if not cron_pid(h):
        start_cron(h)
        changes.append(f"{h.name}: cron")


# --- PostgreSQL ----------------------------------------------------------------------------------

def postmaster_pid(h: Host) -> int | None:
    pid = read_pid(h.path(f"{PG_DATA}/postmaster.pid"))
    return pid if in_host(h, pid, "postgres") else None


def system_identifier(h: Host) -> int | None:
    # ControlFileData starts with the 64-bit system identifier.
    try:
        with open(h.path(f"{PG_DATA}/global/pg_control"), "rb") as fh:
            return struct.unpack("<Q", fh.read(8))[0]
    except (OSError, struct.error):
        return None


def psql(h: Host, sql: str, db: str = "postgres", check: bool = True, timeout: int = 120):
    """Run SQL (via stdin, so nothing secret shows in `ps`) as postgres over the host's socket."""
    return run_in(h, [f"{PG_BIN}/psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
                      "-d", db, "-f", "-"], user="postgres", input_text=sql, check=check, timeout=timeout,
                  what=f"psql on {h.name}")


def lab_conf(h: Host) -> str:
    return f"""\
# Fleet-lab settings for {h.name} (generated by tests/lab/fleetlab.py). The same on every
# database host, so a promoted replica archives and serves replicas like the primary.
listen_addresses = '{h.addr}'
wal_level = replica
max_wal_senders = 10
wal_keep_size = '256MB'
hot_standby = on
wal_retrieve_retry_interval = '1s'
archive_mode = on
archive_command = 'test ! -f {WAL_ARCHIVE}/%f && cp %p {WAL_ARCHIVE}/%f'
"""


PG_HBA = """\
# Fleet-lab pg_hba.conf (generated by tests/lab/fleetlab.py)
# TYPE  DATABASE     USER      ADDRESS        METHOD
local   all          postgres                 peer map=lab
local   all          all                      peer
host    all          all       127.0.0.0/8    scram-sha-256
host    replication  all       127.0.0.0/8    scram-sha-256
"""

PG_IDENT = """\
# Fleet-lab pg_ident.conf: root and postgres on the host may connect as postgres.
# MAPNAME  SYSTEM-USERNAME  PG-USERNAME
lab        root             postgres
lab        postgres         postgres
"""

APP_DATA_SQL = """\
CREATE DATABASE app_prod;
\\connect app_prod
CREATE TABLE customers (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL
);
INSERT INTO customers
SELECT g, 'Customer ' || g, 'customer' || g || '@example.com',
       timestamptz '2024-01-01 00:00:00+00' + g * interval '7 minutes'
FROM generate_series(1, 20000) AS g;
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    amount numeric(10, 2) NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO orders
SELECT g, 1 + g % 20000, ((g * 37) % 50000) / 100.0, (ARRAY['new', 'paid', 'shipped'])[1 + g % 3],
       timestamptz '2024-01-01 00:00:00+00' + g * interval '90 seconds'
FROM generate_series(1, 100000) AS g;
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
ANALYZE;
"""


def roles_sql(sec: dict) -> str:
    return f"""\
ALTER ROLE postgres PASSWORD '{scram_verifier(sec["postgres_password"])}';
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') THEN CREATE ROLE replicator; END IF;
END $$;
ALTER ROLE replicator WITH LOGIN REPLICATION PASSWORD '{scram_verifier(sec["replication_password"])}';
"""


def secrets_digest(sec: dict) -> str:
    return hashlib.sha256(json.dumps(sec, sort_keys=True).encode()).hexdigest()[:16]


def pg_ready_marker(h: Host) -> Path:
    return STATE / "hosts" / h.name / "pg-ready.json"


def read_marker(h: Host) -> dict:
    try:
        return json.loads(pg_ready_marker(h).read_text())
    except (OSError, ValueError):
        return {}


def stop_pg(h: Host, mode: str = "fast") -> None:
    pid = postmaster_pid(h)
    if not pid:
        return
    res = run_in(h, [f"{PG_BIN}/pg_ctl", "stop", "-D", PG_DATA, "-m", mode, "-w", "-t", "60", "-s"],
                 user="postgres", check=False, timeout=90)
    if postmaster_pid(h):
        # No usable cluster config (half-built host): signal the postmaster directly.
        os.kill(pid, signal.SIGINT if mode != "immediate" else signal.SIGQUIT)
        if not wait_for(lambda: not proc_alive(pid), 30):
            raise LabError(f"PostgreSQL on {h.name} (pid {pid}) did not stop: {res.stderr.strip()}")


def pg_remnants(h: Host) -> list[int]:
    """Leftovers of a crashed server: its children, or its not-yet-reaped postmaster, which
    make a new postmaster believe the old one still runs."""
    ns = recorded_ns(h)
    found = [p for p in all_pids() if proc_alive(p) and mnt_ns(p) == ns and proc_comm(p) == "postgres"]
    old = read_pid(h.path(f"{PG_DATA}/postmaster.pid"))
    if old and Path(f"/proc/{old}").exists() and not proc_alive(old):
        found.append(old)  # a zombie
    return found


def start_pg(h: Host) -> None:
    if postmaster_pid(h):
        return
    if not wait_for(lambda: not pg_remnants(h), 15, 0.1):
        signal_and_wait([p for p in pg_remnants(h) if proc_alive(p)], 5)
        wait_for(lambda: not pg_remnants(h), 10, 0.1)
    ensure_port(h.addr, PG_PORT, f"PostgreSQL of {h.name}")
    # pg_ctl as pg_ctlcluster runs it (same server command line, so pg_lsclusters & co. see the
    # cluster), without pg_ctlcluster's fixed ~2 s of readiness probing.
    res = run_in(h, [f"{PG_BIN}/pg_ctl", "start", "-D", PG_DATA, "-l", PG_LOG, "-w", "-t", "90", "-s",
                     "-o", f"-c config_file={PG_CONF}/postgresql.conf"], user="postgres", check=False, timeout=120)
    if res.returncode != 0 or not postmaster_pid(h):
        raise LabError(f"PostgreSQL on {h.name} did not start ({res.stderr.strip() or res.stdout.strip()}); "
                       f"log {h.path(PG_LOG)}:\n{tail(h.path(PG_LOG))}")


def wipe_cluster(h: Host) -> None:
    stop_pg(h, "immediate")
    for inside in ("/etc/postgresql/15", "/var/lib/postgresql/15"):
        shutil.rmtree(h.path(inside), ignore_errors=True)
    pg_ready_marker(h).unlink(missing_ok=True)


def write_pg_config(h: Host) -> None:
    conf = h.path(PG_CONF)
    write_file(conf / "conf.d" / "lab.conf", lab_conf(h), 0o644, "postgres")
    write_file(conf / "pg_hba.conf", PG_HBA, 0o640, "postgres")
    write_file(conf / "pg_ident.conf", PG_IDENT, 0o640, "postgres")


def build_primary(sec: dict) -> None:
    h = PRIMARY
    wipe_cluster(h)
    # Debian's own tooling, so the host looks like any Debian database server (pg_lsclusters ...).
    run_in(h, ["pg_createcluster", PG_VERSION, "main", "--port", str(PG_PORT), "--locale", "C.UTF-8",
               "--", "--data-checksums", "--no-sync"], timeout=120)
    write_pg_config(h)
    start_pg(h)
    psql(h, roles_sql(sec))
    psql(h, APP_DATA_SQL)
    write_file(pg_ready_marker(h), json.dumps({"sysid": system_identifier(h), "secrets": secrets_digest(sec)}) + "\n", 0o600)


def build_replica(h: Host, sec: dict) -> None:
    wipe_cluster(h)
    src, dst = PRIMARY.path(PG_CONF), h.path(PG_CONF)
    make_dir(dst.parent.parent, "postgres", "postgres")
    shutil.copytree(src, dst, symlinks=True)
    for path in [dst, *dst.rglob("*")]:
        os.chown(path, pwd.getpwnam("postgres").pw_uid, grp.getgrnam("postgres").gr_gid, follow_symlinks=False)
    write_pg_config(h)
    make_dir(h.path("/var/lib/postgresql/15"), "postgres", "postgres")
    write_file(h.path(REPL_PASSFILE), f"{PRIMARY.addr}:{PG_PORT}:*:replicator:{sec['replication_password']}\n",
               0o600, "postgres")
    log = h.path(PG_LOG)
    if not log.exists():
        write_file(log, "", 0o640, "postgres", "adm")
    conninfo = (f"host={PRIMARY.addr} port={PG_PORT} user=replicator passfile={REPL_PASSFILE} "
                f"application_name={h.name}")
    run_in(h, [f"{PG_BIN}/pg_basebackup", "-d", conninfo, "-D", PG_DATA, "-R", "-c", "fast", "-X", "stream",
               "--no-sync", "-w"], user="postgres", timeout=300, what=f"pg_basebackup for {h.name}")
    # -R wrote a primary_conninfo of its own; state ours (named after the host, password in the passfile).
    auto = h.path(f"{PG_DATA}/postgresql.auto.conf")
    kept = [line for line in auto.read_text().splitlines() if not line.startswith("primary_conninfo")]
    kept.append(f"primary_conninfo = '{conninfo}'")
    write_file(auto, "\n".join(kept) + "\n", 0o600, "postgres")
    start_pg(h)
    write_file(pg_ready_marker(h), json.dumps({"sysid": system_identifier(h), "secrets": secrets_digest(sec)}) + "\n", 0o600)


def primary_ok() -> bool:
    marker = read_marker(PRIMARY)
    return bool(marker.get("sysid")) and marker["sysid"] == system_identifier(PRIMARY) \
        and not PRIMARY.path(f"{PG_DATA}/standby.signal").exists()


def replica_ok(h: Host) -> bool:
    marker = read_marker(h)
    sysid = system_identifier(h)
    return bool(sysid) and marker.get("sysid") == sysid == system_identifier(PRIMARY) \
        and h.path(f"{PG_DATA}/standby.signal").exists()


def streaming_replicas() -> dict:
    res = psql(PRIMARY, "SELECT application_name, state FROM pg_stat_replication;", check=False, timeout=10)
    if res.returncode != 0:
        return {}
    return dict(line.split("|", 1) for line in res.stdout.splitlines() if "|" in line)


def ensure_postgres(sec: dict, changes: list) -> None:
    if not primary_ok():
        build_primary(sec)
        changes.append("db-primary: new cluster")
    else:
        if not postmaster_pid(PRIMARY):
            write_pg_config(PRIMARY)
            start_pg(PRIMARY)
            changes.append("db-primary: postgres started")
        if read_marker(PRIMARY).get("secrets") != secrets_digest(sec):
            psql(PRIMARY, roles_sql(sec))
            marker = read_marker(PRIMARY) | {"secrets": secrets_digest(sec)}
            write_file(pg_ready_marker(PRIMARY), json.dumps(marker) + "\n", 0o600)
            changes.append("db-primary: passwords")

    def one(h: Host) -> str | None:
        if not replica_ok(h):
            build_replica(h, sec)
            return f"{h.name}: new replica"
        write_file(h.path(REPL_PASSFILE), f"{PRIMARY.addr}:{PG_PORT}:*:replicator:{sec['replication_password']}\n",
                   0o600, "postgres")
        if not postmaster_pid(h):
            start_pg(h)
            return f"{h.name}: postgres started"
        return None

    with concurrent.futures.ThreadPoolExecutor(len(REPLICAS)) as pool:
        changes.extend(c for c in pool.map(one, REPLICAS) if c)

    want = {h.name for h in REPLICAS}

    def all_streaming():
        repl = streaming_replicas()
        return all(repl.get(n) == "streaming" for n in want)
    if wait_for(all_streaming, 20, 0.1):
        return
    # A replica that cannot catch up (e.g. the WAL it needs is gone): rebuild it once.
    repl = streaming_replicas()
    for h in REPLICAS:
        if repl.get(h.name) != "streaming":
            warn(f"{h.name} is not streaming ({repl.get(h.name, 'not connected')}); rebuilding it")
            build_replica(h, sec)
            changes.append(f"{h.name}: rebuilt")
    if not wait_for(all_streaming, 30, 0.2):
        repl = streaming_replicas()
        bad = [h for h in REPLICAS if repl.get(h.name) != "streaming"]
        raise LabError("replicas not streaming: " + ", ".join(f"{h.name} ({repl.get(h.name, 'not connected')})"
                                                              for h in bad)
                       + "".join(f"\n--- {h.path(PG_LOG)}:\n{tail(h.path(PG_LOG))}" for h in bad))


# --- S3 (moto) -------------------------------------------------------------------------------------

def moto_command() -> list[str]:
    venv_server = REPO / ".venv" / "bin" / "moto_server"
    if venv_server.exists():
        return [str(venv_server)]
    found = shutil.which("moto_server")
    if found:
        return [found]
    import importlib.util  # pylint: disable=import-outside-toplevel
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


def start_moto(changes: list) -> subprocess.Popen | None:
    if moto_pid() and s3_request("GET", "/"):
        return None
    if moto_pid():
        signal_and_wait([moto_pid()], 5)
    ensure_port(S3_ADDR, S3_PORT, "the S3 endpoint (moto)")
    (STATE / "s3").mkdir(mode=0o700, exist_ok=True)
    cmd = moto_command() + ["-H", S3_ADDR, "-p", str(S3_PORT)]
    log = LOGS / "moto.log"
    with open(log, "ab") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, env=daemon_env(), cwd=STATE / "s3")
    write_file(RUN / "moto.pid", f"{proc.pid}\n", 0o600)
    changes.append("s3: moto server")
    return proc


def ensure_bucket(proc: subprocess.Popen | None, changes: list) -> None:
    if not wait_for(lambda: (proc is not None and proc.poll() is not None) or s3_request("GET", "/"), 30, 0.1) \
            or (proc is not None and proc.poll() is not None):
        raise LabError(f"the S3 endpoint did not come up at {S3_URL}; log {LOGS / 'moto.log'}:\n{tail(LOGS / 'moto.log')}")
    head = s3_request("HEAD", f"/{S3_BUCKET}")
    versioning = s3_request("GET", f"/{S3_BUCKET}?versioning")
    if head and head[0] == 200 and versioning and b"<Status>Enabled</Status>" in versioning[1]:
        return
    try:
        import boto3  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise LabError("boto3 is needed to create the lab bucket: use the repository venv (.venv) "
                       "or install the Debian package python3-boto3") from exc
    s3 = s3_client(boto3)
    if not (head and head[0] == 200):
        s3.create_bucket(Bucket=S3_BUCKET)
    s3.put_bucket_versioning(Bucket=S3_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    changes.append(f"s3: bucket {S3_BUCKET}")


def s3_client(boto3=None):
    if boto3 is None:
        import boto3  # pylint: disable=import-outside-toplevel,redefined-outer-name
    return boto3.client("s3", endpoint_url=S3_URL, aws_access_key_id=S3_ACCESS_KEY,
                        aws_secret_access_key=S3_SECRET_KEY, region_name=S3_REGION)


# --- inventory -----------------------------------------------------------------------------------

def inventory_vars(sec: dict) -> dict:
    return {
        "dbfleet_lab": True,
        "dbfleet_lab_state_dir": str(STATE),
        "dbfleet_pg_version": int(PG_VERSION),
        "dbfleet_pg_bin": PG_BIN,
        "dbfleet_pg_data": PG_DATA,
        "dbfleet_pg_port": PG_PORT,
        "dbfleet_primary_host": PRIMARY.addr,
        "dbfleet_wal_archive": WAL_ARCHIVE,
        "dbfleet_backup_dir": "/srv/backups",
        "dbfleet_s3_endpoint_url": S3_URL,
        "dbfleet_s3_bucket": S3_BUCKET,
        "dbfleet_s3_region": S3_REGION,
        "dbfleet_s3_access_key": S3_ACCESS_KEY,
        "dbfleet_s3_secret_key": S3_SECRET_KEY,
        "dbfleet_lab_postgres_password": sec["postgres_password"],
        "dbfleet_lab_replication_password": sec["replication_password"],
        # The backup role's settings for this fleet: its least-privilege PostgreSQL role's password,
        # and off-site copies to the lab's S3 endpoint.
        "backup_pg_password": sec["backup_password"],
        "backup_s3_bucket": S3_BUCKET,
        "backup_s3_endpoint_url": S3_URL,
        "backup_s3_region": S3_REGION,
        "backup_s3_access_key": S3_ACCESS_KEY,
        "backup_s3_secret_key": S3_SECRET_KEY,
    }


def host_vars(h: Host) -> dict:
    extra = {"dbfleet_pg_host": h.addr} if h.is_db else {}
    return {
        **extra,
        "ansible_host": h.addr,
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(KEY),
        "ansible_ssh_common_args": SSH_COMMON_ARGS,
        "ansible_python_interpreter": "/usr/bin/python3",
    }


def yaml_scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid YAML double-quoted scalar


def render_inventory(sec: dict) -> str:
    out = ["# Fleet-lab inventory, generated by tests/lab/fleetlab.py up; `fleetlab down` removes it.",
           "all:", "  vars:"]
    out += [f"    {k}: {yaml_scalar(v)}" for k, v in inventory_vars(sec).items()]
    out.append("  children:")
    groups = (("db", [h for h in HOSTS if h.is_db]), ("primary", [PRIMARY]), ("replica", list(REPLICAS)),
              ("backup", [h for h in HOSTS if h.role == "backup"]))
    described = set()
    for group, members in groups:
        out += [f"    {group}:", "      hosts:"]
        for h in members:
            if h.name in described:  # connection vars once per host; later groups just list it
                out.append(f"        {h.name}:")
                continue
            described.add(h.name)
            out.append(f"        {h.name}:")
            out += [f"          {k}: {yaml_scalar(v)}" for k, v in host_vars(h).items()]
    return "\n".join(out) + "\n"


def write_inventory(sec: dict, changes: list) -> None:
    if not INVENTORY.parent.exists():
        INVENTORY.parent.mkdir(parents=True)
        write_file(STATE / "created-inventory-dir", str(INVENTORY.parent) + "\n", 0o600)
    if write_file(INVENTORY, render_inventory(sec), 0o600):
        changes.append(f"inventory {INVENTORY.relative_to(REPO)}")


# --- process scan (down) -------------------------------------------------------------------------

def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def ancestors() -> set:
    seen, pid = set(), os.getpid()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return seen


def lab_namespaces() -> set:
    """Mount namespaces that are lab hosts: one holding a lab holder, or a recorded one that
    still has a member started by the lab (namespace inode numbers are reused once a namespace
    is gone, so a bare record could name somebody else's namespace)."""
    recorded = {recorded_ns(h) for h in HOSTS} - {None}
    spaces = set()
    for pid in all_pids():
        argv = proc_cmdline(pid)
        if argv and argv[0].startswith("dbfleet-lab:") and argv[0].endswith(f":{STATE}"):
            spaces.add(mnt_ns(pid))
        elif recorded and mnt_ns(pid) in recorded and has_marker(pid):
            spaces.add(mnt_ns(pid))
    return spaces - {None}


def lab_processes() -> dict:
    """pid -> why it belongs to the lab. Only certain members: inside a lab namespace, carrying
    the lab's marker, a holder, or the lab's moto server."""
    spaces, skip, found = lab_namespaces(), ancestors(), {}
    for pid in all_pids():
        if pid in skip or not proc_alive(pid):
            continue
        argv = proc_cmdline(pid)
        args = " ".join(argv)
        if mnt_ns(pid) in spaces:
            found[pid] = "in a lab host namespace"
        elif has_marker(pid):
            found[pid] = "started by the lab"
        elif argv and argv[0].startswith("dbfleet-lab:"):
            found[pid] = "namespace holder"
        elif "moto" in args and S3_ADDR in args and str(S3_PORT) in args:
            found[pid] = "lab S3 server"
    return found


def referencing_processes() -> dict:
    """Processes whose command line mentions the lab state dir or a lab address (reported only:
    e.g. an ssh ControlPersist master to a lab host, which exits once its server is gone)."""
    skip, found = ancestors(), {}
    for pid in all_pids():
        if pid in skip or not proc_alive(pid):
            continue
        args = " ".join(proc_cmdline(pid))
        if str(STATE) in args or LAB_ADDR_RE.search(args):
            found[pid] = args[:160]
    return found


def signal_and_wait(pids, grace: float) -> list[int]:
    """SIGTERM (SIGINT for postmasters: fast shutdown), wait, then SIGKILL what is left."""
    pids = [p for p in pids if proc_alive(p)]
    for pid in pids:
        try:
            postmaster = proc_comm(pid) == "postgres" and proc_comm(parent_pid(pid)) != "postgres"
            os.kill(pid, signal.SIGINT if postmaster else signal.SIGTERM)
        except ProcessLookupError:
            pass
    if not wait_for(lambda: not any(proc_alive(p) for p in pids), grace, 0.05):
        for pid in pids:
            if proc_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        wait_for(lambda: not any(proc_alive(p) for p in pids), 5, 0.05)
    return [p for p in pids if proc_alive(p)]


def parent_pid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def lab_mounts() -> list[str]:
    """Mounts on the real machine under the state dir (there should never be any)."""
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            target = line.split()[4].replace("\\040", " ")
            if target == str(STATE) or target.startswith(f"{STATE}/"):
                found.append(target)
    return found


# --- commands ------------------------------------------------------------------------------------

def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the fleet lab must run as root (it creates mount namespaces, binds port 22 on "
                       "127.0.0.11-14 and runs PostgreSQL as postgres): sudo tests/lab/fleetlab "
                       + " ".join(sys.argv[1:]))


def check_prerequisites() -> None:
    missing = sorted({pkg for path, pkg in REQUIRED if not os.access(path, os.X_OK)})
    for name, pkg in (("postgres", "postgresql-common"), ("sshd", "openssh-server")):
        try:
            pwd.getpwnam(name)
        except KeyError:
            missing.append(pkg)
    try:
        grp.getgrnam("crontab")
    except KeyError:
        missing.append("cron")
    if missing:
        raise LabError("missing Debian packages: " + " ".join(sorted(set(missing)))
                       + f" (apt-get install {' '.join(sorted(set(missing)))})")
    probe = subprocess.run(["/usr/bin/python3", "-c", "import psycopg, boto3"], capture_output=True, check=False)
    if probe.returncode != 0:
        warn("/usr/bin/python3 lacks psycopg or boto3, which the collection's modules need on the hosts: "
             "apt-get install python3-psycopg python3-boto3")


def cmd_up(_args) -> int:
    require_root()
    check_prerequisites()
    started = time.monotonic()
    changes: list[str] = []
    with StateLock(create=True):
        if not (RUN / "lab.json").exists():
            # A fresh state dir: processes of a lab whose state was lost would hold our ports.
            strays = lab_processes()
            if strays:
                warn(f"stopping {len(strays)} process(es) left over from an earlier lab")
                signal_and_wait(list(strays), 5)
        for sub in ("ssh", "hosts", "run", "logs"):
            (STATE / sub).mkdir(mode=0o700, exist_ok=True)
        write_file(RUN / "lab.json", json.dumps({"created": time.time()}) + "\n", 0o600)
        if not KEY.exists() or not KEY.with_suffix(".pub").exists():
            KEY.unlink(missing_ok=True)
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dbfleet-lab-controller", "-f", str(KEY)])
        pubkey = KEY.with_suffix(".pub").read_text()
        sec = load_secrets()
        moto = start_moto(changes)  # moto takes a second or two to import: let it start meanwhile
        for entry in HOST_DIRS:
            if not entry[0].startswith("/run/"):  # /run is a tmpfs inside the hosts
                ensure_real_target(entry[0], is_file=False)
        for path in HOST_FILES:
            ensure_real_target(path, is_file=True)
        forget_dead_hosts()
        with concurrent.futures.ThreadPoolExecutor(len(HOSTS)) as pool:
            list(pool.map(lambda h: ensure_host(h, pubkey, changes), HOSTS))
        ensure_postgres(sec, changes)
        ensure_bucket(moto, changes)
        write_inventory(sec, changes)
    took = time.monotonic() - started
    report = gather_status()
    print_status(report)
    if changes:
        say(f"fleet lab up in {took:.1f}s ({len(changes)} change(s): {', '.join(changes)})")
    else:
        say(f"fleet lab already up, nothing to do ({took:.1f}s)")
    say(f"inventory: {INVENTORY}  ssh key: {KEY}")
    return 0 if report["ok"] else 1


def cmd_down(_args) -> int:
    require_root()
    with StateLock(create=False) as lock:
        if lock is None and not lab_processes():
            if INVENTORY.exists():
                INVENTORY.unlink()
            say("fleet lab is not up; nothing to do")
            return 0
        # Clean PostgreSQL shutdowns first (replicas, then the primary), then everything else.
        for group in (REPLICAS, (PRIMARY,)):
            with concurrent.futures.ThreadPoolExecutor(len(group)) as pool:
                for fut in [pool.submit(stop_pg, h) for h in group if holder_pid(h)]:
                    try:
                        fut.result()
                    except LabError as exc:
                        warn(str(exc))
        procs = lab_processes()
        for name in [f"{h.name}.{kind}" for h in HOSTS for kind in ("holder", "sshd", "cron")] + ["moto"]:
            pid = read_pid(RUN / f"{name}.pid")
            if pid and proc_alive(pid) and (pid in procs or any(s in " ".join(proc_cmdline(pid))
                                                                for s in (str(STATE), S3_ADDR))):
                procs.setdefault(pid, f"pid file {name}.pid")
        survivors = signal_and_wait(list(procs), 5)
        survivors += [p for p in lab_processes() if p not in survivors]
        if survivors:
            raise LabError("these lab processes survived SIGKILL: " + ", ".join(
                f"{p} ({' '.join(proc_cmdline(p))[:80]})" for p in survivors))
        mounts = lab_mounts()
        if mounts:
            raise LabError(f"refusing to delete {STATE}: still mounted: {', '.join(mounts)}")
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
        inv_dir_created = (STATE / "created-inventory-dir").exists()
        if INVENTORY.exists():
            INVENTORY.unlink()
        if inv_dir_created:
            try:
                INVENTORY.parent.rmdir()
            except OSError:
                pass
        if STATE.exists():
            shutil.rmtree(STATE)
    # ssh ControlPersist masters (Ansible's) notice their server is gone within moments.
    wait_for(lambda: not referencing_processes(), 3, 0.1)
    leftovers = referencing_processes()
    for pid, args in leftovers.items():
        warn(f"process {pid} still mentions the lab (not started by it, left alone): {args}")
    say("fleet lab down: processes stopped, state and inventory removed")
    return 0


def gather_status() -> dict:
    s3_up = bool(s3_request("GET", "/"))
    head = s3_request("HEAD", f"/{S3_BUCKET}") if s3_up else None
    vers = s3_request("GET", f"/{S3_BUCKET}?versioning") if s3_up else None

    def one(h: Host) -> dict:
        holder = holder_pid(h)
        info = {"addr": h.addr, "role": h.role, "namespace": bool(holder),
                "sshd": bool(holder and sshd_pid(h) and ssh_banner(h.addr)),
                "cron": bool(holder and cron_pid(h))}
        if h.is_db:
            pg = {"up": False}
            if holder and postmaster_pid(h):
                res = psql(h, "SELECT pg_is_in_recovery(), "
                              "coalesce((SELECT string_agg(application_name || '=' || state, ',' "
                              "ORDER BY application_name) FROM pg_stat_replication), ''), "
                              "coalesce((SELECT status FROM pg_stat_wal_receiver), '');",
                           check=False, timeout=10)
                if res.returncode == 0 and res.stdout.count("|") >= 2:
                    recovery, senders, receiver = res.stdout.strip().split("|", 2)
                    pg = {"up": True, "role": "replica" if recovery == "t" else "primary"}
                    if pg["role"] == "primary":
                        pg["replicas"] = dict(x.split("=", 1) for x in senders.split(",") if "=" in x)
                    else:
                        pg["wal_receiver"] = receiver or "not connected"
            info["postgres"] = pg
            # A host answers for itself: a stopped replica turns that replica red, not the primary.
            info["ok"] = info["sshd"] and info["cron"] and pg["up"] and pg.get("role") == h.role and (
                h.role == "primary" or pg.get("wal_receiver") == "streaming")
        else:
            info["ok"] = info["sshd"] and info["cron"]
        return info

    with concurrent.futures.ThreadPoolExecutor(len(HOSTS)) as pool:
        hosts = dict(zip(BY_NAME, pool.map(one, HOSTS)))
    s3 = {"url": S3_URL, "up": s3_up, "bucket": S3_BUCKET, "bucket_exists": bool(head and head[0] == 200),
          "versioning": bool(vers and b"<Status>Enabled</Status>" in vers[1])}
    s3["ok"] = s3["up"] and s3["bucket_exists"] and s3["versioning"]
    return {"hosts": hosts, "s3": s3, "ok": all(i["ok"] for i in hosts.values()) and s3["ok"],
            "inventory": str(INVENTORY) if INVENTORY.exists() else None}


def print_status(report: dict) -> None:
    def word(flag: bool) -> str:
        return "up" if flag else "DOWN"
    say(f"{'HOST':<13} {'ADDRESS':<11} {'SSHD':<5} {'CRON':<5} POSTGRES")
    for name, info in report["hosts"].items():
        pg = info.get("postgres")
        if pg is None:
            pgtxt = "-"
        elif not pg["up"]:
            pgtxt = "DOWN"
        elif pg["role"] == "primary":
            reps = pg.get("replicas", {})
            pgtxt = "up, primary; replicas: " + (", ".join(f"{k} {v}" for k, v in sorted(reps.items())) or "none")
        else:
            pgtxt = f"up, replica; {pg.get('wal_receiver')}"
        say(f"{name:<13} {info['addr']:<11} {word(info['sshd']):<5} {word(info['cron']):<5} {pgtxt}"
            + ("" if info["ok"] else "   <-- not healthy"))
    s3 = report["s3"]
    s3txt = (f"bucket {s3['bucket']} {'present' if s3['bucket_exists'] else 'MISSING'}, "
             f"versioning {'on' if s3['versioning'] else 'OFF'}") if s3["up"] else "DOWN"
    say(f"{'s3':<13} {S3_URL:<25} {s3txt}")


def cmd_status(args) -> int:
    require_root()
    report = gather_status()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_status(report)
        say("fleet lab: all up" if report["ok"] else "fleet lab: NOT all up (tests/lab/fleetlab up repairs it)")
    return 0 if report["ok"] else 1


def db_host(name: str) -> Host:
    h = BY_NAME.get(name)
    if h is None:
        raise LabError(f"unknown host {name!r}; lab hosts: {', '.join(BY_NAME)}")
    if not h.is_db:
        raise LabError(f"{name} runs no PostgreSQL (database hosts: "
                       f"{', '.join(x.name for x in HOSTS if x.is_db)})")
    return h


def cmd_stop_pg(args) -> int:
    require_root()
    h = db_host(args.host)
    holder_or_fail(h)
    stop_pg(h)
    say(f"PostgreSQL on {h.name} stopped")
    return 0


def cmd_start_pg(args) -> int:
    require_root()
    h = db_host(args.host)
    holder_or_fail(h)
    start_pg(h)
    # Return a healthy lab: wait for whichever streams involve this host.
    running = [r for r in REPLICAS if postmaster_pid(r)] if h.role == "primary" else [h]
    if postmaster_pid(PRIMARY) and not wait_for(
            lambda: all(streaming_replicas().get(r.name) == "streaming" for r in running), 30, 0.2):
        warn("replication did not resume within 30s: " + json.dumps(streaming_replicas()))
    say(f"PostgreSQL on {h.name} started")
    return 0


def holder_or_fail(h: Host) -> int:
    pid = holder_pid(h)
    if not pid:
        raise LabError(f"host {h.name} is not up (run: tests/lab/fleetlab up)")
    return pid


def cmd_exec(argv: list[str]) -> int:
    require_root()
    if not argv or argv[0] not in BY_NAME:
        raise LabError(f"usage: fleetlab exec HOST -- CMD... (hosts: {', '.join(BY_NAME)})")
    h, cmd = BY_NAME[argv[0]], argv[1:]
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    if not cmd:
        raise LabError("fleetlab exec: no command given")
    os.execvp("nsenter", ns_prefix(holder_or_fail(h)) + cmd)
    return 127  # not reached


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["exec"]:
            return cmd_exec(argv[1:])
        parser = argparse.ArgumentParser(prog="fleetlab", description=__doc__.split("\n\n", 1)[0])
        sub = parser.add_subparsers(dest="command", required=True)
        sub.add_parser("up", help="start or repair the lab (idempotent)").set_defaults(func=cmd_up)
        sub.add_parser("down", help="stop everything and remove what the lab created").set_defaults(func=cmd_down)
        st = sub.add_parser("status", help="what runs; exit 0 only if everything is up")
        st.add_argument("--json", action="store_true", help="machine-readable output")
        st.set_defaults(func=cmd_status)
        sub.add_parser("exec", help="fleetlab exec HOST -- CMD...: run CMD inside HOST's namespaces")
        for name, func in (("stop-pg", cmd_stop_pg), ("start-pg", cmd_start_pg)):
            p = sub.add_parser(name, help=f"{name.split('-', maxsplit=1)[0]} one host's PostgreSQL")
            p.add_argument("host", help=", ".join(h.name for h in HOSTS if h.is_db))
            p.set_defaults(func=func)
        args = parser.parse_args(argv)
        return args.func(args)
    except LabError as exc:
        print(f"fleetlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
