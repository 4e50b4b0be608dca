"""ops.engines.pg_sql_check: a definition read from a backup is one statement of its kind, or refused."""

from __future__ import annotations

import pytest

from ops.engines import pg_sql_check as check
from ops.engines.pg_sql_check import UnsafeDefinition


@pytest.mark.parametrize(
    "text",
    [
        "now()",
        "'it''s; -- not a comment'::text",
        "E'a\\'; DROP'::text",
        "$x$ ; DROP TABLE t; $x$",
        "$body$ $x$ ; $body$",
        "nextval('\"Odd; name\"'::regclass)",
        "U&'d\\0061t\\+000061'",
        "(a + $1) * 2",
        "ARRAY[1, 2]::integer[]",
    ],
)
def test_scan__semicolons_and_dashes_inside_quotes_are_data(text: str) -> None:
    check.expression(text, "default")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0); DROP TABLE x; --", "closes a parenthesis"),
        ("0; DROP TABLE x", "';'"),
        ("1 -- comment", "comment"),
        ("1 /* comment */", "comment"),
        ("'unterminated", "unterminated string"),
        ('"unterminated', "unterminated quoted identifier"),
        ("$x$ unterminated", "unterminated dollar"),
        ("(1", "left open"),
        # E'\'' is one string holding a quote: what follows is outside quotes, as PostgreSQL reads it.
        ("E'\\'' ); DROP TABLE t; SELECT ('", "parenthesis"),
        # A $ inside an identifier does not open a dollar quote.
        ("a$x$ ; DROP TABLE t; SELECT $x$", "';'"),
        ("\\! rm -rf /", "backslash"),
        # In ALTER TABLE ... SET DEFAULT, a comma would start another subcommand.
        ("1, ADD COLUMN evil integer", "','"),
    ],
)
def test_scan__what_could_end_the_statement_is_refused(text: str, why: str) -> None:
    with pytest.raises(UnsafeDefinition, match=why):
        check.expression(text, "default")


@pytest.mark.parametrize(
    "text",
    [
        "integer",
        "character varying(100)",
        "numeric(40,20)",
        "timestamp(3) with time zone",
        "timestamp with time zone",
        "double precision",
        "text[]",
        "integer[][]",
        "hstore",
        "public.hstore",
        '"char"',
        '"My Type"',
        "bit varying(5)",
        "interval",
        "interval year to month",
        "interval day to second(3)",
        "time(6) without time zone",
    ],
)
def test_type_name__format_type_output_is_accepted(text: str) -> None:
    assert check.type_name(text, "column") == text


@pytest.mark.parametrize(
    "text", ["text, evil text", "text DEFAULT 1", "int); DROP TABLE x; --", "text COLLATE x"]
)
def test_type_name__anything_else_is_refused(text: str) -> None:
    with pytest.raises(UnsafeDefinition):
        check.type_name(text, "column")


def test_index_definition__parts_are_taken_apart() -> None:
    unique, only, method, body = check.index_definition(
        "CREATE UNIQUE INDEX x ON ONLY public.t USING btree (lower(name)) WHERE (name IS NOT NULL)", "index"
    )
    assert (unique, only, method, body) == (True, True, "btree", "(lower(name)) WHERE (name IS NOT NULL)")


