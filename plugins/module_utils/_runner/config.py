# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A schedule's config: defaults, the paths a schedule uses, building, validating and loading it.

``pg_dump_schedule`` builds and validates the config with these functions before
it writes anything; the dump program loads it with :func:`load_config`, which
applies the same defaults and the same checks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from .compression import COMPRESSIONS, FORMATS, LEVEL_RANGE
from .fsutil import read_json_object
from .libpq import SSL_MODES
from .naming import BASE_NAME, GLOBALS_NAME, db_name_problem, has_control_character

KINDS = ("dump", "basebackup")
DEFAULT_PART_SIZE_MB = 64     # S3 multipart part size (64 MiB x 10000 parts = 625 GiB)

# Where a schedule's files live unless told otherwise; schedule_paths() names each file.
DEFAULT_DIRS = {
    "config_dir": "/etc/dbfleet/pg_dump",     # NAME.json, NAME.pgpass, NAME.s3.json
    "state_dir": "/var/lib/dbfleet/pg_dump",  # NAME/ (lock, last-run.json)
    "log_dir": "/var/log/dbfleet/pg_dump",    # NAME.log
    "cron_dir": "/etc/cron.d",                # dbfleet-pg-dump-NAME
}
PROGRAM_DIR = "/opt/dbfleet/bin"              # the host-side programs, one file each

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")

DEFAULTS = {
    "name": None,
    "kind": "dump",
    "databases": "all",
    "exclude_databases": [],
    "format": "custom",
    "jobs": 1,
    "compression": "zstd",
    "compression_level": None,
    "dest": None,
    "retention_days": 14,
    "keep_min": 3,
    "globals": True,
    "connection": None,
    "pg_bin": None,
    "lock_file": None,     # schedule_paths(name)["lock"]
    "lock_wait": 0,
    "lock_timeout": 300,   # seconds pg_dump waits for a table lock (--lock-wait-timeout) before it fails
    "run_timeout": 21600,  # seconds a whole run may take before its children are killed and it fails
    "state_dir": None,     # schedule_paths(name)["state"]
    "log_file": None,      # schedule_paths(name)["log"]
    "s3": None,
    "wal_archive": None,   # basebackup only: the WAL archive directory to clean up
}
CONNECTION_DEFAULTS = {
    "host": None,
    "port": 5432,
    "user": None,
    "dbname": "postgres",
    "passfile": None,
    "sslmode": None,
    "connect_timeout": 30,
}
S3_DEFAULTS = {
    "bucket": None,
    "prefix": "",
    "endpoint_url": None,
    "region": None,
    "credentials_file": None,
    "part_size_mb": DEFAULT_PART_SIZE_MB,
}


def schedule_paths(name, config_dir=None, state_dir=None, log_dir=None, cron_dir=None):
    """Every per-schedule path, from the schedule's name and the base directories (None: ``DEFAULT_DIRS``).

    Returns a dict: ``config`` (the JSON config), ``passfile``,
    ``s3_credentials``, ``cron`` (the cron drop-in), ``state`` (the
    schedule's state directory), ``lock`` (in it) and ``log``.
    """
    dirs = dict(DEFAULT_DIRS)
    for key, value in (("config_dir", config_dir), ("state_dir", state_dir), ("log_dir", log_dir), ("cron_dir", cron_dir)):
        if value is not None:
            dirs[key] = value
    state = os.path.join(dirs["state_dir"], name)
    return {
        "config": os.path.join(dirs["config_dir"], "%s.json" % name),
        "passfile": os.path.join(dirs["config_dir"], "%s.pgpass" % name),
        "s3_credentials": os.path.join(dirs["config_dir"], "%s.s3.json" % name),
        "cron": os.path.join(dirs["cron_dir"], "dbfleet-pg-dump-%s" % name),
        "state": state,
        "lock": os.path.join(state, "lock"),
        "log": os.path.join(dirs["log_dir"], "%s.log" % name),
    }


def is_int(value):
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_abs_path(value):
    """An absolute path string without NUL."""
    return isinstance(value, str) and value.startswith("/") and "\0" not in value


