# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""plan_look.yml: per-host facts from three real PostgreSQL servers over SSH, one red host never sinks the others,
and nothing changes on any host."""

from __future__ import annotations

from tests.integration.ansible_cli import run_playbook

DB_HOSTS = ['db-primary', 'db-replica-1', 'db-replica-2']
SNAPSHOT = ('find /srv /etc/cron.d /etc/postgresql /opt/dbfleet /etc/dbfleet -xdev -printf "%p %s %T@\\n" 2>/dev/null | sort; '
            'md5sum /var/lib/postgresql/15/main/postgresql.auto.conf')


def _snapshot(lab):
    return {h: lab.exec(h, 'sh', '-c', SNAPSHOT, check=False).stdout for h in DB_HOSTS + ['backup-box']}


def test_plan_look_reports_every_db_host_and_changes_nothing(fleet_lab):
    before = _snapshot(fleet_lab)
    run = run_playbook(fleet_lab, 'playbooks/plan_look.yml', '-l', 'db')
    assert run.rc == 0, run.stdout[-3000:] + run.stderr
    assert run.ok_hosts() == DB_HOSTS
    report = run.results('Report what this host looks like')
    recovery = {h: report[h]['msg']['postgresql']['in_recovery'] for h in DB_HOSTS}
    assert recovery == {'db-primary': False, 'db-replica-1': True, 'db-replica-2': True}
    for host in DB_HOSTS:
        facts = report[host]['msg']
        assert facts['postgresql']['version'].startswith('15.')
        assert facts['postgresql']['data_directory'] == '/var/lib/postgresql/15/main'
        assert facts['free_disk'] and facts['data_directory_size'] != '-'
    assert all(run.changed(h) == 0 for h in DB_HOSTS)
    assert _snapshot(fleet_lab) == before


def test_a_stopped_server_turns_only_its_host_red(fleet_lab):
    fleet_lab.stop_pg('db-replica-2')
    try:
        run = run_playbook(fleet_lab, 'playbooks/plan_look.yml', '-l', 'db')
    finally:
        fleet_lab.start_pg('db-replica-2')
    assert run.failed_hosts() == ['db-replica-2']
    assert run.ok_hosts() == ['db-primary', 'db-replica-1']
    report = run.results('Report what this host looks like')
    assert set(report) == {'db-primary', 'db-replica-1'}
    failure = run.results('Ask PostgreSQL about itself')['db-replica-2']
    assert failure['failed'] and 'could not connect to PostgreSQL' in failure['msg'] and 'Is PostgreSQL running' in failure['msg']


def test_backup_box_is_looked_at_without_postgresql(fleet_lab):
    run = run_playbook(fleet_lab, 'playbooks/plan_look.yml', '-l', 'backup')
    assert run.rc == 0, run.stdout[-3000:]
    facts = run.results('Report what this host looks like')['backup-box']['msg']
    assert facts['postgresql'] == 'no PostgreSQL on this host'
