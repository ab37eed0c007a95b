# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_migrate's pure parts, without a server: file naming, ordering and validation, markers, splitting SQL into
statements, the plan (pending, applied, down targets, drift, checksums), the version table's statements and the
words of its errors."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.dbfleet.postgresql.plugins.module_utils._migrate import database as sql
from ansible_collections.dbfleet.postgresql.plugins.module_utils._migrate import files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._migrate import plan
from ansible_collections.dbfleet.postgresql.plugins.modules import pg_migrate


def migrations(*entries):
    found, problems = files.assemble([(name, text.encode('utf-8')) for name, text in entries])
    assert problems == []
    return found


def applied_rows(found, *versions, **checksums):
    by_version = dict((m['version'], m) for m in found)
    return dict((v, dict(version=v, name=by_version[v]['name'], checksum=checksums.get('v%d' % v, by_version[v]['up']['checksum']),
                         applied_at='2026-12-01 03:00:00+00', duration_seconds=0.1, non_transactional=False))
                for v in versions)


THREE = (('0001_widgets.sql', 'CREATE TABLE widgets (id int);\n'),
         ('0001_widgets.down.sql', 'DROP TABLE widgets;\n'),
         ('0002_gadgets.sql', 'CREATE TABLE gadgets (id int);\n'),
         ('0003_index.sql', '-- dbfleet:no-transaction\nCREATE INDEX CONCURRENTLY gadgets_id ON gadgets (id);\n'),
         ('0003_index.down.sql', '-- dbfleet:no-transaction\nDROP INDEX CONCURRENTLY gadgets_id;\n'))


# --- names ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name,expected', [
    ('0007_add_index.sql', ('up', 7, 'add_index')),
    ('0007_add_index.down.sql', ('down', 7, 'add_index')),
    ('12_x-y.sql', ('up', 12, 'x-y')),
    ('000000000000000042_a.sql', ('up', 42, 'a')),
    ('README.md', None),
    ('.0001_hidden.sql', None),
    ('notes.txt', None),
])
def test_names(name, expected):
    assert files.classify(name) == expected


@pytest.mark.parametrize('name,words', [
    ('0008_a\nb.sql', 'control character'),
    ('0008_ab.sql\n', 'control character'),
    ('0008_a\tb.txt', 'control character'),
    ('0009_x..sql', 'does not follow the naming'),
    ('0009_../etc.sql', 'does not follow the naming'),
    ('7-add.sql', 'does not follow the naming'),
    ('add_index.sql', 'does not follow the naming'),
    ('0007_add index.sql', 'does not follow the naming'),
    ('0007_.sql', 'does not follow the naming'),
    ('0007_x.SQL', 'does not follow the naming'),
    ('0000_zero.sql', 'migrations start at 1'),
    ('1234567890123456789_big.sql', 'does not follow the naming'),
])
def test_names_refused_with_the_reason(name, words):
    with pytest.raises(ValueError, match=words):
        files.classify(name)


def test_versions_are_numbers_in_order_not_text():
    found = migrations(('10_ten.sql', 'SELECT 10'), ('9_nine.sql', 'SELECT 9'), ('0002_two.sql', 'SELECT 2'))
    assert [m['version'] for m in found] == [2, 9, 10]


def test_two_files_with_one_version_are_refused():
    _found, problems = files.assemble([('0007_a.sql', b'SELECT 1'), ('7_b.sql', b'SELECT 2')])
    assert len(problems) == 1 and 'version 7 has two files, 0007_a.sql and 7_b.sql' in problems[0]


def test_a_down_file_needs_its_migration_and_its_name():
    _found, problems = files.assemble([('0001_a.sql', b'SELECT 1'), ('0001_b.down.sql', b'SELECT 1'),
                                       ('0002_c.down.sql', b'SELECT 1')])
    assert any('0001_b.down.sql does not revert 0001_a.sql' in p and '0001_a.down.sql' in p for p in problems)
    assert any('0002_c.down.sql has no migration to revert' in p for p in problems)


