# -*- coding: utf-8 -*-
# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Builds a host-side program: one file, a zipapp of this package's own sources, the same bytes every time.

The sources come from ``inspect.getsource()`` of the imported modules, which
also works inside the AnsiballZ zip a module runs from.  Every module packed
is imported below with a static ``from . import`` line, so that ansible-core's
module dependency finder bundles it with any module that imports this one.

Deterministic: fixed member order, fixed dates and modes, stored (not
deflated, so no zlib version can change the bytes).  Inside the zip the
package is called ``dbfleet_host``; its relative imports work there as here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect
import io
import zipfile

from . import artifact, basebackup, cli, compression, config, dryrun, dump, frames, fsutil, hashing, landing, libpq, locking
from . import log, manifest, naming, pipeline, retention, run, s3, server, state, tarstream, tlsonce, transfer, transferjob
from . import wal, walarchive, walrestore

PACKAGE = "dbfleet_host"

# program name -> entry point in cli (a function taking no arguments, returning the exit code)
PROGRAMS = {
    "dbfleet-pg-dump": "dump_main",
    "dbfleet-wal-archive": "wal_archive_main",
    "dbfleet-transfer-receive": "transfer_receive_main",
    "dbfleet-transfer-send": "transfer_send_main",
    "dbfleet-wal-restore": "wal_restore_main",
}

_MODULES = (artifact, basebackup, cli, compression, config, dryrun, dump, frames, fsutil, hashing, landing, libpq, locking,
            log, manifest, naming, pipeline, retention, run, s3, server, state, tarstream, tlsonce, transfer, transferjob,
            wal, walarchive, walrestore)
_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_MODE = 0o100644 << 16         # a regular file, rw-r--r--
_MAIN = '''# The %(program)s program of dbfleet.postgresql (generated from plugins/module_utils/_runner).
import sys

from %(package)s import cli

sys.exit(cli.%(entry)s())
'''


def program_files(program):
    """``[(member name, bytes)]`` of the zipapp of ``program``, in the order they are written."""
    if program not in PROGRAMS:
        raise ValueError("unknown host-side program %r (known: %s)" % (program, ", ".join(sorted(PROGRAMS))))
    files = [("%s/__init__.py" % PACKAGE, b"")]
    for module in sorted(_MODULES, key=lambda item: item.__name__):
        files.append(("%s/%s.py" % (PACKAGE, module.__name__.rsplit(".", 1)[-1]), inspect.getsource(module).encode("utf-8")))
    main = _MAIN % {"program": program, "package": PACKAGE, "entry": PROGRAMS[program]}
    files.append(("__main__.py", main.encode("utf-8")))
    return files


def build_program(program, interpreter):
    """The bytes of the host-side ``program``: ``#!{interpreter}`` and a zipapp of this package.

    ``interpreter`` is the absolute path of the Python that runs it (3.8+);
    ValueError for an unknown program or an interpreter path that cannot be
    part of a shebang line.
    """
    if not interpreter.startswith("/") or naming.has_control_character(interpreter):
        raise ValueError("interpreter must be an absolute path without control characters, got %r" % (interpreter,))
    files = program_files(program)
    out = io.BytesIO()
    out.write(b"#!" + interpreter.encode("utf-8") + b"\n")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_DATE_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = _MODE
            archive.writestr(info, data)
    return out.getvalue()
