"""The fleet lab is real: separate PostgreSQL servers, streaming replicas, a private /srv per
host, SSH that Ansible can use, and an S3 bucket.

db-pgdg is the host laid out unlike Debian: PGDG paths, a cluster made with initdb, no client
binaries on PATH, a password needed even over the local socket.

Some tests change the lab for a while and are opt-in: DBFLEET_LAB_DISRUPTIVE=1 (stops and
restarts servers, kills the lab's processes, takes the lab down and up again) and
DBFLEET_LAB_SLOW=1 (waits for cron, up to ~70 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.lab.pytest_fleetlab import fleetlab as fleetlab_module

pytest_plugins = ["tests.lab.pytest_fleetlab"]


def _tool(lab, name: str) -> str:
    venv = lab.repo / ".venv" / "bin" / name
    found = str(venv) if venv.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (make bootstrap)")
    return found


def _wait(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_three_servers_answer_on_their_own_addresses(fleet_lab):
    psycopg = pytest.importorskip("psycopg")
    seen = {}
    for host in fleet_lab.db_hosts:
        addr = fleet_lab.host_addr(host)
        with psycopg.connect(host=addr, port=5432, user="postgres", dbname="postgres",
                             password=fleet_lab.vars["dbfleet_lab_postgres_password"], connect_timeout=10) as conn:
            row = conn.execute("SELECT host(inet_server_addr()), (SELECT system_identifier FROM pg_control_system()), "
                               "pg_is_in_recovery(), pg_backend_pid(), current_setting('data_directory')").fetchone()
        # The data directory has the same path on every host; it is a different directory underneath.
        inode = fleet_lab.exec(host, "stat", "-c", "%d:%i", row[4]).stdout.strip()
        postmaster = fleet_lab.exec(host, "head", "-n1", f"{row[4]}/postmaster.pid").stdout.strip()
        seen[host] = {"addr": row[0], "sysid": row[1], "recovery": row[2], "inode": inode, "postmaster": postmaster}
        assert row[0] == addr
        assert row[4] == "/var/lib/postgresql/15/main"

    assert len({v["inode"] for v in seen.values()}) == 3, seen
    assert len({v["postmaster"] for v in seen.values()}) == 3, seen
    # Replicas are physical copies (pg_basebackup): they share the primary's system identifier.
    assert len({v["sysid"] for v in seen.values()}) == 1, seen
    assert seen[fleet_lab.primary]["recovery"] is False
    assert all(seen[r]["recovery"] is True for r in fleet_lab.replicas)


def test_replicas_are_in_recovery_and_streaming(fleet_lab):
    senders = dict(line.split("|") for line in fleet_lab.psql(
        fleet_lab.primary, "SELECT application_name, state FROM pg_stat_replication").splitlines())
    assert all(senders.get(r) == "streaming" for r in fleet_lab.replicas), senders
    for replica in fleet_lab.replicas:
        assert fleet_lab.psql(replica, "SELECT pg_is_in_recovery(), status FROM pg_stat_wal_receiver") == "t|streaming"

    # A row written on the primary shows up on both replicas, which refuse writes themselves.
    table = f"fleetlab_probe_{uuid.uuid4().hex[:12]}"
    token = uuid.uuid4().hex
    fleet_lab.psql(fleet_lab.primary, f"CREATE TABLE {table} (token text); INSERT INTO {table} VALUES ('{token}')")
    try:
        for replica in fleet_lab.replicas:
            def replicated(host=replica):
                res = fleet_lab.exec(host, "/usr/lib/postgresql/15/bin/psql", "-XAtq", "-c",
                                     f"SELECT token FROM {table}", user="postgres", check=False)
                return res.returncode == 0 and res.stdout.strip() == token
            assert _wait(replicated, 15), f"{replica} did not replay the write"
            with pytest.raises(subprocess.CalledProcessError) as err:
                fleet_lab.psql(replica, f"INSERT INTO {table} VALUES ('x')")
            assert "read-only transaction" in err.value.stderr
    finally:
        fleet_lab.psql(fleet_lab.primary, f"DROP TABLE {table}")


def test_each_host_has_its_own_srv(fleet_lab):
    name = f"fleetlab-probe-{uuid.uuid4().hex}"
    owner = "db-replica-1"
    fleet_lab.ssh(owner, f"echo {owner} > /srv/{name}")
    try:
        assert fleet_lab.ssh(owner, f"hostname; cat /srv/{name}").stdout.split() == [owner, owner]
        for host in fleet_lab.hosts:
            assert fleet_lab.ssh(host, "hostname").stdout.strip() == host
            if host != owner:
                res = fleet_lab.ssh(host, f"test -e /srv/{name}", check=False)
                assert res.returncode == 1, f"/srv/{name} from {owner} is visible on {host}"
        assert not Path("/srv", name).exists(), "a host's /srv leaked onto the real machine"
        # Each host's view comes from its own directory in the lab state (bind mount).
        source = fleet_lab.exec(owner, "findmnt", "-n", "-o", "SOURCE", "/srv").stdout
        assert f"/hosts/{owner}/" in source
    finally:
        fleet_lab.ssh(owner, f"rm -f /srv/{name}", check=False)


def test_ansible_reaches_every_host_over_ssh(fleet_lab):
    ansible = _tool(fleet_lab, "ansible")
    res = subprocess.run([ansible, "-i", str(fleet_lab.inventory), "all", "-m", "ansible.builtin.ping"],
                         cwd=fleet_lab.repo, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    for host in fleet_lab.hosts:
        assert re.search(rf"^{re.escape(host)} \| SUCCESS", res.stdout, re.M), res.stdout


def test_inventory_groups_and_vars(fleet_lab):
    assert fleet_lab.inventory.stat().st_mode & 0o777 == 0o600
    res = subprocess.run([_tool(fleet_lab, "ansible-inventory"), "-i", str(fleet_lab.inventory), "--list"],
                         cwd=fleet_lab.repo, capture_output=True, text=True, timeout=120, check=True)
    inv = json.loads(res.stdout)
    assert sorted(inv["db"]["hosts"]) == ["db-primary", "db-replica-1", "db-replica-2"]
    assert inv["primary"]["hosts"] == ["db-primary"]
    assert sorted(inv["replica"]["hosts"]) == ["db-replica-1", "db-replica-2"]
    assert inv["backup"]["hosts"] == ["backup-box"]
    assert inv["pgdg"]["hosts"] == ["db-pgdg"]
    hostvars = inv["_meta"]["hostvars"]
    for host in fleet_lab.hosts:
        hv = hostvars[host]
        assert hv["ansible_host"] == fleet_lab.host_addr(host)
        assert hv["ansible_user"] == "root"
        assert hv["ansible_python_interpreter"] == "/usr/bin/python3"
        assert hv["dbfleet_lab"] is True and hv["dbfleet_pg_port"] == 5432
        assert hv["dbfleet_s3_endpoint_url"] == fleet_lab.s3_endpoint_url
    pgdg = hostvars["db-pgdg"]
    assert pgdg["dbfleet_pg_host"] == "127.0.0.16"
    assert pgdg["dbfleet_pg_bin"] == "/usr/pgsql-15/bin" and pgdg["dbfleet_pg_data"] == "/var/lib/pgsql/15/data"
    assert pgdg["dbfleet_pg_admin_user"] == "postgres"
    assert pgdg["dbfleet_pg_admin_password"] == fleet_lab.host_vars("db-pgdg")["dbfleet_pg_admin_password"]
    assert pgdg["dbfleet_pg_admin_password"] != fleet_lab.vars["dbfleet_lab_postgres_password"]
    assert "dbfleet_pg_admin_password" not in hostvars["db-primary"]
    assert hostvars["db-primary"]["dbfleet_pg_bin"] == "/usr/lib/postgresql/15/bin"


def test_s3_bucket_round_trips_an_object(fleet_lab):
    s3 = fleet_lab.s3_client()
    bucket = fleet_lab.s3_bucket
    assert s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
    key = f"fleetlab-test/{uuid.uuid4().hex}"
    bodies = [os.urandom(4096), os.urandom(4096)]
    try:
        for body in bodies:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == bodies[-1]
        versions = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        assert len(versions) == 2
    finally:
        for v in s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", []):
            s3.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])


def test_status_reports_everything_up(fleet_lab):
    report = fleet_lab.status()
    assert report["ok"], json.dumps(report, indent=1)
    assert report["hosts"]["db-primary"]["postgres"]["role"] == "primary"
    assert "postgres" not in report["hosts"]["backup-box"]
    pgdg = report["hosts"]["db-pgdg"]
    assert pgdg["role"] == "pgdg" and pgdg["postgres"]["role"] == "primary"
    assert pgdg["postgres"]["layout"] == "pgdg" and pgdg["postgres"]["data_directory"] == "/var/lib/pgsql/15/data"


# --- db-pgdg: PGDG layout, a cluster made with initdb, password-only local auth ------------------

PGDG = "db-pgdg"


def test_pgdg_host_is_its_own_host_over_ssh(fleet_lab):
    assert fleet_lab.ssh(PGDG, "hostname; /usr/bin/python3 -c 'print(1)'").stdout.split() == [PGDG, "1"]
    res = subprocess.run([str(fleet_lab.repo / "tests/lab/fleetlab"), "exec", PGDG, "--", "hostname"],
                         capture_output=True, text=True, check=True, timeout=30)
    assert res.stdout.strip() == PGDG


def test_pgdg_server_wants_a_password_even_on_the_socket(fleet_lab):
    psycopg = pytest.importorskip("psycopg")
    password = fleet_lab.host_vars(PGDG)["dbfleet_pg_admin_password"]
    with psycopg.connect(host="127.0.0.16", port=5432, user="postgres", dbname="app_prod", password=password,
                         connect_timeout=10) as conn:
        row = conn.execute("SELECT host(inet_server_addr()), current_setting('data_directory'), "
                           "current_setting('config_file'), current_setting('archive_mode'), pg_is_in_recovery(), "
                           "(SELECT count(*) FROM customers) > 100").fetchone()
    assert row == ("127.0.0.16", "/var/lib/pgsql/15/data", "/var/lib/pgsql/15/data/postgresql.conf", "off", False,
                   True)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.16", port=5432, user="postgres", dbname="postgres", password="wrong",
                        connect_timeout=10).close()
    # Over the unix socket, as root and as postgres: no password, no way in (-w: never prompt).
    for user in (None, "postgres"):
        res = fleet_lab.exec(PGDG, "/usr/pgsql-15/bin/psql", "-w", "-X", "-U", "postgres", "-c", "SELECT 1",
                             user=user, check=False, env={"PGPASSWORD": "", "PGPASSFILE": "/nonexistent"})
        assert res.returncode != 0 and "no password supplied" in res.stderr, res
    # The fixture gets in: the password from the lab secrets, in PGPASSWORD.
    assert fleet_lab.psql(PGDG, "SELECT current_user, count(*) > 100 FROM orders", db="app_prod") == "postgres|t"
    assert fleet_lab.psql(PGDG, "CREATE EXTENSION amcheck; SELECT extname FROM pg_extension ORDER BY 1; "
                                "DROP EXTENSION amcheck") == "amcheck\nplpgsql"
    # A cluster of its own, not a copy of the Debian primary.
    assert fleet_lab.psql(PGDG, "SELECT system_identifier FROM pg_control_system()") != fleet_lab.psql(
        fleet_lab.primary, "SELECT system_identifier FROM pg_control_system()")


def test_pgdg_host_is_laid_out_like_pgdg(fleet_lab):
    assert fleet_lab.pg_bin(PGDG) == "/usr/pgsql-15/bin" and fleet_lab.pg_data(PGDG) == "/var/lib/pgsql/15/data"
    version = fleet_lab.ssh(PGDG, "/usr/pgsql-15/bin/postgres --version; /usr/pgsql-15/bin/pg_ctl --version")
    assert version.stdout.count("(PostgreSQL) 15.") == 2
    # Nothing PostgreSQL on PATH, nor Debian's cluster tools, for bash and sh alike.
    names = "psql pg_dump pg_dumpall pg_restore pg_basebackup pg_isready pg_receivewal pg_archivecleanup " \
            "pg_ctlcluster pg_lsclusters pg_createcluster pg_config"
    for shell in ("bash", "sh"):
        found = fleet_lab.ssh(PGDG, f"{shell} -c 'for c in {names}; do command -v $c; done; true'").stdout
        assert found.strip() == "", f"{shell} finds {found.split()}"
    assert fleet_lab.ssh(PGDG, "ls -A /usr/lib/postgresql/15/bin /etc/postgresql").stdout.split() == [
        "/etc/postgresql:", "/usr/lib/postgresql/15/bin:"]
    assert fleet_lab.ssh(PGDG, "test -d /usr/lib/postgresql/15/lib && test -d /usr/share/postgresql/15").returncode == 0
    # initdb's data directory, config inside it, owned by postgres; the running server is that one.
    listing = fleet_lab.ssh(PGDG, "cd /var/lib/pgsql/15/data && stat -c '%U %a' . && cat PG_VERSION "
                                  "&& ls postgresql.conf postgresql.auto.conf pg_hba.conf log").stdout.split()
    assert listing[:3] == ["postgres", "700", "15"] and "postgresql.auto.conf" in listing
    hba = [line.split() for line in fleet_lab.ssh(PGDG, "cat /var/lib/pgsql/15/data/pg_hba.conf").stdout.splitlines()
           if line.strip() and not line.startswith("#")]
    assert ["local", "all", "all", "scram-sha-256"] in hba and all(r[-1] == "scram-sha-256" for r in hba), hba
    postmaster = fleet_lab.exec(PGDG, "head", "-n1", "/var/lib/pgsql/15/data/postmaster.pid").stdout.strip()
    assert fleet_lab.exec(PGDG, "readlink", f"/proc/{postmaster}/exe").stdout.strip() == "/usr/pgsql-15/bin/postgres"
    # The hiding stays inside db-pgdg: the Debian hosts and the real machine keep their layout.
    assert fleet_lab.ssh(fleet_lab.primary, "command -v psql pg_lsclusters").stdout.split() == [
        "/usr/bin/psql", "/usr/bin/pg_lsclusters"]
    assert shutil.which("psql") and not Path("/usr/pgsql-15/bin/postgres").exists()


@pytest.mark.skipif(not os.environ.get("DBFLEET_LAB_DISRUPTIVE"), reason="set DBFLEET_LAB_DISRUPTIVE=1")
@pytest.mark.parametrize("victim", ["db-replica-2", PGDG])
def test_stopped_server_turns_only_its_host_red(fleet_lab, victim):
    fleet_lab.stop_pg(victim)
    try:
        report = fleet_lab.status()
        assert not report["ok"]
        assert report["hosts"][victim]["postgres"]["up"] is False and not report["hosts"][victim]["ok"]
        for host in set(fleet_lab.hosts) - {victim}:
            assert report["hosts"][host]["ok"], json.dumps(report["hosts"][host])
        assert report["hosts"][victim]["sshd"], "only PostgreSQL was stopped"
        data = fleet_lab.pg_data(victim)
        assert fleet_lab.exec(victim, "test", "-e", f"{data}/postmaster.pid", check=False).returncode == 1
    finally:
        fleet_lab.start_pg(victim)
    assert fleet_lab.status()["ok"]
    assert fleet_lab.psql(victim, "SELECT 1") == "1"


@pytest.mark.skipif(not os.environ.get("DBFLEET_LAB_SLOW"), reason="set DBFLEET_LAB_SLOW=1 (waits for cron)")
def test_cron_runs_jobs_inside_its_host(fleet_lab):
    tag = uuid.uuid4().hex[:12]
    host = "backup-box"
    job = f"/etc/cron.d/fleetlab-probe-{tag}"
    fleet_lab.ssh(host, f"echo '* * * * * root hostname > /srv/cron-{tag}' > {job} && chmod 644 {job}")
    try:
        def ran():
            return fleet_lab.ssh(host, f"cat /srv/cron-{tag}", check=False).stdout.strip()
        assert _wait(ran, 75, 1) == host
        for other in set(fleet_lab.hosts) - {host}:
            assert fleet_lab.ssh(other, f"test -e /srv/cron-{tag}", check=False).returncode == 1
    finally:
        fleet_lab.ssh(host, f"rm -f {job} /srv/cron-{tag}", check=False)


@pytest.mark.skipif(not os.environ.get("DBFLEET_LAB_DISRUPTIVE"), reason="set DBFLEET_LAB_DISRUPTIVE=1")
def test_up_recovers_from_a_lab_whose_processes_died(fleet_lab):
    """A reboot (or a state dir that outlived its processes) leaves pid and namespace records
    naming nothing; `up` must start every host again, not trip over the old records."""
    lab = fleetlab_module
    pids = list(lab.lab_processes())
    assert pids, "the lab is up, so it has processes"
    for pid in pids:  # SIGKILL, like a crash: nothing gets to clean up
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert _wait(lambda: not lab.lab_processes(), 10), "the lab's processes are gone"
    assert all((lab.RUN / f"{h.name}.mntns").exists() for h in lab.HOSTS), "the stale records stay behind"
    up = subprocess.run([str(fleet_lab.repo / "tests/lab/fleetlab"), "up"], capture_output=True, text=True,
                        check=False, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    for h in lab.HOSTS:
        assert f"{h.name}: namespace" in up.stdout
    report = fleet_lab.status()
    assert report["ok"], json.dumps(report, indent=1)
    assert fleet_lab.psql(fleet_lab.primary, "select 1") == "1"
    assert fleet_lab.psql(PGDG, "select count(*) > 0 from customers", db="app_prod") == "t"


def _mounts_mentioning(words) -> set:
    """Mount lines, in any process's mount namespace, whose source or target names one of words."""
    found, seen = set(), set()
    for entry in Path("/proc").iterdir():
        ns = fleetlab_module.mnt_ns(int(entry.name)) if entry.name.isdigit() else None
        if ns is None or ns in seen:
            continue
        seen.add(ns)
        try:
            lines = (entry / "mountinfo").read_text().splitlines()
        except OSError:
            continue
        found.update(line for line in lines if any(w in line for w in words))
    return found