def test_checksum_is_sha256_of_the_bytes():
    data = b'CREATE TABLE t (a int);\r\n'
    assert files.sql_file('0001_t.sql', data)['checksum'] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize('data,words', [
    (b'SELECT 1;\xff', 'not UTF-8'),
    (b'SELECT 1;\x00', 'NUL byte'),
    (b'-- nothing here\n\n', 'no SQL statement'),
    (b'SELECT 1;\nCOMMIT;\n', 'COMMIT ends or starts a transaction'),
    (b'BEGIN;\nSELECT 1;\n', 'BEGIN ends or starts a transaction'),
    (b'SELECT 1;\nrollback;\n', 'ROLLBACK ends the transaction'),
    (b'CREATE INDEX CONCURRENTLY i ON t (a);', 'CREATE INDEX CONCURRENTLY cannot run inside a transaction'),
    (b'create unique index concurrently i on t (a);', 'CREATE UNIQUE INDEX CONCURRENTLY cannot run'),
    (b'VACUUM t;', 'VACUUM cannot run inside a transaction'),
    (b'ALTER SYSTEM SET work_mem = 1;', 'ALTER SYSTEM cannot run'),
    (b"SELECT 'unterminated;", 'unterminated string'),
    (b'SELECT 1;\n\\connect other\n', 'psql meta-command'),
])
def test_file_contents_refused_with_the_reason(data, words):
    problems = files.sql_file('0001_t.sql', data)['problems']
    assert any(words in p for p in problems), problems


def test_savepoints_and_rollback_to_are_fine_in_a_transaction():
    assert files.sql_file('0001_t.sql', b'SAVEPOINT a; SELECT 1; ROLLBACK TO a; RELEASE a;')['problems'] == []


def test_a_non_transactional_file_may_hold_what_a_transaction_cannot():
    info = files.sql_file('0001_t.sql', b'-- dbfleet:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);\nVACUUM t;\n')
    assert info['problems'] == [] and info['non_transactional'] and len(info['statements']) == 2


# --- markers ----------------------------------------------------------------------------------------------------

def test_markers_at_the_top():
    options, problems = files.parse_markers('-- the index, without blocking writes\n-- dbfleet:no-transaction\n'
                                            '--dbfleet: lock-timeout = 30s\n-- dbfleet:statement-timeout=2h\n\nSELECT 1;\n')
    assert problems == []
    assert options == dict(non_transactional=True, lock_timeout=30, statement_timeout=7200)


@pytest.mark.parametrize('text,words', [
    ('-- dbfleet:no-transactions\nSELECT 1;', 'unknown marker'),
    ('SELECT 1;\n-- dbfleet:no-transaction\n', 'comes after the first statement'),
    ('-- dbfleet:no-transaction=yes\nSELECT 1;', 'takes no value'),
    ('-- dbfleet:lock-timeout=soon\nSELECT 1;', 'not a duration'),
    ('-- dbfleet:statement-timeout=0\nSELECT 1;', 'greater than zero'),
    ('-- dbfleet:lock-timeout\nSELECT 1;', 'not a duration'),
])
def test_bad_markers_are_refused(text, words):
    _options, problems = files.parse_markers(text)
    assert any(words in p for p in problems), problems


def test_without_markers_a_file_is_transactional():
    expected = dict(non_transactional=False, lock_timeout=None, statement_timeout=None)
    assert files.parse_markers('-- a comment\nSELECT 1;')[0] == expected


# --- statements -------------------------------------------------------------------------------------------------

def texts(sql_text):
    return [s['text'].strip() for s in files.split_sql(sql_text)]


def test_split_on_semicolons_outside_quotes_and_comments():
    sql_text = ("INSERT INTO t VALUES ('a;b', \"x;y\"); -- c;omment\n/* block; /* nested; */ still; */ SELECT 2;\n"
                "SELECT E'it\\'s; fine', 'it''s; fine';")
    assert texts(sql_text) == ["INSERT INTO t VALUES ('a;b', \"x;y\")", "-- c;omment\n/* block; /* nested; */ still; */ SELECT 2",
                               "SELECT E'it\\'s; fine', 'it''s; fine'"]


def test_dollar_quotes_and_do_blocks_are_one_statement():
    sql_text = ("DO $$ BEGIN PERFORM 1; END $$;\nCREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;"
                "\nSELECT $1;")
    assert len(files.split_sql(sql_text)) == 3


def test_begin_atomic_bodies_are_one_statement():
    sql_text = ("CREATE OR REPLACE FUNCTION f(a int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN a > 0 "
                "THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\nSELECT 3;")
    statements = files.split_sql(sql_text)
    assert [s['line'] for s in statements] == [1, 6]
    assert files.sql_file('0001_f.sql', sql_text.encode())['problems'] == []


