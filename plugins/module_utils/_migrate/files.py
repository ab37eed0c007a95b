# Copyright: (c) 2026, dbfleet maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration directory: which files are migrations, what their markers say, their statements.

Naming: ``<version>_<name>.sql`` applies a migration, ``<version>_<name>.down.sql`` reverts it.
The version is a whole number (leading zeros are fine: ``0007`` is 7), the name letters, digits,
``_`` and ``-``. Hidden files and files not ending in ``.sql`` (a README) are not migrations;
anything else ending in ``.sql`` that does not follow the naming is refused, as is any name with a
control character, two files with one version and a down file without its migration.

Markers are comment lines at the top of a file, before its first statement:

* ``-- dbfleet:no-transaction``: run the file's statements one by one outside a transaction
  (``CREATE INDEX CONCURRENTLY``); such a file cannot be dry-run;
* ``-- dbfleet:lock-timeout=30s`` / ``-- dbfleet:statement-timeout=2h``: this file's own timeouts.

Reading is root-safe (``_files``): the directory is reached without following symlinks another user
could have planted, and a migration must be a regular file, never a symlink.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re

from ansible_collections.dbfleet.postgresql.plugins.module_utils import _files
from ansible_collections.dbfleet.postgresql.plugins.module_utils._safety import control_character_problem
from ansible_collections.dbfleet.postgresql.plugins.module_utils._units import parse_duration

NAME_RE = re.compile(r'^(?P<version>[0-9]{1,18})_(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,199})(?P<down>\.down)?\.sql$')
MARKER_RE = re.compile(r'^\s*--\s*dbfleet:\s*(?P<key>[^=\s]*)\s*(?:=\s*(?P<value>\S*))?\s*$')
MARKERS = ('no-transaction', 'lock-timeout', 'statement-timeout')
MAX_FILE_BYTES = 16 * 1024 * 1024

_IDENT_RE = re.compile(r'[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*')
_DOLLAR_RE = re.compile(r'\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$')
_WORDS_KEPT = 6


class SqlSplitError(ValueError):
    """The SQL could not be split into statements (an unterminated quote or comment); ``line`` is where it began."""

    def __init__(self, message, line):
        super(SqlSplitError, self).__init__('%s (line %d)' % (message, line))
        self.line = line


# --- names ------------------------------------------------------------------------------------------------------

def classify(name):
    """``(kind, version, label)`` for a directory entry: kind ``up`` or ``down``; None when it is not a migration.

    ValueError with the reason when it looks like one (ends in ``.sql``) but breaks the naming, or
    when the name has a control character (whatever it ends with).
    """
    problem = control_character_problem(name)
    if problem:
        raise ValueError('the file name %r %s: refused (rename it)' % (name, problem))
    if name.startswith('.') or not name.lower().endswith('.sql'):
        return None
    match = NAME_RE.match(name)
    if not match:
        raise ValueError('%r does not follow the naming <version>_<name>.sql or <version>_<name>.down.sql (version '
                         'digits, name letters, digits, _ and -; e.g. 0007_add_index.sql): rename it' % name)
    version = int(match.group('version'))
    if version == 0:
        raise ValueError('%r: version 0 means "nothing applied"; migrations start at 1' % name)
    return ('down' if match.group('down') else 'up'), version, match.group('name')


# --- statements -------------------------------------------------------------------------------------------------

def line_of(text, offset):
    """The 1-based line of ``offset`` in ``text``."""
    return text.count('\n', 0, offset) + 1


def _skip_quoted(text, i, quote, backslash=False):
    """The offset after the quoted text starting at ``i`` (doubled quotes and, when asked, backslashes escape)."""
    j = i + 1
    while j < len(text):
        char = text[j]
        if backslash and char == '\\':
            j += 2
            continue
        if char == quote:
            if text.startswith(quote * 2, j):
                j += 2
                continue
            return j + 1
        j += 1
    raise SqlSplitError('unterminated %s' % ('quoted identifier' if quote == '"' else 'string'), line_of(text, i))


def _skip_block_comment(text, i):
    depth, j = 1, i + 2
    while j < len(text) and depth:
        if text.startswith('/*', j):
            depth, j = depth + 1, j + 2
        elif text.startswith('*/', j):
            depth, j = depth - 1, j + 2
        else:
            j += 1
    if depth:
        raise SqlSplitError('unterminated /* comment', line_of(text, i))
    return j


def _in_routine(words):
    """Whether a statement starting with ``words`` is CREATE [OR REPLACE] FUNCTION/PROCEDURE (psql's heuristic)."""
    if words[:1] != ['create'] or len(words) < 2:
        return False
    if words[1] in ('function', 'procedure'):
        return True
    return words[1:3] == ['or', 'replace'] and len(words) > 3 and words[3] in ('function', 'procedure')


