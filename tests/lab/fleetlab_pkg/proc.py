"""Small process, file and port helpers: running commands, starting daemons, reading /proc."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .config import CLEAN_PATH, MARKER, STATE, LabError


# --- commands and daemons ------------------------------------------------------------------------

def daemon_env(extra: dict | None = None) -> dict:
    return {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": "/root", MARKER: str(STATE),
            # pg_ctlcluster would hand over to systemctl if it believed systemd ran the machine.
            "_SYSTEMCTL_SKIP_REDIRECT": "1", **(extra or {})}


def run(cmd, *, input_text=None, check=True, timeout=120, what=None, env: dict | None = None):
    """Run a short command; output goes through temp files, never pipes, because some of these
    commands start daemons that would otherwise keep our pipes (and our caller) open.
    env adds variables (e.g. PGPASSWORD) to this one command's environment."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(
                cmd, input=None if input_text is None else input_text.encode(),
                stdin=subprocess.DEVNULL if input_text is None else None,
                stdout=out, stderr=err, timeout=timeout, env=daemon_env(env), cwd="/", check=False)
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


def spawn(cmd, log: Path, cwd: str | Path = "/") -> subprocess.Popen:
    """Start a long-running process detached from us (own session, no inherited pipes)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as logf:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, env=daemon_env(), cwd=cwd)


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- files ---------------------------------------------------------------------------------------

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


def write_pid(path: Path, pid: int) -> None:
    write_file(path, f"{pid}\n", 0o600)


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


# --- /proc ---------------------------------------------------------------------------------------

def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: state, ppid, ..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def proc_alive(pid: int | None) -> bool:
    """True for a live (non-zombie) process."""
    fields = _stat_fields(pid) if pid else []
    return bool(fields) and fields[0] not in ("Z", "X")


def parent_pid(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[1]) if len(fields) > 1 else 0


def ancestors() -> set:
    seen, pid = set(), os.getpid()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        pid = parent_pid(pid)
    return seen


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


# --- ports ---------------------------------------------------------------------------------------

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
    for pid in all_pids():
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                if os.readlink(fd) in targets:
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