def build_config(name, dest, **options):
    """Return a complete runner config from ``name``, ``dest`` and options.

    Missing options and options given as None take their defaults (see
    ``DEFAULTS``, ``CONNECTION_DEFAULTS``, ``S3_DEFAULTS``; ``globals``
    defaults to true for ``kind: dump`` and to false for ``kind: basebackup``); ``lock_file``,
    ``state_dir`` and ``log_file`` default to :func:`schedule_paths`' ``lock``, ``state``
    and ``log`` of ``name``.
    Unknown keys are kept so that :func:`validate_config` reports them.  Does
    not validate: call :func:`validate_config` on the result.
    """
    cfg = {}
    for key, default in DEFAULTS.items():
        value = options.get(key)
        cfg[key] = json.loads(json.dumps(default)) if value is None else value
    for key, value in options.items():
        if key not in DEFAULTS:
            cfg[key] = value
    cfg["name"] = name
    cfg["dest"] = (dest.rstrip("/") or "/") if isinstance(dest, str) else dest
    if options.get("globals") is None and cfg["kind"] == "basebackup":
        cfg["globals"] = False  # a base backup already holds every role
    if isinstance(cfg.get("wal_archive"), str) and len(cfg["wal_archive"]) > 1:
        cfg["wal_archive"] = cfg["wal_archive"].rstrip("/") or "/"
    conn = dict(CONNECTION_DEFAULTS)
    if isinstance(options.get("connection"), dict):
        for key, value in options["connection"].items():
            if value not in (None, "") or key not in CONNECTION_DEFAULTS:
                conn[key] = value
        cfg["connection"] = conn
    elif options.get("connection") is None:
        cfg["connection"] = conn
    s3 = options.get("s3")
    if isinstance(s3, dict):
        merged = dict(S3_DEFAULTS)
        for key, value in s3.items():
            if value is not None or key not in S3_DEFAULTS:
                merged[key] = value
        cfg["s3"] = merged
    if isinstance(name, str):
        paths = schedule_paths(name)
        for key, path in (("lock_file", "lock"), ("state_dir", "state"), ("log_file", "log")):
            if cfg[key] is None:
                cfg[key] = paths[path]
    return cfg


def validate_config(cfg):
    """Return a list of error strings for a runner config (empty list = valid).

    Checks every key, type and range the runner relies on, and rejects unknown
    keys (typos) and a ``password`` anywhere (use ``connection.passfile``).
    Missing optional keys (and None values) are judged with their defaults,
    exactly as the runner will apply them (through :func:`build_config`).

    ``kind: basebackup`` rejects what contradicts a base backup: ``databases``
    other than ``"all"``, a non-empty ``exclude_databases``, a ``format``
    other than the default, ``jobs`` other than 1, and ``globals: true``
    (leave them unset).  ``wal_archive`` is only accepted with
    ``kind: basebackup`` and must be an absolute directory other than
    ``dest``.  A dump schedule rejects a database named ``base`` (the name of
    base backups' files) like one named ``globals`` when ``globals`` is true.
    """
    if not isinstance(cfg, dict):
        return ["the config must be a JSON object"]
    data = dict(cfg)
    name = data.pop("name", None)
    dest = data.pop("dest", None)
    return _validate_full(build_config(name, dest, **data))