class _Splitter(object):
    """One pass over SQL text, like psql's lexer: quotes, dollar quotes, comments, parentheses, BEGIN ATOMIC."""

    def __init__(self, text):
        self.text = text
        self.statements = []
        self.start = 0
        self._reset()

    def _reset(self):
        self.code_start = None
        self.words = []
        self.count = 0
        self.parens = 0
        self.begin_depth = 0

    def code(self, i):
        if self.code_start is None:
            self.code_start = i

    def word(self, word):
        self.count += 1
        if len(self.words) < _WORDS_KEPT:
            self.words.append(word)
        if not self.parens and _in_routine(self.words):
            if word == 'begin' or (word == 'case' and self.begin_depth):
                self.begin_depth += 1
            elif word == 'end' and self.begin_depth:
                self.begin_depth -= 1

    def end_statement(self, end):
        if self.code_start is not None:
            self.statements.append(dict(text=self.text[self.start:end], offset=self.start,
                                        line=line_of(self.text, self.code_start), words=list(self.words)))
        self.start = end + 1
        self._reset()

    def run(self):
        text, i = self.text, 0
        while i < len(text):
            char = text[i]
            if text.startswith('--', i):
                newline = text.find('\n', i)
                i = len(text) if newline < 0 else newline + 1
            elif text.startswith('/*', i):
                i = _skip_block_comment(text, i)
            elif char in '\'"':
                self.code(i)
                i = _skip_quoted(text, i, char)
            elif char == '$' and _DOLLAR_RE.match(text, i):
                self.code(i)
                tag = _DOLLAR_RE.match(text, i).group(0)
                close = text.find(tag, i + len(tag))
                if close < 0:
                    raise SqlSplitError('unterminated dollar-quoted string %s' % tag, line_of(text, i))
                i = close + len(tag)
            elif _IDENT_RE.match(text, i):
                self.code(i)
                word = _IDENT_RE.match(text, i).group(0)
                i += len(word)
                if word.lower() == 'e' and text.startswith("'", i):
                    i = _skip_quoted(text, i, "'", backslash=True)
                self.word(word.lower())
            elif char == '\\' and (i == 0 or text[i - 1] == '\n') and self.code_start is None:
                raise SqlSplitError('a psql meta-command (%s) is not SQL: pg_migrate sends the file to the server as '
                                    'it is' % text[i:].split(None, 1)[0], line_of(text, i))
            elif char == ';' and not self.parens and not self.begin_depth:
                self.end_statement(i)
                i += 1
            else:
                if char == '(':
                    self.parens += 1
                elif char == ')':
                    self.parens = max(0, self.parens - 1)
                if not char.isspace():
                    self.code(i)
                i += 1
        self.end_statement(len(text))
        return self.statements


def split_sql(text):
    """The statements of ``text``: dicts ``text`` (without its ``;``), ``offset``, ``line`` (of its first code)
    and ``words`` (its first few words, lower case). Comments alone are not statements. SqlSplitError."""
    return _Splitter(text).run()


def _starts(words, *prefix):
    return words[:len(prefix)] == list(prefix)


def transaction_control(words):
    """What a statement starting with ``words`` does to the transaction it runs in (a sentence), or None."""
    if words[:1] in (['begin'], ['commit'], ['end'], ['abort']) or _starts(words, 'start', 'transaction'):
        return '%s ends or starts a transaction' % words[0].upper()
    if words[:1] == ['rollback'] and words[1:2] != ['to']:
        return 'ROLLBACK ends the transaction'
    if _starts(words, 'prepare', 'transaction'):
        return 'PREPARE TRANSACTION ends the transaction'
    return None


def needs_no_transaction(words):
    """The command (words) when a statement starting with ``words`` cannot run inside a transaction block, or None."""
    if words[:1] == ['vacuum']:
        return 'VACUUM'
    if _starts(words, 'alter', 'system') or (
            words[:1] in (['create'], ['drop']) and words[1:2] in (['database'], ['tablespace'])):
        return ' '.join(words[:2]).upper()
    if words[:1] in (['create'], ['drop'], ['reindex']) and 'concurrently' in words[:5]:
        return ' '.join(words[:words.index('concurrently') + 1]).upper()
    return None


# --- markers and files ------------------------------------------------------------------------------------------

def parse_markers(text):
    """``(options, problems)``: the ``-- dbfleet:`` markers of the file's header (comment lines before its first
    statement). options: ``non_transactional`` (bool), ``lock_timeout``/``statement_timeout`` (seconds or None)."""
    options = dict(non_transactional=False, lock_timeout=None, statement_timeout=None)
    problems = []
    in_header = True
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if in_header and stripped and not stripped.startswith('--'):
            in_header = False
        match = MARKER_RE.match(line)
        if not match:
            continue
        key, value = match.group('key').lower(), match.group('value')
        if not in_header:
            problems.append('line %d: the marker %r comes after the first statement; markers go in the comment lines at '
                            'the top of the file' % (number, stripped))
        elif key not in MARKERS:
            problems.append('line %d: unknown marker %r (known: %s)' % (number, stripped, ', '.join(
                '-- dbfleet:' + m + ('' if m == 'no-transaction' else '=<duration>') for m in MARKERS)))
        elif key == 'no-transaction':
            if value is not None:
                problems.append('line %d: -- dbfleet:no-transaction takes no value' % number)
            options['non_transactional'] = True
        else:
            try:
                options[key.replace('-', '_')] = parse_duration(value or '', key)
            except ValueError as exc:
                problems.append('line %d: %s' % (number, exc))
    return options, problems


