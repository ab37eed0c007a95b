# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content verification without a server: the order and COPY statement every scan uses, schema lines, and the
reference-vs-restored comparison and its verdict (_restore.contentscan, _restore.verify)."""

from __future__ import annotations

import copy
import hashlib

from ansible_collections.dbfleet.postgresql.plugins.module_utils._restore import contentscan, verify


def test_order_is_the_same_on_every_server():
    assert contentscan.order_expression('id', False, 'N') == '"id"'
    assert contentscan.order_expression('name', True, 'S') == '"name" COLLATE "C"'
    assert contentscan.order_expression('doc', False, 'U') == '("doc")::text COLLATE "C"'
    assert contentscan.order_expression('tags', True, 'A') == '("tags")::text COLLATE "C"'


def test_copy_statement_streams_every_column_in_order():
    columns = [('id', 'bigint', False, 'N'), ('we"ird', 'text', True, 'S'), ('doc', 'jsonb', False, 'U')]
    assert contentscan.copy_statement('public', 'orders', columns, ['id']) == (
        'COPY (SELECT "id", "we""ird", "doc" FROM ONLY "public"."orders" ORDER BY "id") TO STDOUT')
    assert contentscan.copy_statement('s', 't', columns, ['we"ird', 'doc']).endswith(
        'ORDER BY "we""ird" COLLATE "C", ("doc")::text COLLATE "C") TO STDOUT')
    assert contentscan.copy_statement('s', 't', [], []) == 'COPY (SELECT NULL FROM ONLY "s"."t") TO STDOUT'


def test_index_definitions_lose_their_table_name():
    row = contentscan.normalise_schema_row('index', ['app', 'orders', 'orders_pkey',
                                                     'CREATE UNIQUE INDEX orders_pkey ON app.orders USING btree (id)'])
    assert row == ['index', 'app', 'orders', 'orders_pkey', 'UNIQUE INDEX USING btree (id)']
    assert contentscan.normalise_schema_row('table', ['app', 't', 'r', None]) == ['table', 'app', 't', 'r', '']


def _table(rows, content, persistence='p'):
    return dict(rows=rows, sha256=hashlib.sha256(content).hexdigest(), order_by=['id'], persistence=persistence)


REFERENCE = dict(
    tables={'public.orders': _table(3, b'1\n2\n3\n'), 'public.customers': _table(1, b'a\n'),
            'public.cache': _table(5, b'x\n' * 5, 'u')},
    schema=[['table', 'public', 'orders', 'r', 'p'], ['constraint', 'public', 'orders', 'orders_pkey', 'p', 'PRIMARY KEY (id)'],
            ['constraint', 'public', 'orders', 'orders_customer_fkey', 'f', 'FOREIGN KEY ...'],
            ['index', 'public', 'orders', 'orders_pkey', 'UNIQUE INDEX USING btree (id)'],
            ['table', 'public', 'customers', 'r', 'p'], ['extension', 'database', 'plpgsql', '1.0']])


def test_an_identical_copy_is_equal_and_unlogged_tables_are_expected_empty():
    restored = copy.deepcopy(REFERENCE)
    restored['tables']['public.cache'] = _table(0, b'', 'u')
    result = verify.compare_database(REFERENCE, restored, skip_unlogged=True)
    assert result['equal'] and result['schema']['equal']
    assert result['tables']['public.cache']['equal'] is None and 'unlogged' in result['tables']['public.cache']['note']
    assert verify.verdict_problems('app', result) == []


def test_same_count_other_content_is_caught_and_said():
    restored = copy.deepcopy(REFERENCE)
    restored['tables']['public.orders'] = _table(3, b'1\n2\n4\n')
    result = verify.compare_database(REFERENCE, restored, skip_unlogged=True)
    assert not result['equal'] and result['tables']['public.orders']['equal'] is False
    problems = verify.verdict_problems('app', result)
    assert problems == ['app: content differs from the reference in public.orders (3 rows restored, 3 in the reference, '
                        'same count but other content)']
    assert verify.verdict_problems('app', result, checksums_must_match=False) == []


def test_missing_tables_schema_differences_and_broken_indexes_fail():
    restored = copy.deepcopy(REFERENCE)
    del restored['tables']['public.customers']
    restored['schema'] = [line for line in restored['schema'] if line[0] != 'index']
    restored['amcheck'] = dict(checked=3, failed=[dict(index='public.orders_pkey', error='item order invariant violated')])
    result = verify.compare_database(REFERENCE, restored)
    problems = ' | '.join(verify.verdict_problems('app', result))
    assert 'tables missing from the restored copy: public.customers' in problems
    assert 'the schema differs' in problems and 'orders_pkey' in problems
    assert 'amcheck found broken indexes: public.orders_pkey: item order invariant violated' in problems
    # a dump older than the reference: what it lacks is reported in the comparison, only amcheck fails it
    relaxed = verify.verdict_problems('app', result, checksums_must_match=False, schema_must_match=False)
    assert relaxed == ['app: amcheck found broken indexes: public.orders_pkey: item order invariant violated']
    assert result['missing_tables'] == ['public.customers'] and not result['schema']['equal']


def test_a_table_restored_into_another_schema_compares_as_the_original():
    restored = dict(tables={'restore_x.orders': dict(REFERENCE['tables']['public.orders'])},
                    schema=[['table', 'restore_x', 'orders', 'r', 'p'],
                            ['constraint', 'restore_x', 'orders', 'orders_pkey', 'p', 'PRIMARY KEY (id)'],
                            ['index', 'restore_x', 'orders', 'orders_pkey', 'UNIQUE INDEX USING btree (id)'],
                            ['table', 'public', 'orders', 'r', 'p'], ['table', 'public', 'customers', 'r', 'p']])
    result = verify.compare_database(REFERENCE, restored, table_map={'restore_x.orders': 'public.orders'},
                                     schema_map={'restore_x': 'public'})
    assert result['equal'], result  # foreign keys are never part of a partial restore; the live tables are not looked at
    assert list(result['tables']) == ['public.orders']


def test_amcheck_ok():
    assert verify.amcheck_ok(None) and verify.amcheck_ok({'skipped': 'not installed'})
    assert not verify.amcheck_ok({'failed': [{'index': 'i', 'error': 'e'}]})
