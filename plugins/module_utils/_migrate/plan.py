# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the files and the version table say together: drift, and what a run would do.

``applied`` is the version table as ``{version: row}`` (row: ``version``, ``name``, ``checksum``,
``applied_at``, ``duration_seconds``, ``non_transactional``); migrations come from
``files.read_directory``. Nothing here touches a server.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

STATES = ('up', 'down', 'status')


def file_name(migration):
    return migration['up']['file']


def current_version(applied):
    """The highest applied version, 0 when none is."""
    return max(applied) if applied else 0


def drift(migrations, applied, directory):
    """``(problems, warnings)``: every way the database's applied migrations and the files disagree.

    An applied file whose checksum changed, an applied version with no file, and a migration not applied
    below the highest applied one (out of order) are problems: a run must not go on. A renamed file with
    unchanged content is a warning.
    """
    problems, warnings = [], []
    by_version = dict((m['version'], m) for m in migrations)
    top = current_version(applied)
    for version in sorted(applied):
        row = applied[version]
        migration = by_version.get(version)
        if migration is None:
            problems.append('version %d (%s) is applied in the database but %s has no file for it: is this an older '
                            'ref of the migrations than the one applied? Check out the ref that has it.'
                            % (version, row['name'], directory))
        elif row['checksum'] != migration['up']['checksum']:
            problems.append('%s was edited after it was applied (on %s): the version table records sha256 %s, the file '
                            'now has sha256 %s. Never edit an applied migration - restore the file and add a new '
                            'migration for the change.' % (file_name(migration), row.get('applied_at'), row['checksum'],
                                                           migration['up']['checksum']))
        elif row['name'] != migration['name']:
            warnings.append('%s is recorded as applied under the name %r (same content): it was renamed'
                            % (file_name(migration), row['name']))
    late = [m for m in migrations if m['version'] not in applied and m['version'] < top]
    for migration in late:
        problems.append('%s is not applied but version %d already is: migrations apply in order, so it would never '
                        'run. Renumber it above %d.' % (file_name(migration), top, top))
    return problems, warnings


def plan(state, migrations, applied, target=None):
    """``(todo, problems, warnings)``: the migrations a run would apply (``up``, ascending) or revert (``down``,
    descending) to reach ``target``; problems when it cannot get there."""
    problems, warnings = [], []
    versions = [m['version'] for m in migrations]
    top = current_version(applied)
    if target is not None and target < 0:
        return [], ['target must be 0 or a migration version, got %d' % target], warnings
    if target not in (None, 0) and target not in versions:
        return [], ['there is no migration with version %d (the versions are %s)' % (
            target, ', '.join(str(v) for v in versions) or 'none')], warnings
    if state == 'status':
        return [], problems, warnings
    if state == 'up':
        pending = [m for m in migrations if m['version'] not in applied]
        if target is not None:
            if target < top:
                warnings.append('the database is at version %d, beyond target %d: nothing to apply (state=down '
                                'reverts)' % (top, target))
            pending = [m for m in pending if m['version'] <= target]
        return pending, problems, warnings
    if target is None:
        return [], ['state=down needs a target: the version to go back to (0 reverts every migration)'], warnings
    todo = [m for m in reversed(migrations) if m['version'] in applied and m['version'] > target]
    for migration in todo:
        if migration['down'] is None:
            problems.append('%s has no down file (%s.down.sql): the database cannot go below version %d with '
                            'pg_migrate' % (file_name(migration), file_name(migration)[:-len('.sql')],
                                            migration['version']))
    if target > top:
        warnings.append('the database is at version %d, below target %d: nothing to revert (state=up applies)'
                        % (top, target))
    return ([] if problems else todo), problems, warnings


def listing(migration, sql_file=None, **more):
    """The short description of a migration the module returns."""
    sql_file = sql_file or migration['up']
    item = dict(version=migration['version'], name=migration['name'], file=sql_file['file'],
                non_transactional=sql_file['non_transactional'])
    item.update(more)
    return item


def diff(applied_before, applied_after, migrations):
    """The diff of the version table: the applied files before and after, one a line."""
    names = dict((m['version'], file_name(m)) for m in migrations)

    def lines(versions):
        return ''.join('%d %s\n' % (v, names.get(v, '?')) for v in sorted(versions))

    return dict(before_header='applied migrations', after_header='applied migrations',
                before=lines(applied_before), after=lines(applied_after))