def sql_file(name, data):
    """A migration file from its bytes: dict ``file``, ``checksum`` (SHA-256 of the bytes), ``text``, ``statements``,
    the marker options; plus ``problems`` (sentences; the file must not run when there are any)."""
    problems = []
    info = dict(file=name, checksum=hashlib.sha256(data).hexdigest(), text='', statements=[], problems=problems)
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as exc:
        problems.append('%s is not UTF-8 text (byte %d)' % (name, exc.start))
        return info
    if text.startswith('\ufeff'):
        text = text[1:]
    if '\x00' in text:
        problems.append('%s contains a NUL byte, which PostgreSQL cannot take' % name)
        return info
    options, marker_problems = parse_markers(text)
    info.update(options, text=text)
    problems.extend('%s %s' % (name, problem) for problem in marker_problems)
    try:
        info['statements'] = split_sql(text)
    except SqlSplitError as exc:
        problems.append('%s: %s' % (name, exc))
        return info
    if not info['statements']:
        problems.append('%s has no SQL statement (an empty migration is usually a mistake)' % name)
    for statement in info['statements'] if not options['non_transactional'] else ():
        words = statement['words']
        control = transaction_control(words)
        command = needs_no_transaction(words)
        if control:
            problems.append('%s line %d: %s, but every migration already runs in its own transaction (and a dry run '
                            'must be able to roll it back): remove it' % (name, statement['line'], control))
        elif command:
            problems.append('%s line %d: %s cannot run inside a transaction: make the first line of the file '
                            '"-- dbfleet:no-transaction" (its statements then run one by one, and it cannot be dry-run)'
                            % (name, statement['line'], command))
    return info


def assemble(entries):
    """Migrations from ``entries`` (``(file name, bytes)`` of the migration files): ``(migrations, problems)``.

    Migrations are sorted by version; each is a dict ``version``, ``name``, ``up`` and ``down`` (a
    :func:`sql_file`, or None). A name breaking the naming, two files with one version and a down file
    without its migration are problems.
    """
    ups, downs, problems = {}, {}, []
    for name, data in entries:
        try:
            kind, version, label = classify(name)
        except (ValueError, TypeError) as exc:
            problems.append(str(exc) if isinstance(exc, ValueError) else '%r is not a migration file name' % name)
            continue
        bucket = ups if kind == 'up' else downs
        if version in bucket:
            problems.append('version %d has two %sfiles, %s and %s: versions must be unique (renumber one)'
                            % (version, 'down ' if kind == 'down' else '', bucket[version][0], name))
            continue
        bucket[version] = (name, label, data)
    migrations = []
    for version in sorted(ups):
        name, label, data = ups[version]
        up = sql_file(name, data)
        problems.extend(up.pop('problems'))
        down = None
        if version in downs:
            down_name, down_label, down_data = downs.pop(version)
            if down_label != label:
                problems.append('%s does not revert %s (the names differ): name it %s.down.sql'
                                % (down_name, name, name[:-len('.sql')]))
            down = sql_file(down_name, down_data)
            problems.extend(down.pop('problems'))
        migrations.append(dict(version=version, name=label, up=up, down=down))
    for version in sorted(downs):
        problems.append('%s has no migration to revert: there is no <version>_<name>.sql with version %d'
                        % (downs[version][0], version))
    return migrations, problems


def read_directory(path):
    """``(migrations, problems)`` of the directory ``path`` (see :func:`assemble`), read root-safely.

    Raises ``_files.UnsafePath`` or OSError when the directory itself cannot be used.
    """
    fd = _files.open_dir(path)
    try:
        listing = [(entry.name, entry.is_symlink(), entry.is_dir(follow_symlinks=False)) for entry in os.scandir(fd)]
    finally:
        os.close(fd)
    entries, problems = [], []
    for name, is_link, is_dir in sorted(listing):
        try:
            if classify(name) is None:
                continue
        except ValueError as exc:
            problems.append(str(exc))
            continue
        where = os.path.join(path, name)
        if is_dir:
            problems.append('%s is a directory, not a migration file' % where)
        elif is_link:
            problems.append('%s is a symlink: refused (a migration must be a regular file in the directory itself)'
                            % where)
        if is_dir or is_link:
            continue
        try:
            data = _files.read_regular(where, MAX_FILE_BYTES + 1)
        except (OSError, _files.UnsafePath) as exc:
            problems.append('%s cannot be read: %s' % (where, exc))
            continue
        if data is None:
            problems.append('%s disappeared while the directory was read' % where)
        elif len(data) > MAX_FILE_BYTES:
            problems.append('%s is larger than %d MiB: not a migration pg_migrate runs' % (where, MAX_FILE_BYTES // 1024 ** 2))
        else:
            entries.append((name, data))
    migrations, more = assemble(entries)
    return migrations, problems + more
