# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_migrate's parts, one concern each (the module itself tells the story):

* ``files``: the migration directory - names, markers, SQL split into statements, read root-safely;
* ``plan``: what the version table and the files say together - drift (edited, missing, out of order)
  and what ``up``/``down`` to a target would run;
* ``database``: the version table, the advisory lock and its holder, the steps sent to
  ``_pgquery.Session`` and the errors that come back, in words.

Everything here but the directory reading is pure (no server, no files): unit tests cover it.
"""
