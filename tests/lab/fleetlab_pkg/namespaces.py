"""Host namespaces: the holder process that keeps each one alive, entering them (nsenter),
and finding every process and namespace that belongs to the lab."""

from __future__ import annotations

from pathlib import Path

from .config import HOSTS, LAB_ADDR_RE, LOGS, RUN, S3_ADDR, S3_PORT, STATE, Host, LabError
from .proc import (all_pids, ancestors, has_marker, mnt_ns, proc_alive, proc_cmdline, proc_comm, read_pid, run,
                   signal_and_wait, spawn, tail, wait_for, write_pid)

# The per-host records under RUN, named HOST.KIND; a dead host's are all dropped together.
RECORD_KINDS = ("holder.pid", "mntns", "sshd.pid", "cron.pid")


def setup_script(h: Host) -> Path:
    return STATE / "hosts" / h.name / "ns-setup.sh"


def holder_pid(h: Host) -> int | None:
    pid = read_pid(RUN / f"{h.name}.holder.pid")
    if pid and proc_alive(pid) and proc_cmdline(pid)[:1] == [h.tag]:
        return pid
    return None


def holder_or_fail(h: Host) -> int:
    pid = holder_pid(h)
    if not pid:
        raise LabError(f"host {h.name} is not up (run: tests/lab/fleetlab up)")
    return pid


def recorded_ns(h: Host) -> int | None:
    return read_pid(RUN / f"{h.name}.mntns")


def in_host(h: Host, pid: int | None, comm: str | None = None) -> bool:
    """pid is alive, inside h's mount namespace, and (optionally) has the given comm."""
    ns = recorded_ns(h)
    return bool(pid and ns and proc_alive(pid) and mnt_ns(pid) == ns and (comm is None or proc_comm(pid) == comm))


def ns_prefix(pid: int) -> list[str]:
    return ["nsenter", f"--mount=/proc/{pid}/ns/mnt", f"--uts=/proc/{pid}/ns/uts", "--"]


def host_cmd(h: Host, cmd: list[str], user: str | None = None) -> list[str]:
    return ns_prefix(holder_or_fail(h)) + (["runuser", "-u", user, "--"] if user else []) + list(cmd)


def run_in(h: Host, cmd: list[str], user: str | None = None, **kw):
    kw.setdefault("what", f"{h.name}: {' '.join(cmd)}")
    return run(host_cmd(h, cmd, user), **kw)


def host_run_dir(h: Host) -> Path:
    """The host's private /run (a tmpfs inside its namespace), as seen from the real machine."""
    return Path(f"/proc/{holder_or_fail(h)}/root/run")


def start_holder(h: Host) -> int:
    log = LOGS / f"{h.name}-ns.log"
    proc = spawn(["unshare", "--mount", "--uts", "--propagation", "private", "/bin/bash", str(setup_script(h))], log)

    def ready():
        return proc.poll() is not None or proc_cmdline(proc.pid)[:1] == [h.tag]
    wait_for(ready, 10, 0.01)
    if proc.poll() is not None or proc_cmdline(proc.pid)[:1] != [h.tag]:
        raise LabError(f"setting up the namespace of {h.name} failed; log {log}:\n{tail(log)}")
    write_pid(RUN / f"{h.name}.holder.pid", proc.pid)
    write_pid(RUN / f"{h.name}.mntns", mnt_ns(proc.pid))
    return proc.pid


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
        for kind in RECORD_KINDS:
            (RUN / f"{h.name}.{kind}").unlink(missing_ok=True)


# --- what belongs to the lab ---------------------------------------------------------------------

def is_holder_argv(argv: list[str]) -> bool:
    return bool(argv) and argv[0].startswith("dbfleet-lab:") and argv[0].endswith(f":{STATE}")


def lab_namespaces() -> set:
    """Mount namespaces that are lab hosts: one holding a lab holder, or a recorded one that
    still has a member started by the lab (namespace inode numbers are reused once a namespace
    is gone, so a bare record could name somebody else's namespace)."""
    recorded = {recorded_ns(h) for h in HOSTS} - {None}
    spaces = set()
    for pid in all_pids():
        if is_holder_argv(proc_cmdline(pid)) or (recorded and mnt_ns(pid) in recorded and has_marker(pid)):
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


def lab_mounts() -> list[str]:
    """Mounts on the real machine under the state dir (there should never be any)."""
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            target = line.split()[4].replace("\\040", " ")
            if target == str(STATE) or target.startswith(f"{STATE}/"):
                found.append(target)
    return found
