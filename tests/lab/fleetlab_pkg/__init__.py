"""The fleet lab, by concern. Read top-down in this order:

config       paths, the hosts and where each keeps PostgreSQL (Debian or PGDG layout)
proc         running commands, starting daemons, /proc, ports
state        the state dir's lock, mount targets created on the real machine, secrets
namespaces   each host's mount+UTS namespace, entering it, finding the lab's processes
hosts        each host's files, its view of the file system, sshd and cron
pgdg         db-pgdg: the PGDG view (Debian's layout hidden) and its initdb-made cluster
postgres     any host's server: start, stop, SQL as the superuser, what `up` built
replication  the Debian primary (pg_createcluster) and its streaming replicas
s3           moto's S3 server and the bucket
inventory    inventories/lab/hosts.yml
status       `fleetlab status`
cli          the commands

tests/lab/fleetlab.py re-exports what the CLI wrapper, the pytest plugin and the tests use.
"""