def _validate_full(cfg):
    errors = []
    for key in sorted(set(cfg) - set(DEFAULTS)):
        errors.append("unknown config key %r" % (key,))
    name = cfg.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        errors.append("name must be 1-64 characters of letters, digits, '_', '.', '-' starting with a letter or digit, got %r" % (name,))
    dest = cfg.get("dest")
    if not is_abs_path(dest) or dest == "/" or os.path.normpath(dest) != dest:
        errors.append("dest must be a normalized absolute directory path other than '/', got %r" % (dest,))
    kind = cfg.get("kind")
    if kind not in KINDS:
        errors.append("kind must be one of %s, got %r" % (", ".join(KINDS), kind))
    if kind == "basebackup":
        errors.extend(_validate_basebackup_selection(cfg))
    else:
        errors.extend(_validate_dump_selection(cfg))
    compression = cfg.get("compression")
    level = cfg.get("compression_level")
    if compression not in COMPRESSIONS:
        errors.append("compression must be one of %s, got %r" % (", ".join(COMPRESSIONS), compression))
    elif level is not None:
        if compression == "none":
            errors.append("compression_level must be null when compression is none")
        elif not is_int(level) or not LEVEL_RANGE[compression][0] <= level <= LEVEL_RANGE[compression][1]:
            errors.append("compression_level for %s must be an integer from %d to %d, got %r"
                          % ((compression,) + LEVEL_RANGE[compression] + (level,)))
    wal_archive = cfg.get("wal_archive")
    if wal_archive is not None:
        if not is_abs_path(wal_archive) or wal_archive == "/" or os.path.normpath(wal_archive) != wal_archive:
            errors.append("wal_archive must be null or a normalized absolute directory path other than '/', got %r" % (wal_archive,))
        elif kind in KINDS and kind != "basebackup":
            errors.append("wal_archive only applies to kind: basebackup (WAL is cleaned up after a base backup)")
        elif wal_archive == dest:
            errors.append("wal_archive must not be dest: keep archived WAL and base backups in different directories")
    retention = cfg.get("retention_days")
    if not is_int(retention) or retention < 0:
        errors.append("retention_days must be an integer >= 0, got %r" % (retention,))
    keep_min = cfg.get("keep_min")
    if not is_int(keep_min) or keep_min < 1:
        errors.append("keep_min must be an integer >= 1 (the newest good dump is never deleted), got %r" % (keep_min,))
    lock_wait = cfg.get("lock_wait")
    if isinstance(lock_wait, bool) or not isinstance(lock_wait, (int, float)) or lock_wait < 0:
        errors.append("lock_wait must be a number of seconds >= 0, got %r" % (lock_wait,))
    for key, most in (("lock_timeout", 86400), ("run_timeout", 7 * 86400)):
        value = cfg.get(key)
        if not is_int(value) or not 1 <= value <= most:
            errors.append("%s must be a whole number of seconds from 1 to %d (no run waits forever), got %r" % (key, most, value))
    for key in ("lock_file", "state_dir", "log_file"):
        if not is_abs_path(cfg.get(key)):
            errors.append("%s must be an absolute path, got %r" % (key, cfg.get(key)))
    if cfg.get("pg_bin") is not None and not is_abs_path(cfg.get("pg_bin")):
        errors.append("pg_bin must be null or an absolute directory path, got %r" % (cfg.get("pg_bin"),))
    errors.extend(_validate_connection(cfg.get("connection")))
    errors.extend(_validate_s3(cfg.get("s3")))
    return errors


def _validate_dump_selection(cfg):
    errors = []
    fmt = cfg.get("format")
    if fmt not in FORMATS:
        errors.append("format must be one of %s, got %r" % (", ".join(FORMATS), fmt))
    jobs = cfg.get("jobs")
    if not is_int(jobs) or jobs < 1:
        errors.append("jobs must be an integer >= 1, got %r" % (jobs,))
    elif jobs > 1 and fmt != "directory":
        errors.append("jobs > 1 needs format: directory (pg_dump dumps in parallel only into a directory)")
    use_globals = cfg.get("globals")
    if not isinstance(use_globals, bool):
        errors.append("globals must be true or false, got %r" % (use_globals,))
    databases = cfg.get("databases")
    excludes = cfg.get("exclude_databases")
    if not isinstance(excludes, list) or not all(isinstance(item, str) for item in excludes):
        errors.append("exclude_databases must be a list of database names")
        excludes = []
    errors.extend("exclude_databases: %r contains a control character" % (item,) for item in excludes if has_control_character(item))
    if databases == "all":
        pass
    elif isinstance(databases, list) and databases:
        if len(set(databases)) != len(databases):
            errors.append("databases lists a database more than once")
        for db in databases:
            problem = db_name_problem(db)
            if problem:
                errors.append(problem)
            elif db == GLOBALS_NAME and use_globals is True:
                errors.append("a database named %r collides with the globals dump's file names; set globals: false" % GLOBALS_NAME)
            elif db == BASE_NAME:
                errors.append("a database named %r collides with the file names of base backups (%s-STAMP.dir); "
                              "the name is reserved" % (BASE_NAME, BASE_NAME))
        if excludes:
            errors.append("exclude_databases only applies when databases is 'all'")
    else:
        errors.append("databases must be 'all' or a non-empty list of database names, got %r" % (databases,))
    return errors


