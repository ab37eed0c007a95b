# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_look, shared by the read-only modules: thresholds as numbers named in every error, the options and the timeout
rule, queries that fail in words with their stage, and the verdict."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _look
from ansible_collections.dbfleet.postgresql.plugins.module_utils._pgquery import PgQueryError


def run(args, body, capsys, **kwargs):
    """Build a LookModule from ``args``, call ``body(module)``; the JSON it exits with and the exit code."""
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        body(_look.LookModule(argument_spec=dict(max_lag=dict(type='str')), **kwargs))
    return json.loads(capsys.readouterr().out), info.value.code


# --- thresholds -------------------------------------------------------------------------------------------------

def test_thresholds_of_every_kind():
    params = dict(size='16MB', age='5m', count=3, names='a,b')
    parsed = _look.parse_thresholds(params, [('size', 'size'), ('age', 'duration'), ('count', 'count'),
                                             ('names', lambda value, option: (option, value.split(',')))])
    assert parsed == dict(size=16 * 1000 ** 2, age=300, count=3, names=('names', ['a', 'b']))


def test_absent_thresholds_are_none():
    assert _look.parse_thresholds({}, [('size', 'size'), ('age', 'duration'), ('count', 'count')]) == dict(
        size=None, age=None, count=None)


@pytest.mark.parametrize('kind,value,words', [('size', 'lots', 'not a size'), ('duration', 'nan', 'not a duration'),
                                              ('count', -1, 'must not be negative'), ('size', '-5k', 'must not be negative')])
def test_a_bad_threshold_names_its_option(kind, value, words):
    with pytest.raises(ValueError, match=words) as info:
        _look.parse_thresholds(dict(my_option=value), [('my_option', kind)])
    assert str(info.value).startswith('my_option')


def test_thresholds_are_read_in_the_order_given():
    bad = dict(first='x', second='y')
    with pytest.raises(ValueError, match='^first'):
        _look.parse_thresholds(bad, [('first', 'size'), ('second', 'duration')])
    with pytest.raises(ValueError, match='^second'):
        _look.parse_thresholds(bad, [('second', 'duration'), ('first', 'size')])


# --- the options --------------------------------------------------------------------------------------------------

def test_options_of_a_look():
    spec = _look.look_argument_spec()
    assert spec['run_as'] == dict(type='str', default='postgres')
    assert spec['connect_timeout'] == dict(type='int', default=10)
    assert spec['fail_on_violation'] == dict(type='bool', default=False)
    assert spec['login_password']['no_log'] is True
    assert 'fail_on_violation' not in _look.look_argument_spec(verdict=False)


@pytest.mark.parametrize('timeout', [0, -1, 601, 100000])
def test_connect_timeout_out_of_range_is_refused(capsys, timeout):
    with patch_module_args(dict(connect_timeout=timeout)), pytest.raises(SystemExit):
        _look.LookModule(argument_spec={})
    out = json.loads(capsys.readouterr().out)
    assert out['failed'] and out['msg'] == 'connect_timeout must be from 1 to 600 seconds, got %d' % timeout


def test_a_look_runs_the_same_in_check_mode_and_knows_its_connection():
    with patch_module_args(dict(login_host='127.0.0.1', login_user='monitor', connect_timeout=600, _ansible_check_mode=True)):
        module = _look.LookModule(argument_spec=dict(extra=dict(type='bool', default=True)), verdict=False)
    assert module.check_mode and module.params['extra'] is True and 'fail_on_violation' not in module.params
    assert module.connection == dict(host='127.0.0.1', port=5432, user='monitor', dbname='postgres', sslmode=None)


def test_query_passes_the_login_and_fails_in_words_with_the_stage(capsys, monkeypatch):
    seen = []

    def refuse(module, connection, statements, **kwargs):
        seen.append((connection['user'], statements, kwargs))
        raise PgQueryError('could not connect to PostgreSQL as monitor@127.0.0.1:5432: timeout expired.', stage='connect')

    monkeypatch.setattr(_look, 'run_statements', refuse)
    args = dict(login_host='127.0.0.1', login_user='monitor', login_password='s3cret', run_as='postgres',
                connect_timeout=3)
    out, code = run(args, lambda module: module.query([('SELECT 1', None)]), capsys)
    assert code == 1 and out['stage'] == 'connect' and out['msg'].startswith('could not connect to PostgreSQL')
    assert seen == [('monitor', [('SELECT 1', None)], dict(password='s3cret', run_as='postgres', connect_timeout=3))]
    assert 's3cret' not in json.dumps(out)


def test_query_returns_the_results(monkeypatch):
    monkeypatch.setattr(_look, 'run_statements', lambda module, connection, statements, **kwargs: [dict(rows=[[1]])])
    with patch_module_args({}):
        module = _look.LookModule(argument_spec={})
    assert module.query([('SELECT 1', None)]) == [dict(rows=[[1]])]


# --- the verdict --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('fail,violations,code', [(False, [], 0), (False, ['a is late', 'b is gone'], 0),
                                                  (True, [], 0), (True, ['a is late', 'b is gone'], 1)])
def test_the_verdict_fails_the_host_only_when_asked(capsys, fail, violations, code):
    result = dict(changed=False, violations=violations, healthy=not violations)
    out, exit_code = run(dict(fail_on_violation=fail), lambda module: _look.exit_with_verdict(module, result), capsys)
    assert exit_code == code and out['violations'] == violations and out['healthy'] is (not violations)
    if code:
        assert out['failed'] and out['msg'] == 'a is late; b is gone'
    else:
        assert not out.get('failed')