def test_statements_know_their_line_and_first_words():
    statements = files.split_sql('-- header\n\nCREATE  UNIQUE\nINDEX CONCURRENTLY i ON t (a);\n\n  VACUUM (ANALYZE) t;')
    expected = [(3, ['create', 'unique', 'index', 'concurrently']), (6, ['vacuum', 'analyze', 't'])]
    assert [(s['line'], s['words'][:4]) for s in statements] == expected


@pytest.mark.parametrize('text,line', [("SELECT 1;\nSELECT 'x", 2), ('SELECT 1; /* open', 1), ('\n\nSELECT $a$ x', 3),
                                       ('SELECT "id', 1)])
def test_unterminated_quotes_and_comments_name_their_line(text, line):
    with pytest.raises(files.SqlSplitError) as info:
        files.split_sql(text)
    assert info.value.line == line


# --- the directory ----------------------------------------------------------------------------------------------

def test_read_directory_refuses_symlinks_fifos_and_directories_and_ignores_the_rest(tmp_path):
    (tmp_path / '0001_a.sql').write_text('SELECT 1;')
    (tmp_path / 'README.md').write_text('notes')
    (tmp_path / '.hidden.sql').write_text('junk')
    os.symlink('/etc/passwd', str(tmp_path / '0002_link.sql'))
    os.mkfifo(str(tmp_path / '0003_fifo.sql'))
    os.mkdir(str(tmp_path / '0004_dir.sql'))
    os.mkdir(str(tmp_path / 'subdir'))
    found, problems = files.read_directory(str(tmp_path))
    assert [m['up']['file'] for m in found] == ['0001_a.sql']
    assert len(problems) == 3, problems
    assert any('0002_link.sql is a symlink: refused' in p for p in problems)
    assert any('0003_fifo.sql cannot be read' in p and 'not a regular file' in p for p in problems)
    assert any('0004_dir.sql is a directory' in p for p in problems)


def test_read_directory_names_a_hostile_file_name_without_printing_it_raw(tmp_path):
    (tmp_path / '0001_a\nb.sql').write_text('SELECT 1;')
    _found, problems = files.read_directory(str(tmp_path))
    assert problems and '\n' not in problems[0] and "'0001_a\\nb.sql'" in problems[0]


# --- the plan ---------------------------------------------------------------------------------------------------

def test_pending_applied_and_targets():
    found = migrations(*THREE)
    assert [m['version'] for m in plan.plan('up', found, {})[0]] == [1, 2, 3]
    assert [m['version'] for m in plan.plan('up', found, applied_rows(found, 1))[0]] == [2, 3]
    assert [m['version'] for m in plan.plan('up', found, applied_rows(found, 1), target=2)[0]] == [2]
    assert plan.plan('up', found, applied_rows(found, 1, 2, 3))[0] == []
    assert plan.plan('status', found, {})[0] == []


def test_up_to_a_target_below_the_current_version_does_nothing_and_says_so():
    found = migrations(*THREE)
    todo, problems, warnings = plan.plan('up', found, applied_rows(found, 1, 2, 3), target=1)
    assert todo == [] and problems == [] and 'beyond target 1' in warnings[0]


def test_down_reverts_newest_first_to_the_target():
    found = migrations(*THREE)
    found[1]['down'] = files.sql_file('0002_gadgets.down.sql', b'DROP TABLE gadgets;')
    todo, problems, _warnings = plan.plan('down', found, applied_rows(found, 1, 2, 3), target=1)
    assert problems == [] and [m['version'] for m in todo] == [3, 2]
    assert [m['version'] for m in plan.plan('down', found, applied_rows(found, 1, 2, 3), target=0)[0]] == [3, 2, 1]


def test_down_needs_every_down_file_on_the_way_and_a_target():
    found = migrations(*THREE)
    todo, problems, _warnings = plan.plan('down', found, applied_rows(found, 1, 2, 3), target=0)
    assert todo == [] and 'no down file (0002_gadgets.down.sql)' in problems[0] and 'below version 2' in problems[0]
    assert 'needs a target' in plan.plan('down', found, applied_rows(found, 1), target=None)[1][0]


@pytest.mark.parametrize('target,words', [(7, 'no migration with version 7'), (-1, 'must be 0 or a migration version')])
def test_unknown_targets_are_refused(target, words):
    found = migrations(*THREE)
    assert words in plan.plan('up', found, {}, target=target)[1][0]