@pytest.mark.parametrize(
    "text",
    [
        "CREATE INDEX x ON public.t USING btree (a); DROP TABLE t",
        "DROP TABLE t",
        "CREATE INDEX x ON public.t (a)",
        "CREATE TABLE x (a int)",
        "CREATE INDEX x ON public.t USING btree (a) -- tail",
    ],
)
def test_index_definition__other_statements_are_refused(text: str) -> None:
    with pytest.raises(UnsafeDefinition):
        check.index_definition(text, "index")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("PRIMARY KEY (id)", "p"),
        ("UNIQUE (code)", "u"),
        ("UNIQUE NULLS NOT DISTINCT (code)", "u"),
        ("FOREIGN KEY (a) REFERENCES t(id) DEFERRABLE INITIALLY DEFERRED", "f"),
        ("CHECK ((level >= 0))", "c"),
        ("EXCLUDE USING gist (during WITH &&)", "x"),
    ],
)
def test_constraint_definition__each_kind(text: str, kind: str) -> None:
    assert check.constraint_definition(text, kind, "constraint") == text


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("CHECK (true)", "f"),
        ("FOREIGN KEY (a) REFERENCES t(id)", "c"),
        ("CHECK (true)) ; DROP TABLE x; --", "c"),
        ("CHECK (true), ADD COLUMN evil int", "c"),
    ],
)
def test_constraint_definition__other_kinds_or_clauses_are_refused(text: str, kind: str) -> None:
    with pytest.raises(UnsafeDefinition):
        check.constraint_definition(text, kind, "constraint")


def test_function_definition__body_is_a_quoted_string() -> None:
    kind, rest = check.function_definition(
        "CREATE OR REPLACE FUNCTION public.f(a integer DEFAULT 0)\n RETURNS integer\n LANGUAGE sql\n"
        "AS $function$ SELECT a; $function$\n",
        "function",
    )
    assert kind == "FUNCTION"
    assert rest.startswith("(a integer DEFAULT 0)")


@pytest.mark.parametrize(
    "text",
    [
        "CREATE OR REPLACE FUNCTION public.f()\n RETURNS integer\n LANGUAGE sql\n"
        "BEGIN ATOMIC\n SELECT 1;\nEND\n",
        "CREATE OR REPLACE FUNCTION public.f()\n RETURNS void\n LANGUAGE plpython3u\nAS $f$ import os $f$\n",
        "CREATE OR REPLACE FUNCTION public.f()\n RETURNS int\n LANGUAGE sql\n"
        "AS $f$ SELECT 1 $f$; DROP TABLE t",
        "DROP FUNCTION f",
    ],
)
def test_function_definition__unquoted_bodies_other_languages_and_statements_are_refused(text: str) -> None:
    with pytest.raises(UnsafeDefinition):
        check.function_definition(text, "function")


def test_trigger_definition__parts_are_taken_apart() -> None:
    constraint, when, events, rest = check.trigger_definition(
        "CREATE TRIGGER t BEFORE INSERT OR UPDATE OF name ON public.items "
        "FOR EACH ROW EXECUTE FUNCTION touch()",
        "trigger",
    )
    assert (constraint, when, events) == ("", "BEFORE", "INSERT OR UPDATE OF name")
    assert rest == "FOR EACH ROW EXECUTE FUNCTION touch()"


def test_view_definition__trailing_semicolon_only() -> None:
    assert check.view_definition(" SELECT 1 AS one;", "view") == " SELECT 1 AS one"
    with pytest.raises(UnsafeDefinition):
        check.view_definition(" SELECT 1; DROP TABLE t;", "view")
    with pytest.raises(UnsafeDefinition):
        check.view_definition("DELETE FROM t", "view")


def test_identifier_characters__ascii_letters_underscore_and_all_non_ascii() -> None:
    # PostgreSQL's rule (scan.l): an identifier starts with a letter, "_" or any non-ASCII
    # character, and goes on with those, digits and "$"; a dollar-quote tag's, without "$".
    code_points = [*range(0x800), 0xD7FF, 0xD800, 0xE000, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF]
    for code_point in code_points:
        char = chr(code_point)
        starts = char == "_" or ("a" <= char.lower() <= "z" and char.isascii()) or not char.isascii()
        goes_on = starts or (char.isdigit() and char.isascii())
        assert bool(check._IDENT_START.fullmatch(char)) is starts, hex(code_point)
        assert bool(check._IDENT.fullmatch("a" + char)) is (goes_on or char == "$"), hex(code_point)
        assert bool(check._DOLLAR_TAG.fullmatch(f"$a{char}$")) is goes_on, hex(code_point)