def _validate_basebackup_selection(cfg):
    errors = []
    why = "a base backup always copies the whole cluster; leave it unset"
    if cfg.get("databases") != "all":
        errors.append("databases does not apply to kind: basebackup (%s)" % why)
    if cfg.get("exclude_databases") not in ([], None):
        errors.append("exclude_databases does not apply to kind: basebackup (%s)" % why)
    if cfg.get("format") != DEFAULTS["format"]:
        errors.append("format does not apply to kind: basebackup (pg_basebackup writes tar files into %s-STAMP.dir; leave it unset)" % BASE_NAME)
    if cfg.get("jobs") != 1:
        errors.append("jobs does not apply to kind: basebackup (pg_basebackup copies with one connection; leave it unset)")
    if cfg.get("globals") is not False:
        errors.append("globals must be false or unset with kind: basebackup (a base backup already contains every role; "
                      "use a dump schedule for a globals SQL file)")
    return errors


def _validate_connection(conn):
    errors = []
    if not isinstance(conn, dict):
        return ["connection must be an object"]
    if "password" in conn:
        errors.append("connection.password is not accepted: passwords never go into the config; use connection.passfile")
    for key in sorted(set(conn) - set(CONNECTION_DEFAULTS) - {"password"}):
        errors.append("unknown connection key %r" % (key,))
    for key in ("host", "user", "sslmode"):
        value = conn.get(key)
        if value is not None and (not isinstance(value, str) or not value or "\0" in value):
            errors.append("connection.%s must be null or a non-empty string" % key)
    if not isinstance(conn.get("dbname"), str) or not conn.get("dbname"):
        errors.append("connection.dbname must be a non-empty string (the database used to list databases)")
    port = conn.get("port")
    if port is not None and (not is_int(port) or not 1 <= port <= 65535):
        errors.append("connection.port must be an integer from 1 to 65535, got %r" % (port,))
    if conn.get("passfile") is not None and not is_abs_path(conn.get("passfile")):
        errors.append("connection.passfile must be null or an absolute path")
    if conn.get("sslmode") is not None and conn.get("sslmode") not in SSL_MODES:
        errors.append("connection.sslmode must be one of %s" % ", ".join(SSL_MODES))
    timeout = conn.get("connect_timeout")
    if timeout is not None and (not is_int(timeout) or timeout < 0):
        errors.append("connection.connect_timeout must be an integer >= 0")
    return errors


def _validate_s3(s3):
    if s3 is None:
        return []
    if not isinstance(s3, dict):
        return ["s3 must be null or an object"]
    errors = []
    for key in sorted(set(s3) - set(S3_DEFAULTS)):
        errors.append("unknown s3 key %r%s" % (key, " (put credentials in s3.credentials_file)" if "secret" in key or "key_id" in key else ""))
    if not isinstance(s3.get("bucket"), str) or not s3.get("bucket"):
        errors.append("s3.bucket must be a non-empty string")
    if not isinstance(s3.get("prefix"), str):
        errors.append("s3.prefix must be a string (may be empty)")
    elif s3["prefix"].startswith("/"):
        errors.append("s3.prefix must not start with '/'")
    url = s3.get("endpoint_url")
    if url is not None and (not isinstance(url, str) or not re.match(r"^https?://[^\s]+$", url)):
        errors.append("s3.endpoint_url must be null or an http(s):// URL")
    if s3.get("region") is not None and (not isinstance(s3["region"], str) or not s3["region"]):
        errors.append("s3.region must be null or a non-empty string")
    if s3.get("credentials_file") is not None and not is_abs_path(s3["credentials_file"]):
        errors.append("s3.credentials_file must be null or an absolute path")
    part = s3.get("part_size_mb")
    if not is_int(part) or not 5 <= part <= 5120:
        errors.append("s3.part_size_mb must be an integer from 5 to 5120, got %r" % (part,))
    return errors


def load_config(path):
    """Read a JSON config file; return ``(config, errors)`` (config is None on errors)."""
    data, problem = read_json_object(path, "config ")
    if problem:
        return None, [problem]
    name = data.pop("name", None)
    dest = data.pop("dest", None)
    cfg = build_config(name, dest, **data)
    errors = _validate_full(cfg)
    return (None if errors else cfg), errors
