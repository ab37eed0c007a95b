# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who compresses, how, and why: exactly once, for dumps and for base backups."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from .naming import COMPRESSOR_SUFFIX, FORMAT_EXTENSION

FORMATS = ("custom", "directory", "plain")
COMPRESSIONS = ("zstd", "gzip", "lz4", "none")
LEVEL_RANGE = {"zstd": (1, 19), "gzip": (1, 9), "lz4": (1, 12)}

# Default levels, measured on this kind of machine (2 cores, PostgreSQL 15,
# a 207 MB text-heavy table, `pg_dump -Fc -Z0 | COMPRESSOR > file`):
#   zstd -T0 -1: 233 MB/s, ratio 1.99    zstd -T0 -2: 208 MB/s, ratio 2.27
#   zstd -T0 -3: 122 MB/s, ratio 2.42    lz4 -1:      155 MB/s, ratio 1.39
#   pg_dump -Fc (gzip 6): 31 MB/s, ratio 2.33   pg_dump -Fc -Z1: 86 MB/s, ratio 2.07
# zstd -2 keeps pace with pg_dump itself (the pipeline stays pg_dump-bound)
# while matching gzip -6's ratio at ~7x the speed; -3 halves the throughput for
# +7% ratio.  gzip is only chosen for compatibility, so it gets its fast level 1
# (2.8x faster than 6 for an 11% larger file).
DEFAULT_LEVEL = {"zstd": 2, "gzip": 1, "lz4": 1}
NATIVE_ZSTD_LZ4_MAJOR = 16  # pg_dump --compress=zstd|lz4 appeared in PostgreSQL 16


def compression_plan(fmt, compression, level, pg_dump_major):
    """Decide who compresses, how, and why -- compressing exactly once.

    Arguments: dump format (custom/directory/plain), requested compression
    (zstd/gzip/lz4/none), requested level (None = default) and pg_dump's major
    version.  Returns a dict:

    ``compression``/``level``: what is actually used; ``requested_compression``/
    ``requested_level``: what was asked for; ``by``: ``"pg_dump"``,
    ``"external"`` or ``"none"``; ``pg_dump_args``: compression arguments for
    pg_dump (``-Z0`` whenever pg_dump must not compress); ``external``: argv of
    the external compressor reading stdin and writing stdout, or None;
    ``external_compression``: its name or ``"none"`` (what
    :func:`artifact_name` takes); ``extension``: the file extension;
    ``reason``: one sentence for the manifest.

    Rules: pg_dump < 16 compresses only with gzip, so custom/plain + zstd/lz4
    means ``pg_dump -Z0 | zstd -T0 -LEVEL -c`` (or lz4); custom + gzip uses
    pg_dump's own ``-Z LEVEL`` (never pg_dump compression *and* a compressor);
    plain + gzip pipes through external gzip; a directory dump cannot be piped,
    so it uses pg_dump's native compression (gzip before 16, zstd/lz4 from 16)
    and records the fallback.  From 16 on, custom format compresses natively
    (the archive stays directly readable by pg_restore); plain keeps the
    external, multi-threaded compressor.
    """
    if fmt not in FORMATS:
        raise ValueError("unknown dump format %r" % (fmt,))
    if compression not in COMPRESSIONS:
        raise ValueError("unknown compression %r" % (compression,))
    major = int(pg_dump_major)
    plan = {
        "format": fmt, "requested_compression": compression, "requested_level": level,
        "pg_dump_major": major, "compression": compression, "level": None, "by": "none",
        "pg_dump_args": ["-Z0"], "external": None, "external_compression": "none",
        "extension": FORMAT_EXTENSION[fmt], "reason": "",
    }
    if compression == "none":
        plan["reason"] = "compression disabled; pg_dump runs with -Z0"
        return plan
    lvl = DEFAULT_LEVEL[compression] if level is None else int(level)
    plan["level"] = lvl
    native = compression == "gzip" or major >= NATIVE_ZSTD_LZ4_MAJOR

    def use_native(method, method_level):
        plan["by"] = "pg_dump"
        plan["compression"] = method
        plan["level"] = method_level
        if major >= NATIVE_ZSTD_LZ4_MAJOR:
            plan["pg_dump_args"] = ["--compress=%s:%d" % (method, method_level)]
        else:
            plan["pg_dump_args"] = ["-Z", str(method_level)]

    if fmt == "directory":
        if native:
            use_native(compression, lvl)
            plan["reason"] = ("directory format cannot be piped; pg_dump %d compresses each file with %s level %d"
                              % (major, compression, lvl))
        else:
            use_native("gzip", DEFAULT_LEVEL["gzip"])
            plan["reason"] = ("pg_dump %d can compress directory-format dumps only with gzip (%s needs pg_dump 16+); "
                              "used gzip level %d instead of %s" % (major, compression, DEFAULT_LEVEL["gzip"], compression))
        return plan
    if fmt == "custom" and native:
        use_native(compression, lvl)
        plan["reason"] = ("pg_dump %d compresses the custom archive itself with %s level %d; no external compressor"
                          % (major, compression, lvl))
        return plan
    argv = {
        "zstd": ["zstd", "-q", "-T0", "-%d" % lvl, "-c"],
        "lz4": ["lz4", "-q", "-%d" % lvl, "-c"],
        "gzip": ["gzip", "-c", "-%d" % lvl],
    }[compression]
    plan.update({"by": "external", "external": argv, "external_compression": compression,
                 "extension": FORMAT_EXTENSION[fmt] + COMPRESSOR_SUFFIX[compression]})
    if fmt == "plain":
        plan["reason"] = "plain SQL from pg_dump -Z0 piped through %s level %d" % (compression, lvl)
    else:
        plan["reason"] = ("pg_dump %d cannot write %s; custom archive from pg_dump -Z0 piped through %s level %d"
                          % (major, compression, compression, lvl))
    return plan


