"""gotrace.probes.sql_text: literal redaction, operation, collection and summary of SQL, span
names and Redis query texts, against the OpenTelemetry database conventions."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gotrace.probes.sql_text import (
    SUMMARY_LIMIT,
    operation_and_collection,
    query_summary,
    redact_sql,
    redis_batch_operation_name,
    redis_batch_query_text,
    redis_operation_name,
    redis_query_text,
    span_name,
    tokens,
)

# The statements of the demo script, each with its redacted text, operation, collection and
# summary; the same with "?" placeholders below. The literals they hold must all go.
SCRIPT = (
    ("CREATE TABLE IF NOT EXISTS gotrace_items (id INTEGER PRIMARY KEY, name VARCHAR(64))",
     "CREATE TABLE IF NOT EXISTS gotrace_items (id INTEGER PRIMARY KEY, name VARCHAR(?))",
     "CREATE", "gotrace_items", "CREATE gotrace_items"),
    ("DELETE FROM gotrace_items", "DELETE FROM gotrace_items",
     "DELETE", "gotrace_items", "DELETE gotrace_items"),
    ("INSERT INTO gotrace_items (id, name) VALUES (1, 'literal-alpha')",
     "INSERT INTO gotrace_items (id, name) VALUES (?, ?)",
     "INSERT", "gotrace_items", "INSERT gotrace_items"),
    ("INSERT INTO gotrace_items (id, name) VALUES ($1, $2)",
     "INSERT INTO gotrace_items (id, name) VALUES ($1, $2)",
     "INSERT", "gotrace_items", "INSERT gotrace_items"),
    ("SELECT name FROM gotrace_items WHERE id = $1",
     "SELECT name FROM gotrace_items WHERE id = $1",
     "SELECT", "gotrace_items", "SELECT gotrace_items"),
    ("SELECT id, name FROM gotrace_items WHERE name <> 'literal-gamma' AND id < 4242 ORDER BY id",
     "SELECT id, name FROM gotrace_items WHERE name <> ? AND id < ? ORDER BY id",
     "SELECT", "gotrace_items", "SELECT gotrace_items"),
    ("INSERT INTO gotrace_missing_table (id) VALUES (31337)",
     "INSERT INTO gotrace_missing_table (id) VALUES (?)",
     "INSERT", "gotrace_missing_table", "INSERT gotrace_missing_table"),
    ("SELECT name FROM gotrace_items WHERE id = 987654",
     "SELECT name FROM gotrace_items WHERE id = ?",
     "SELECT", "gotrace_items", "SELECT gotrace_items"),
    ("SELECT 1", "SELECT ?", "SELECT", None, "SELECT"),
    ("UPDATE gotrace_items SET name = 'literal-delta' WHERE id = 1",
     "UPDATE gotrace_items SET name = ? WHERE id = ?",
     "UPDATE", "gotrace_items", "UPDATE gotrace_items"),
)
SCRIPT_QMARK = tuple(
    tuple(part.replace("$1", "?").replace("$2", "?") if part else part for part in row)
    for row in SCRIPT)
SCRIPT_LITERALS = ("64", "literal-alpha", "literal-gamma", "4242", "31337", "987654",
                   "literal-delta", "'")


@pytest.mark.parametrize(("sql", "redacted", "operation", "collection", "summary"),
                         SCRIPT + SCRIPT_QMARK)
def test_script_statements(sql: str, redacted: str, operation: str, collection: str | None,
                           summary: str) -> None:
    text = redact_sql(sql)
    assert text == redacted
    assert not any(literal in text for literal in SCRIPT_LITERALS)
    assert "1" not in text.replace("$1", "")
    assert operation_and_collection(sql) == (operation, collection)
    assert query_summary(sql) == summary


@pytest.mark.parametrize(("sql", "redacted"), [
    ("a = 'x'", "a = ?"),
    ("a = 'it''s'", "a = ?"),
    ("a = ''", "a = ?"),
    ("a = E'it\\'s'", "a = ?"),
    ("a = e'\\\\'", "a = ?"),
    ("a = N'name'", "a = ?"),
    ("a = X'0aFF'", "a = ?"),
    ("a = B'0101'", "a = ?"),
    ("a = U&'d\\0061t'", "a = ?"),
    ("a = $$it's$$", "a = ?"),
    ("a = $body$ $$ ' $body$ AND b", "a = ? AND b"),
    ("a = 42", "a = ?"),
    ("a = -42", "a = -?"),
    ("a = 4.25", "a = ?"),
    ("a = .5 + 5.", "a = ? + ?"),
    ("a = 1e10 + 1.5E-3", "a = ? + ?"),
    ("a = 0x1F + 0XAB", "a = ? + ?"),
    ("a = 1_000_000", "a = ?"),
    ("a = DATE '2024-01-01'", "a = DATE ?"),
    ("a > now() - INTERVAL '1 day'", "a > now() - INTERVAL ?"),
    ("a = TRUE OR b = FALSE OR c IS NULL", "a = TRUE OR b = FALSE OR c IS NULL"),
    ("a = _utf8mb4'x'", "a = _utf8mb4?"),
    ("a[1:2]", "a[?:?]"),
])
def test_literals_redacted(sql: str, redacted: str) -> None:
    assert redact_sql(sql) == redacted


@pytest.mark.parametrize("sql", [
    "SELECT t1.col_2, \"Odd name 9\", `tick 7` FROM t1 JOIN s2.t3 ON t1.a = t3.b",
    "SELECT a FROM t WHERE a = $1 AND b = $12 AND c = ? AND d = ?3 AND e = :name AND f = @p1",
    "SELECT a::int4, x$1, ü9 FROM t WHERE b ?| c",
])
def test_identifiers_and_placeholders_kept(sql: str) -> None:
    assert redact_sql(sql) == sql


@pytest.mark.parametrize(("sql", "redacted"), [
    ("SELECT a -- id 42 'secret'\nFROM t", "SELECT a FROM t"),
    ("SELECT a /* secret 42 */ FROM t", "SELECT a FROM t"),
    ("SELECT/*x*/a", "SELECT a"),
    ("SELECT a /* outer /* inner */ secret */ FROM t", "SELECT a FROM t"),
    ("SELECT /*+ INDEX(t i) */ a FROM t", "SELECT a FROM t"),
    ("SELECT a FROM t -- secret", "SELECT a FROM t"),
    ("SELECT a /* never closed secret", "SELECT a"),
])
def test_comments_removed(sql: str, redacted: str) -> None:
    assert redact_sql(sql) == redacted


@pytest.mark.parametrize(("sql", "redacted"), [
    ("SELECT 'never closed secret", "SELECT ?"),
    ("SELECT 'a' || 'b", "SELECT ? || ?"),
    ("SELECT E'secret \\' still", "SELECT ?"),
    ("SELECT $tag$ secret $tag", "SELECT ?"),
    ("SELECT $$ secret", "SELECT ?"),
    ("SELECT X'ab", "SELECT ?"),
    ('SELECT "unclosed identifier', 'SELECT "unclosed identifier'),
])
def test_unterminated_quotes_redact_to_the_end(sql: str, redacted: str) -> None:
    assert redact_sql(sql) == redacted


def test_mysql_lexical_rules() -> None:
    sql = "SELECT `t`.a FROM t WHERE b = 'it\\'s secret' AND c = \"secret\" # secret"
    assert redact_sql(sql, mysql=True) == "SELECT `t`.a FROM t WHERE b = ? AND c = ?"
    # The SQL standard's reading: "secret" is an identifier, # no comment.
    assert redact_sql('SELECT "secret" # x') == 'SELECT "secret" # x'
    assert operation_and_collection("DELETE FROM `shop`.`orders` WHERE id = 1", mysql=True) == (
        "DELETE", "shop.orders")


@pytest.mark.parametrize(("sql", "redacted"), [
    ("a IN (1, 2, 3)", "a IN (?)"),
    ("a in ('x','y')", "a in (?)"),
    ("a NOT IN (-1, +2, 3.5)", "a NOT IN (?)"),
    ("a IN(1)", "a IN(?)"),
    ("a IN ($1, $2)", "a IN ($1, $2)"),
    ("a IN (?, ?)", "a IN (?, ?)"),
    ("a IN (1, $1)", "a IN (?, $1)"),
    ("a IN (1, b)", "a IN (?, b)"),
    ("a IN (SELECT 1)", "a IN (SELECT ?)"),
    ("a IN (1, 2", "a IN (?, ?"),
    ('"IN" (1, 2)', '"IN" (?, ?)'),
])
def test_in_lists_of_literals_collapse(sql: str, redacted: str) -> None:
    assert redact_sql(sql) == redacted


def test_whitespace_runs_collapse_outside_quotes() -> None:
    assert redact_sql('  SELECT\n\t a,  "b  c"\r\nFROM t  ') == 'SELECT a, "b  c" FROM t'


# Literal values the property tests hide in statements: no identifier of the templates holds
# "zq", or five digits in a row.
_SECRET = st.text("abcdefghijklmnopqrstuvwxyz0123456789 -_%:", min_size=1, max_size=12).map(
    lambda body: f"zq{body}")
_NUMBER = st.integers(10_000, 10**12)
_LITERALS = st.one_of(
    _SECRET.map(lambda s: f"'{s}'"),
    _SECRET.map(lambda s: f"'{s}''{s}'"),
    _SECRET.map(lambda s: f"E'{s}\\'{s}'"),
    _SECRET.map(lambda s: f"N'{s}'"),
    _SECRET.map(lambda s: f"$${s}$$"),
    _SECRET.map(lambda s: f"$q$ {s} ' $q$"),
    _NUMBER.map(str),
    _NUMBER.map(lambda n: f"{n}.{n}"),
    _NUMBER.map(lambda n: f"{n}e-{n % 30}"),
    _NUMBER.map(lambda n: f"0x{n:x}zq"),
)
_TEMPLATES = (
    "SELECT a1, b_2 FROM t3 WHERE a1 = {} AND b_2 <> {} -- {}\n",
    "INSERT INTO t3 (a1, b_2) VALUES ({}, {}) /* {} */",
    "UPDATE t3 SET a1 = {}, b_2 = $1 WHERE c IN ({}, {})",
    "DELETE FROM t3 WHERE a1 = {} OR b_2 = ? OR c = {}",
)


def _hidden(literal: str) -> list[str]:
    """The parts of a generated literal that must not survive."""
    return [part for part in literal.replace("'", " ").replace("$", " ").split()
            if part.startswith("zq") or (part[:1].isdigit() and len(part) >= 5)]


@settings(max_examples=300)
@given(st.sampled_from(_TEMPLATES), st.lists(_LITERALS, min_size=3, max_size=3))
def test_no_literal_survives(template: str, literals: list[str]) -> None:
    text = redact_sql(template.format(*literals))
    for literal in literals:
        for hidden in _hidden(literal):
            assert hidden not in text
    assert "zq" not in text
    assert "t3" in text and "a1" in text


@settings(max_examples=300)
@given(st.sampled_from(_TEMPLATES), st.lists(_LITERALS, min_size=3, max_size=3))
def test_no_literal_in_summary(template: str, literals: list[str]) -> None:
    summary = query_summary(template.format(*literals)) or ""
    assert "zq" not in summary and not any(char.isdigit() for char in summary.replace("t3", ""))


_SQL_PIECES = [*"aE$1?'\"`-/*#\\ \n(),;.x0", " IN ", " FROM ", " SELECT ", " WITH ", "$$", "$t$"]
_SQLISH = st.lists(st.sampled_from(_SQL_PIECES)).map("".join)


@settings(max_examples=500)
@given(st.one_of(st.text(), _SQLISH), st.booleans())
def test_any_text_is_handled(text: str, mysql: bool) -> None:
    assert "".join(tok.text for tok in tokens(text, mysql=mysql)) == text
    redacted = redact_sql(text, mysql=mysql)
    assert redact_sql(redacted, mysql=mysql) == redacted
    operation_and_collection(text, mysql=mysql)
    summary = query_summary(text, mysql=mysql)
    assert summary is None or len(summary) <= SUMMARY_LIMIT


@pytest.mark.parametrize("text", [
    "/*" * 50_000, "'" * 100_000, "$a$" * 33_000, "IN (" * 25_000, "a," * 50_000,
    "x IN (" + "1, " * 33_000 + "1)", "SELECT (" * 12_500 + ")" * 12_500,
])
def test_linear_time_on_long_statements(text: str) -> None:
    """100 KB statements, each in well under a second (a quadratic pass would take minutes)."""
    start = time.process_time()
    redact_sql(text)
    query_summary(text)
    operation_and_collection(text)
    assert time.process_time() - start < 1.5


@pytest.mark.parametrize(("sql", "operation", "collection"), [
    ("select * from Users", "SELECT", "Users"),
    ('SELECT * FROM "public"."Order Items" oi WHERE oi.id = 1', "SELECT", "public.Order Items"),
    ("SELECT * FROM t AS x WHERE x.a = 1 ORDER BY a, b", "SELECT", "t"),
    ("SELECT * FROM ONLY t", "SELECT", "t"),
    ("SELECT extract(year FROM d) FROM t WHERE a IS DISTINCT FROM b", "SELECT", "t"),
    ("INSERT INTO s.t VALUES (1), (2)", "INSERT", "s.t"),
    ("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = 2", "INSERT", "t"),
    ("UPDATE t SET a = 1 WHERE b = 2", "UPDATE", "t"),
    ("DELETE FROM t WHERE a = 1", "DELETE", "t"),
    ("CREATE TABLE t (a INT REFERENCES u (id) ON DELETE CASCADE)", "CREATE", "t"),
    ("CREATE TEMPORARY TABLE IF NOT EXISTS t (a INT)", "CREATE", "t"),
    ("DROP TABLE IF EXISTS t", "DROP", "t"),
    ("ALTER TABLE t ADD COLUMN b INT", "ALTER", "t"),
    ("TRUNCATE t", "TRUNCATE", "t"),
    ("TRUNCATE TABLE t", "TRUNCATE", "t"),
    ("  -- leading comment\n  begin", "BEGIN", None),
    ("COMMIT", "COMMIT", None),
    ("ROLLBACK", "ROLLBACK", None),
    ("SELECT 1;", "SELECT", None),
    ("WITH x AS (SELECT * FROM a) SELECT * FROM x", "SELECT", None),
    ("WITH x AS (SELECT 1) DELETE FROM t WHERE a IN (SELECT * FROM x)", "DELETE", None),
    ("WITH RECURSIVE", "WITH", None),
    ("(SELECT a FROM t) UNION (SELECT a FROM u)", "SELECT", None),
    # Ambiguous: more than one table, or one that is no table, or more than one operation.
    ("SELECT * FROM a JOIN b ON a.id = b.id", "SELECT", None),
    ("SELECT * FROM a, b", "SELECT", None),
    ("SELECT * FROM (SELECT * FROM t) x", "SELECT", None),
    ("SELECT * FROM t WHERE id IN (SELECT id FROM t)", "SELECT", None),
    ("SELECT * FROM generate_series(1, 3)", "SELECT", None),
    ("SELECT * FROM t, generate_series(1, 3) g", "SELECT", None),
    ("SELECT * FROM \"song list\", 'artists'", "SELECT", None),
    ("INSERT INTO t SELECT * FROM u", "INSERT", None),
    ("UPDATE t SET a = u.a FROM u WHERE t.id = u.id", "UPDATE", None),
    ("DELETE FROM t USING u WHERE t.id = u.id", "DELETE", None),
    ("DROP TABLE a, b", "DROP", None),
    ("SELECT * INTO t2 FROM t", "SELECT", None),
    ("CREATE INDEX i ON t USING btree (a)", "CREATE", None),
    ("COPY t FROM stdin", "COPY", None),
    ("GRANT SELECT ON t TO u", "GRANT", None),
    ("BEGIN; SELECT 1", None, None),
    ("", None, None),
    ("  /* only a comment */ ", None, None),
    ("'just a literal'", None, None),
])
def test_operation_and_collection(sql: str, operation: str | None,
                                  collection: str | None) -> None:
    assert operation_and_collection(sql) == (operation, collection)


@pytest.mark.parametrize(("sql", "summary"), [
    # The conventions' examples.
    ("SELECT *\nFROM   wuser_table\nWHERE  username = ?", "SELECT wuser_table"),
    ("INSERT INTO shipping_details\n (order_id, address)\nSELECT order_id, address\n"
     "FROM orders\nWHERE order_id = ?", "INSERT shipping_details SELECT orders"),
    ("SELECT *\nFROM songs, artists\nWHERE songs.artist_id == artists.id",
     "SELECT songs artists"),
    ("SELECT order_date\nFROM (SELECT *\n FROM orders o\n JOIN customers c\n"
     " ON o.customer_id = c.customer_id)", "SELECT SELECT orders customers"),
    # A string in FROM (SQLite reads it as a name): no literal text goes into the summary.
    ("SELECT * FROM \"song list\", 'artists'", 'SELECT "song list"'),
    ("WITH x AS (SELECT * FROM a), y AS (DELETE FROM b RETURNING *) UPDATE c SET v = 1 FROM x",
     "SELECT a DELETE b UPDATE c"),
    ("BEGIN; INSERT INTO t VALUES (1); COMMIT", "BEGIN INSERT t COMMIT"),
    ("select a from `Db`.`T`", "SELECT `Db`.`T`"),
    ("", None),
    ("-- nothing", None),
])
def test_query_summary(sql: str, summary: str | None) -> None:
    assert query_summary(sql) == summary


def test_query_summary_is_cut_between_words() -> None:
    sql = "SELECT * FROM " + ", ".join(f"table_number_{i}" for i in range(100))
    summary = query_summary(sql)
    assert summary is not None and len(summary) <= SUMMARY_LIMIT
    assert summary.split()[-1] == f"table_number_{len(summary.split()) - 2}"
    assert len(f"{summary} table_number_{len(summary.split()) - 1}") > SUMMARY_LIMIT


@pytest.mark.parametrize(("args", "name"), [
    (("SELECT gotrace_items", "SELECT", "gotrace_items", "shop", "postgresql"),
     "SELECT gotrace_items"),
    ((None, "SELECT", "gotrace_items", "shop", "postgresql"), "SELECT gotrace_items"),
    ((None, "CREATE", None, "shop", "postgresql"), "CREATE shop"),
    ((None, "BEGIN", None, None, "postgresql"), "BEGIN"),
    ((None, None, "gotrace_items", "shop", "mysql"), "gotrace_items"),
    ((None, None, None, "shop", "mysql"), "shop"),
    ((None, None, None, None, "sqlite"), "sqlite"),
    (("", None, None, None, "sqlite"), "sqlite"),
    # Redis: the database index is no target ("ends up looking confusing").
    ((None, "HMSET", None, "15", "redis"), "HMSET"),
    ((None, None, None, "15", "redis"), "redis"),
])
def test_span_name(args: tuple[str | None, str | None, str | None, str | None, str],
                   name: str) -> None:
    assert span_name(*args) == name


@pytest.mark.parametrize(("command", "arg_count", "text"), [
    ("SET", 2, "SET ? ?"),
    ("set", 2, "SET ? ?"),
    ("hmset", 5, "HMSET ? ? ? ? ?"),
    ("PING", 0, "PING"),
    ("client  setname", 1, "CLIENT SETNAME ?"),
    ("GET", -1, "GET"),
])
def test_redis_query_text(command: str, arg_count: int, text: str) -> None:
    assert redis_query_text(command, arg_count) == text


def test_redis_operation_names() -> None:
    assert redis_operation_name(" get ") == "GET"
    assert redis_batch_operation_name(["set", "SET"], transaction=False) == "PIPELINE SET"
    assert redis_batch_operation_name(["set", "get"], transaction=False) == "PIPELINE"
    assert redis_batch_operation_name(["set", "set"], transaction=True) == "MULTI SET"
    assert redis_batch_operation_name(["incr", "get"], transaction=True) == "MULTI"
    assert redis_batch_operation_name(["get"], transaction=True) == "GET"
    assert redis_batch_operation_name([], transaction=False) == "PIPELINE"


def test_redis_batch_query_text() -> None:
    assert redis_batch_query_text([("SET", 2), ("set", 2)]) == "SET ? ?"
    assert redis_batch_query_text([("SET", 2), ("GET", 1)]) == "SET ? ?; GET ?"
    assert redis_batch_query_text([]) == ""