def test_an_edited_applied_file_is_refused_with_both_checksums():
    found = migrations(*THREE)
    problems, _warnings = plan.drift(found, applied_rows(found, 1, v1='0' * 64), '/srv/m')
    assert len(problems) == 1
    assert '0001_widgets.sql was edited after it was applied' in problems[0]
    assert '0' * 64 in problems[0] and found[0]['up']['checksum'] in problems[0]


def test_applied_without_a_file_and_out_of_order_are_refused():
    found = migrations(*THREE)
    rows = applied_rows(found, 1, 3)
    rows[9] = dict(version=9, name='later', checksum='f' * 64, applied_at='x')
    problems, _warnings = plan.drift(found, rows, '/srv/m')
    assert any('version 9 (later) is applied in the database but /srv/m has no file for it' in p for p in problems)
    assert any('0002_gadgets.sql is not applied but version 9 already is' in p for p in problems)


def test_a_renamed_file_with_the_same_content_is_a_warning():
    found = migrations(*THREE)
    rows = applied_rows(found, 1)
    rows[1]['name'] = 'old_name'
    assert plan.drift(found, rows, '/srv/m') == ([], ["0001_widgets.sql is recorded as applied under the name 'old_name' "
                                                      "(same content): it was renamed"])


def test_the_diff_lists_the_applied_files_before_and_after():
    found = migrations(*THREE)
    shown = plan.diff({1}, {1, 2}, found)
    assert shown['before'] == '1 0001_widgets.sql\n' and shown['after'] == '1 0001_widgets.sql\n2 0002_gadgets.sql\n'


# --- the database side ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('value', ['schema_migrations', 'a.b.c', 'dbfleet.schema-migrations', 'x."y"', 'a;drop.b', '',
                                   '1a.b'])
def test_the_version_table_must_be_schema_qualified_plain_identifiers(value):
    with pytest.raises(ValueError, match='schema.table'):
        sql.parse_table(value)


def test_lock_key_is_stable_per_table_and_fits_a_bigint():
    key = sql.lock_key('dbfleet', 'schema_migrations')
    assert key == sql.lock_key('dbfleet', 'schema_migrations') != sql.lock_key('dbfleet', 'other')
    assert -2 ** 63 <= key < 2 ** 63
    classid, objid = sql.lock_parts(key)
    assert (classid << 32 | objid) == key & 0xFFFFFFFFFFFFFFFF


def test_timeouts_never_zero_and_never_beyond_what_postgresql_takes():
    assert sql.timeout_ms(0.0001, 'lock_timeout') == 1
    assert sql.timeout_ms(10, 'lock_timeout') == 10000
    with pytest.raises(ValueError, match='at most'):
        sql.timeout_ms(30 * 86400, 'statement_timeout')


def test_file_markers_win_over_the_options():
    found = migrations(('0001_a.sql', '-- dbfleet:statement-timeout=2h\nSELECT 1;'))
    settings, lock, statement = sql.file_settings(found[0]['up'], 10, 1800)
    assert settings == dict(lock_timeout='10000ms', statement_timeout='7200000ms') and (lock, statement) == (10, 7200)


def test_dry_run_covers_the_transactional_files_up_to_the_first_non_transactional_one():
    found = migrations(*THREE)
    statements, groups, _deadline = sql.dry_run_statements('up', found, 'dbfleet', 'schema_migrations', False, 10, 60)
    assert [g[0] and g[0]['version'] for g in groups] == [None, 1, 2]
    migration, first, end = groups[1]
    assert statements[first + 1][0] == found[0]['up']['text'] and 'INSERT INTO "dbfleet"."schema_migrations"' in \
        statements[end - 1][0]
    assert sql.group_of(groups, first + 1)[0] is migration
    statements, groups, _deadline = sql.dry_run_statements('up', found[1:], 'dbfleet', 'schema_migrations', True, 10, 60)
    assert [g[0]['version'] for g in groups] == [2]


def test_a_transactional_file_is_sent_whole_a_non_transactional_one_statement_by_statement():
    found = migrations(*THREE)
    assert sql.file_statements(found[0]['up']) == [(found[0]['up']['text'], None)]
    assert sql.file_statements(found[2]['up']) == [(found[2]['up']['statements'][0]['text'], None)]