@pytest.mark.skipif(not os.environ.get("DBFLEET_LAB_DISRUPTIVE"), reason="set DBFLEET_LAB_DISRUPTIVE=1")
def test_down_leaves_nothing_behind_and_up_brings_it_all_back(fleet_lab):
    lab = fleetlab_module
    fleetlab = str(fleet_lab.repo / "tests/lab/fleetlab")
    created = json.loads((lab.STATE / "created.json").read_text())  # mount targets made on the real machine
    pids = set(lab.lab_processes())
    pgdg_ns = int((lab.RUN / f"{PGDG}.mntns").read_text())
    pgdg_comms = {lab.proc_comm(p) for p in pids if lab.mnt_ns(p) == pgdg_ns}
    assert {"sleep", "sshd", "cron", "postgres"} <= pgdg_comms, pgdg_comms
    words = (str(lab.STATE), "/usr/pgsql-15", "/var/lib/pgsql", "dbfleet-lab")
    assert _mounts_mentioning(words), "the lab is up, so its hosts have mounts"
    down = subprocess.run([fleetlab, "down"], capture_output=True, text=True, check=False, timeout=120)
    try:
        assert down.returncode == 0, down.stdout + down.stderr
        assert not [p for p in pids if lab.proc_alive(p)], "lab processes survive"
        assert not lab.lab_processes()
        assert not _mounts_mentioning(words)
        assert not lab.STATE.exists() and not fleet_lab.inventory.exists()
        assert not [p for p in created if os.path.lexists(p)], "mount targets the lab created are left behind"
    finally:
        up = subprocess.run([fleetlab, "up"], capture_output=True, text=True, check=False, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr
    report = fleet_lab.status()
    assert report["ok"], json.dumps(report, indent=1)
    for host in lab.HOSTS:
        assert f"{host.name}: namespace" in up.stdout