def globals_compression_plan(compression, level, pg_dump_major):
    """The plan for ``pg_dumpall --globals-only``: plain SQL through the external compressor, if any.

    pg_dumpall has no compression option at all, so ``pg_dump_args`` is empty.
    """
    plan = compression_plan("plain", compression, level, pg_dump_major)
    plan["pg_dump_args"] = []
    if plan["external"]:
        plan["reason"] = "pg_dumpall --globals-only output piped through %s level %s" % (plan["compression"], plan["level"])
    else:
        plan["reason"] = "uncompressed pg_dumpall --globals-only output"
    return plan


def basebackup_compression_plan(compression, level):
    """How pg_basebackup compresses (always on the client side, exactly once).

    Returns a dict shaped like :func:`compression_plan`'s (``compression``,
    ``level``, ``requested_*``, ``by``, ``reason``, ``format`` ``"tar"``) with
    ``args``: pg_basebackup's ``--compress=client-METHOD:LEVEL`` (or
    ``--compress=none``).  Levels default as for dumps (``DEFAULT_LEVEL``).
    pg_basebackup 15 compresses base.tar with any method but pg_wal.tar only
    with gzip; the reason says so.
    """
    if compression not in COMPRESSIONS:
        raise ValueError("unknown compression %r" % (compression,))
    plan = {"format": "tar", "requested_compression": compression, "requested_level": level, "compression": compression,
            "level": None, "by": "none", "args": ["--compress=none"], "external": None, "external_compression": "none",
            "extension": FORMAT_EXTENSION["directory"], "pg_dump_args": []}
    if compression == "none":
        plan["reason"] = "compression disabled; pg_basebackup writes plain tar files"
        return plan
    lvl = DEFAULT_LEVEL[compression] if level is None else int(level)
    plan.update({"level": lvl, "by": "pg_basebackup", "args": ["--compress=client-%s:%d" % (compression, lvl)]})
    plan["reason"] = "pg_basebackup compresses the tar files on the client with %s level %d" % (compression, lvl)
    if compression != "gzip":
        plan["reason"] += " (pg_wal.tar stays uncompressed: pg_basebackup compresses the WAL tar only with gzip)"
    return plan