def test_failure_names_the_file_and_the_line_postgresql_points_at():
    found = migrations(('0002_w.sql', 'SELECT 1;\n-- two\nSELEC 2;\n'))
    info = sql.failure(dict(error='syntax error at or near "SELEC"\nLINE 3: ...', primary='syntax error at or near "SELEC"',
                            sqlstate='42601', statement_position='18'), found[0]['up'])
    assert info == dict(file='0002_w.sql', error='syntax error at or near "SELEC"', sqlstate='42601', line=3)
    assert sql.failure_sentence(info) == '0002_w.sql line 3: syntax error at or near "SELEC" (SQLSTATE 42601)'


def test_failure_of_a_non_transactional_statement_counts_from_that_statement():
    found = migrations(('0003_i.sql', '-- dbfleet:no-transaction\nCREATE INDEX CONCURRENTLY a ON t (x);\n\n'
                                      'CREATE INDEX CONCURRENTLY b ON nope (x);\n'))
    sql_file = found[0]['up']
    info = sql.failure(dict(error='relation "nope" does not exist', sqlstate='42P01', statement_position='32'),
                       sql_file, sql_file['statements'][1])
    assert info['line'] == 4
    assert sql.failure(dict(error='x', sqlstate='42P01'), sql_file, sql_file['statements'][1])['line'] == 4


def test_lock_and_statement_timeouts_get_a_hint():
    found = migrations(('0001_a.sql', 'SELECT 1'))
    assert 'lock_timeout ran out' in sql.failure(dict(error='canceling statement due to lock timeout', sqlstate='55P03'),
                                                 found[0]['up'])['hint']
    assert 'statement-timeout' in sql.failure(dict(error='canceling statement', sqlstate='57014'), found[0]['up'])['hint']


def test_the_holder_of_the_lock_in_words():
    words = sql.describe_holder(dict(pid=4242, application_name='dbfleet pg_migrate', client_addr=None, client_port=-1,
                                     usename='postgres', backend_start='2026-12-01 03:00:00+00', state='active',
                                     query='SELECT pg_sleep(60)', query_start='2026-12-01 03:00:01+00', connected_seconds=12))
    assert 'pid 4242' in words and "'dbfleet pg_migrate'" in words and 'the local socket' in words
    assert 'since 2026-12-01 03:00:00+00 (12s ago)' in words and 'pg_terminate_backend(4242)' in words
    assert 'let it go' in sql.describe_holder(None)


def test_the_version_row_records_checksum_duration_and_kind():
    found = migrations(*THREE)
    text, params = sql.insert_statement('dbfleet', 'schema_migrations', found[2], seconds=1.5)
    assert params == [3, 'index', found[2]['up']['checksum'], 1.5, True] and text.count('%s') == 5
    text, params = sql.insert_statement('dbfleet', 'schema_migrations', found[0])
    assert 'clock_timestamp() - now()' in text and params == [1, 'widgets', found[0]['up']['checksum'], False]


# --- the module's options ---------------------------------------------------------------------------------------

def params(**overrides):
    values = dict(table='dbfleet.schema_migrations', lock_wait='60s', lock_timeout='10s', statement_timeout='30m',
                  path='/srv/migrations', db='app', target=None, state='up', connect_timeout=10)
    values.update(overrides)
    return values


def test_default_options():
    options, problem = pg_migrate.options_from(params())
    assert problem is None
    assert options == dict(schema='dbfleet', table='schema_migrations', lock_wait=60, lock_timeout=10,
                           statement_timeout=1800)


@pytest.mark.parametrize('overrides,words', [
    (dict(path='/srv/../etc'), 'without ".." components'),
    (dict(path='relative/dir'), 'absolute path'),
    (dict(db='host=evil dbname=app'), 'not a connection string'),
    (dict(db='postgresql://evil/app'), 'not a connection string'),
    (dict(target=-3), 'must be 0 or a migration version'),
    (dict(state='down'), 'needs a target'),
    (dict(lock_timeout='nan'), 'not a duration'),
    (dict(statement_timeout='0'), 'greater than zero'),
    (dict(statement_timeout='100d'), 'at most'),
    (dict(table='public'), 'schema.table'),
    (dict(connect_timeout=0), 'connect_timeout must be from 1'),
])
def test_unusable_options_are_refused_in_words(overrides, words):
    options, problem = pg_migrate.options_from(params(**overrides))
    assert options is None and words in problem
