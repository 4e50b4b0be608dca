"""Checks that a piece of SQL read from a backup is one statement of the expected kind, and no more.

A backup's recorded schema (ops/engines/pg_schema.py) is data: the definitions the server's catalog
functions printed (``pg_get_indexdef``, ``pg_get_expr`` ...). A crafted archive can put anything
there, so before a definition is executed it is scanned the way PostgreSQL's lexer would see it
(string constants, escape strings, quoted identifiers, dollar quotes) and refused if, outside
quotes, it holds a ``;``, a comment, or parentheses that close what they did not open: any of those
is how a second statement or a clause of another statement would get in. Each kind then matches
its own shape (an index definition is ``CREATE [UNIQUE] INDEX <name> ON <table> USING ...``);
the names are not taken from the definition but quoted by us.

The scan is conservative where PostgreSQL's lexer and ours could disagree: whatever it cannot
read as PostgreSQL would (an unterminated quote, a comment) is refused, never guessed.
The session that executes these runs with ``standard_conforming_strings = on``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ops.errors import OpsError


class UnsafeDefinition(OpsError):
    """A definition recorded in a backup is not the single statement its kind allows."""


# PostgreSQL's identifier characters: ASCII letters, "_" (then digits, and "$" but not in a
# dollar-quote tag) and every non-ASCII character. Written as the ASCII characters they exclude:
# the same sets, and re compiles them in 0.2 ms where [\x80-\U0010ffff] took 7-10 ms each (30 ms
# of every restore's start, measured).
_START_CHAR = r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]"
_IDENT_START = re.compile(_START_CHAR)
_IDENT = re.compile(_START_CHAR + r"[^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]*")
_NUMBER = re.compile(r"[0-9][0-9A-Za-z_.]*")
_PARAM = re.compile(r"\$[0-9]+")
_DOLLAR_TAG = re.compile(r"\$(?:" + _START_CHAR + r"[^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]*)?\$")


@dataclass(frozen=True)
class Scan:
    """What is outside quotes: the text with every quoted part blanked out (same length)."""

    outside: str


def scan(text: str, what: str, *, top_level_commas: bool = True) -> Scan:
    """Lex ``text``; refuse a ``;``, a comment or unbalanced parentheses outside quotes.

    ``top_level_commas=False``: also refuse a ``,`` outside quotes and parentheses (in the body of
    an ``ALTER TABLE`` subcommand it would start another subcommand).
    """
    out: list[str] = []
    depth = brackets = 0
    i, n = 0, len(text)
    previous_ident = ""
    while i < n:
        char = text[i]
        if _IDENT_START.match(char):
            match = _IDENT.match(text, i)
            assert match is not None
            previous_ident = match.group()
            out.append(previous_ident)
            i = match.end()
            continue
        escape_string = previous_ident in ("E", "e") and char == "'"
        previous_ident = ""
        if char.isdigit():
            match = _NUMBER.match(text, i)
            assert match is not None
            out.append(match.group())
            i = match.end()
        elif char == "'":
            end = _string_end(text, i, escapes=escape_string)
            if end < 0:
                raise UnsafeDefinition(f"{what}: an unterminated string constant.")
            out.append("'" + " " * (end - i - 2) + "'")
            i = end
        elif char == '"':
            end = text.find('"', i + 1)
            while end >= 0 and text.startswith('""', end):
                end = text.find('"', end + 2)
            if end < 0:
                raise UnsafeDefinition(f"{what}: an unterminated quoted identifier.")
            out.append('"' + "x" * (end - i - 1) + '"')
            i = end + 1
        elif char == "$":
            param = _PARAM.match(text, i)
            tag = _DOLLAR_TAG.match(text, i)
            if param is not None:
                out.append(param.group())
                i = param.end()
            elif tag is not None:
                close = text.find(tag.group(), tag.end())
                if close < 0:
                    raise UnsafeDefinition(f"{what}: an unterminated dollar-quoted string.")
                end = close + len(tag.group())
                out.append("$" + " " * (end - i - 2) + "$")
                i = end
            else:
                out.append(char)
                i += 1
        elif text.startswith("--", i) or text.startswith("/*", i):
            raise UnsafeDefinition(f"{what}: holds a comment outside quotes.")
        elif char == ";":
            raise UnsafeDefinition(f"{what}: holds a ';' outside quotes (a second statement).")
        elif char == "\\":
            # Only a psql meta-command or a stray escape: never part of a catalog function's output.
            raise UnsafeDefinition(f"{what}: holds a backslash outside quotes.")
        else:
            if char == "," and depth == 0 and brackets == 0 and not top_level_commas:
                raise UnsafeDefinition(f"{what}: holds a ',' outside parentheses (another clause).")
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth < 0:
                    raise UnsafeDefinition(f"{what}: closes a parenthesis it did not open.")
            elif char == "[":
                brackets += 1
            elif char == "]":
                brackets -= 1
                if brackets < 0:
                    raise UnsafeDefinition(f"{what}: closes a bracket it did not open.")
            out.append(char)
            i += 1
    if depth or brackets:
        raise UnsafeDefinition(f"{what}: a parenthesis or bracket is left open.")
    return Scan("".join(out))


def _string_end(text: str, start: int, *, escapes: bool) -> int:
    """The index after the closing quote of the string constant opened at ``start``, or -1."""
    i = start + 1
    while i < len(text):
        char = text[i]
        if escapes and char == "\\":
            i += 2
            continue
        if char == "'":
            if text.startswith("''", i):
                i += 2
                continue
            return i + 1
        i += 1
    return -1


# A name as the catalog functions print it: plain or quoted, optionally schema-qualified.
NAME_PART = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
QUALIFIED_NAME = rf"(?:{NAME_PART}\.)?{NAME_PART}"
# What format_type prints: a name (qualified where not visible), the few SQL-standard multi-word
# spellings, a typmod of digits, interval fields, array brackets. Nothing else (no clause after it).
_TYPE = re.compile(
    rf"{QUALIFIED_NAME}(?: varying| precision)?(?:\(\d+(?:,\s?\d+)?\))?(?: with(?:out)? time zone)?"
    r"(?: (?:year|month|day|hour|minute|second)(?: to (?:month|hour|minute|second))?)?(?:\(\d+\))?"
    r"(?:\[\d*\])*"
)


def expression(text: str, what: str) -> str:
    """A scalar expression (a column default, a generated column's expression)."""
    if not text.strip():
        raise UnsafeDefinition(f"{what}: is empty.")
    scan(text, what, top_level_commas=False)
    return text


def type_name(text: str, what: str) -> str:
    """A type as ``format_type`` prints it: names, a typmod of digits, array brackets; nothing else."""
    if not _TYPE.fullmatch(text):
        raise UnsafeDefinition(f"{what}: {text[:80]!r} is not a type name.")
    scan(text, what)
    return text


def collation_name(text: str, what: str) -> str:
    if not re.fullmatch(QUALIFIED_NAME, text):
        raise UnsafeDefinition(f"{what}: {text[:80]!r} is not a collation name.")
    return text


_INDEX = re.compile(
    rf"CREATE (?P<unique>UNIQUE )?INDEX {NAME_PART} ON (?P<only>ONLY )?{QUALIFIED_NAME} "
    r"USING (?P<method>[a-z_][a-z0-9_]*) (?P<body>\(.*)",
    re.DOTALL,
)


def index_definition(text: str, what: str) -> tuple[bool, bool, str, str]:
    """``pg_get_indexdef`` output -> (unique, only, access method, the part from the column list on)."""
    scan(text, what)
    match = _INDEX.fullmatch(text)
    if match is None:
        raise UnsafeDefinition(f"{what}: is not one CREATE INDEX ... ON <table> USING ... statement.")
    return bool(match["unique"]), bool(match["only"]), match["method"], match["body"]


_CONSTRAINT = re.compile(
    r"(?:PRIMARY KEY \(|UNIQUE (?:NULLS NOT DISTINCT )?\(|FOREIGN KEY \(|CHECK \(|EXCLUDE USING [a-z_]+ \()",
)
_CONSTRAINT_KINDS = {"p": "PRIMARY KEY", "u": "UNIQUE", "f": "FOREIGN KEY", "c": "CHECK", "x": "EXCLUDE"}


def constraint_definition(text: str, kind: str, what: str) -> str:
    """``pg_get_constraintdef`` output: the body of one ``ALTER TABLE ... ADD CONSTRAINT name``."""
    scan(text, what, top_level_commas=False)
    expected = _CONSTRAINT_KINDS.get(kind)
    if expected is None or not _CONSTRAINT.match(text) or not text.startswith(expected):
        raise UnsafeDefinition(f"{what}: is not a {expected or kind!r} constraint definition.")
    return text


_VIEW = re.compile(r"\s*(?:SELECT|WITH|VALUES)\b", re.IGNORECASE)


def view_definition(text: str, what: str) -> str:
    """``pg_get_viewdef`` output (one query; its trailing ``;`` removed by us)."""
    body = text.rstrip()
    body = body.removesuffix(";")
    scan(body, what)
    if not _VIEW.match(body):
        raise UnsafeDefinition(f"{what}: is not one query.")
    return body


_FUNCTION = re.compile(
    rf"CREATE OR REPLACE (?P<kind>FUNCTION|PROCEDURE) {QUALIFIED_NAME}(?P<rest>\(.*)",
    re.DOTALL,
)
TRUSTED_LANGUAGES = ("sql", "plpgsql")
_LANGUAGE = re.compile(r"\bLANGUAGE (?P<language>[a-z_][a-z0-9_]*)\b")


def function_definition(text: str, what: str) -> tuple[str, str]:
    """``pg_get_functiondef`` output -> (FUNCTION or PROCEDURE, everything after its name).

    The body must be a dollar-quoted string (it is what the server prints): a body that is not
    quoted (``BEGIN ATOMIC ... END``, which holds ``;`` outside quotes) is refused like any other.
    """
    body = text.rstrip()
    outside = scan(body, what).outside
    match = _FUNCTION.fullmatch(body)
    language = _LANGUAGE.search(outside)
    if match is None or not re.search(r"\sAS \$", outside) or language is None:
        raise UnsafeDefinition(f"{what}: is not one CREATE FUNCTION statement with a quoted body.")
    if language["language"] not in TRUSTED_LANGUAGES:
        # Functions in other languages come with extensions (not recorded) or run code outside SQL.
        raise UnsafeDefinition(
            f"{what}: is written in {language['language']}, not in {' or '.join(TRUSTED_LANGUAGES)}."
        )
    return match["kind"], match["rest"]


_TRIGGER = re.compile(
    rf"CREATE (?P<constraint>CONSTRAINT )?TRIGGER {NAME_PART} (?P<when>BEFORE|AFTER|INSTEAD OF) "
    rf"(?P<events>[A-Z ,\"a-z_0-9]+?) ON {QUALIFIED_NAME} (?P<rest>.*)",
    re.DOTALL,
)
_TRIGGER_TAIL = re.compile(r".*EXECUTE (?:FUNCTION|PROCEDURE) " + QUALIFIED_NAME + r"\(.*\)", re.DOTALL)


def trigger_definition(text: str, what: str) -> tuple[str, str, str, str]:
    """``pg_get_triggerdef`` output -> (CONSTRAINT or "", timing, events, what follows the table)."""
    scan(text, what)
    match = _TRIGGER.fullmatch(text)
    if match is None or not _TRIGGER_TAIL.fullmatch(match["rest"]):
        raise UnsafeDefinition(f"{what}: is not one CREATE TRIGGER ... ON <table> ... EXECUTE statement.")
    events = match["events"]
    if not re.fullmatch(
        rf"(?:INSERT|DELETE|TRUNCATE|UPDATE(?: OF {NAME_PART}(?:, {NAME_PART})*)?)"
        rf"(?: OR (?:INSERT|DELETE|TRUNCATE|UPDATE(?: OF {NAME_PART}(?:, {NAME_PART})*)?))*",
        events,
    ):
        raise UnsafeDefinition(f"{what}: names events a trigger cannot have.")
    return match["constraint"] or "", match["when"], events, match["rest"]
