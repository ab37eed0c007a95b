# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The options of _restore.common.restore_argument_spec() beyond run_as and connect_timeout (connect_as).
    DOCUMENTATION = r'''
options:
  pg_bin:
    description: Directory of the PostgreSQL binaries of the backup's major version; found on the host when omitted.
    type: path
  restore_root:
    description:
      - Where throwaway instances and work files are made, each in a directory of its own (root-owned; the data
        directory and socket directory inside belong to O(run_as), mode 0700).
    type: path
    default: /srv/dbfleet-restore
  port:
    description: Port of a throwaway instance (it listens on its own socket directory only); 0 picks a spare one.
    type: int
    default: 0
  keep:
    description: Leave the throwaway instance (or scratch database) running; where it is is returned.
    type: bool
    default: false
  timeout:
    description: Seconds a restore may wait for its server (a throwaway instance to start, recovery to reach the target).
    type: int
    default: 3600
  verify:
    description: Verify the restored copy's content before it is removed.
    type: dict
    suboptions:
      databases:
        description: Databases to verify; those of O(verify.reference), or all (the restored one), by default.
        type: list
        elements: str
      reference:
        description: The result of M(dbfleet.postgresql.restore_verify) taken at the target, to compare with.
        type: dict
      amcheck:
        description: Run amcheck's C(bt_index_check) on every btree index.
        type: bool
        default: true
      heapallindexed:
        description: Also check that every row is in each index (slower).
        type: bool
        default: false
      schema:
        description: Compare the schema too.
        type: bool
        default: true
  fail_on_mismatch:
    description: Fail when the verification finds a problem (the result still carries the comparison).
    type: bool
    default: true
'''
