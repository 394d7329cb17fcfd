"""Database CLIENT spans on real Go programs from Debian's archive, traced as installed (Go
1.19, stripped, no module versions), never rebuilt, each against a private server of
tests/databases.py:

- prometheus-postgres-exporter 0.11: lib/pq through database/sql, on PostgreSQL 15. It keeps
  two pools: its original Exporter's (which runs its queries one after another) and its
  collector package's (which runs each collector, bgwriter and database, on a goroutine of
  its own);
- prometheus-mysqld-exporter 0.14: go-sql-driver/mysql through database/sql, on MariaDB. For
  each scrape it opens a pool of one connection, asks the server's version, then runs each
  scraper on a goroutine of its own; as the user gotrace (every privilege on its own database,
  none global) some of its default scrapers' queries fail, and the server says why.

Every scrape of /metrics must be one trace: the exporter's SERVER span and, as its children,
one CLIENT span per query the exporter ran for it, each within the request's time. The
handler's goroutine runs none of them: prometheus's registry collects on goroutines it starts
for the request, and the exporters start more of their own below those (Go 1.19 records no
goroutine's creator: gotrace follows `go` statements, runtime.newproc1). Which queries run
together on one goroutine is the exporter's structure, and it is asserted exactly, scrape
after scrape, along with the statements, redacted, and the errors the server returned.
"""

from __future__ import annotations

import itertools
import re
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from debian_programs import mysqld_exporter, postgres_exporter
from otlp_receiver import OtlpReceiver
from tracing import gotrace, otlp_args, probe_hits, stop

from gotrace.probes.sql_text import redact_sql

SCRAPES = 3

# The statements below are the exporters' as they send them (read with `gotrace trace
# --include-query`); those not built at run time (fmt.Sprintf, fmt.Sprint) are in the
# binary's strings, which the test checks.

# prometheus-postgres-exporter 0.11's original Exporter: its version check, pg_settings and
# the built-in metric maps (run in a map's order: the test does not check their order).
PG_EXPORTER = (
    "SELECT version();",
    "SELECT name, setting, COALESCE(unit, ''), short_desc, vartype FROM pg_settings "
    "WHERE vartype IN ('bool', 'integer', 'real') AND name != 'sync_commit_cancel_wait';",
    "\n"
    "\t\t\tSELECT slot_name, database, active, "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)\n"
    "\t\t\tFROM pg_replication_slots\n"
    "\t\t\t",
    "\n"
    "\t\t\tSELECT *,\n"
    "\t\t\t\textract(epoch from now() - last_archived_time) AS last_archive_age\n"
    "\t\t\tFROM pg_stat_archiver\n"
    "\t\t\t",
    "\n"
    "\t\t\tSELECT\n"
    "\t\t\t\tpg_database.datname,\n"
    "\t\t\t\ttmp.state,\n"
    "\t\t\t\tCOALESCE(count,0) as count,\n"
    "\t\t\t\tCOALESCE(max_tx_duration,0) as max_tx_duration\n"
    "\t\t\tFROM\n"
    "\t\t\t\t(\n"
    "\t\t\t\t  VALUES ('active'),\n"
    "\t\t\t\t  \t\t ('idle'),\n"
    "\t\t\t\t  \t\t ('idle in transaction'),\n"
    "\t\t\t\t  \t\t ('idle in transaction (aborted)'),\n"
    "\t\t\t\t  \t\t ('fastpath function call'),\n"
    "\t\t\t\t  \t\t ('disabled')\n"
    "\t\t\t\t) AS tmp(state) CROSS JOIN pg_database\n"
    "\t\t\tLEFT JOIN\n"
    "\t\t\t(\n"
    "\t\t\t\tSELECT\n"
    "\t\t\t\t\tdatname,\n"
    "\t\t\t\t\tstate,\n"
    "\t\t\t\t\tcount(*) AS count,\n"
    "\t\t\t\t\tMAX(EXTRACT(EPOCH FROM now() - xact_start))::float AS max_tx_duration\n"
    "\t\t\t\tFROM pg_stat_activity GROUP BY datname,state) AS tmp2\n"
    "\t\t\t\tON tmp.state = tmp2.state AND pg_database.datname = tmp2.datname\n"
    "\t\t\t",
    "SELECT * FROM pg_stat_database;",  # "SELECT * FROM %s;"
    "SELECT * FROM pg_stat_database_conflicts;",  # likewise
    "SELECT pg_database.datname,tmp.mode,COALESCE(count,0) as count\n"
    "\t\t\tFROM\n"
    "\t\t\t\t(\n"
    "\t\t\t\t  VALUES ('accesssharelock'),\n"
    "\t\t\t\t         ('rowsharelock'),\n"
    "\t\t\t\t         ('rowexclusivelock'),\n"
    "\t\t\t\t         ('shareupdateexclusivelock'),\n"
    "\t\t\t\t         ('sharelock'),\n"
    "\t\t\t\t         ('sharerowexclusivelock'),\n"
    "\t\t\t\t         ('exclusivelock'),\n"
    "\t\t\t\t         ('accessexclusivelock'),\n"
    "\t\t\t\t\t ('sireadlock')\n"
    "\t\t\t\t) AS tmp(mode) CROSS JOIN pg_database\n"
    "\t\t\tLEFT JOIN\n"
    "\t\t\t  (SELECT database, lower(mode) AS mode,count(*) AS count\n"
    "\t\t\t  FROM pg_locks WHERE database IS NOT NULL\n"
    "\t\t\t  GROUP BY database, lower(mode)\n"
    "\t\t\t) AS tmp2\n"
    "\t\t\tON tmp.mode=tmp2.mode and pg_database.oid = tmp2.database ORDER BY 1",
    "\n"
    "\t\t\tSELECT *,\n"
    "\t\t\t\t(case pg_is_in_recovery() when 't' then null else pg_current_wal_lsn() end) "
    "AS pg_current_wal_lsn,\n"
    "\t\t\t\t(case pg_is_in_recovery() when 't' then null else "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), pg_lsn('0/0'))::float end) "
    "AS pg_current_wal_lsn_bytes,\n"
    "\t\t\t\t(case pg_is_in_recovery() when 't' then null else "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float end) AS pg_wal_lsn_diff\n"
    "\t\t\tFROM pg_stat_replication\n"
    "\t\t\t",
)
# Its collector package: one collector a goroutine.
PG_BGWRITER = ("SELECT\n"
               "\t\t\t checkpoints_timed\n"
               "\t\t\t ,checkpoints_req\n"
               "\t\t\t ,checkpoint_write_time\n"
               "\t\t\t ,checkpoint_sync_time\n"
               "\t\t\t ,buffers_checkpoint\n"
               "\t\t\t ,buffers_clean\n"
               "\t\t\t ,maxwritten_clean\n"
               "\t\t\t ,buffers_backend\n"
               "\t\t\t ,buffers_backend_fsync\n"
               "\t\t\t ,buffers_alloc\n"
               "\t\t\t ,stats_reset\n"
               "\t\t FROM pg_stat_bgwriter;",)
PG_DATABASE = ("SELECT pg_database.datname\n"
               "\t\t,pg_database_size(pg_database.datname)\n"
               "\t\tFROM pg_database;",)

# prometheus-mysqld-exporter 0.14: the version, asked by the scrape itself, then its six
# default scrapers, each on a goroutine of its own.
MYSQL_VERSION = ("SELECT @@version",)
MYSQL_GLOBAL_STATUS = ("SHOW GLOBAL STATUS",)
MYSQL_GLOBAL_VARIABLES = ("SHOW GLOBAL VARIABLES",)
MYSQL_CMP = ("\n"
             "\t\tSELECT\n"
             "\t\t  page_size, compress_ops, compress_ops_ok, compress_time, uncompress_ops, "
             "uncompress_time\n"
             "\t\t  FROM information_schema.innodb_cmp\n"
             "\t\t",)
MYSQL_CMPMEM = ("\n"
                "                SELECT\n"
                "                  page_size, buffer_pool_instance, pages_used, pages_free, "
                "relocation_ops, relocation_time\n"
                "                  FROM information_schema.innodb_cmpmem\n"
                "                ",)
MYSQL_QUERY_RESPONSE_TIME = ("SELECT @@query_response_time_stats",)
# slave_status tries each syntax, and when it fails each with the suffixes " NONBLOCKING",
# " NOLOCK" and "" (fmt.Sprint): in this order, on one goroutine, until one succeeds (none
# does here).
MYSQL_SLAVE_STATUS = ("SHOW ALL SLAVES STATUS", "SHOW ALL SLAVES STATUS NONBLOCKING",
                      "SHOW ALL SLAVES STATUS NOLOCK", "SHOW ALL SLAVES STATUS",
                      "SHOW SLAVE STATUS", "SHOW SLAVE STATUS NONBLOCKING",
                      "SHOW SLAVE STATUS NOLOCK", "SHOW SLAVE STATUS")
# What MariaDB answers the user gotrace: 1227 ER_SPECIFIC_ACCESS_DENIED_ERROR (PROCESS, or
# SUPER / SLAVE MONITOR, needed), 1064 ER_PARSE_ERROR (Percona's and MySQL's suffixes),
# 1193 ER_UNKNOWN_SYSTEM_VARIABLE (no query_response_time plugin).
MYSQL_ERRORS = {
    MYSQL_CMP[0]: "1227", MYSQL_CMPMEM[0]: "1227", MYSQL_QUERY_RESPONSE_TIME[0]: "1193",
    "SHOW ALL SLAVES STATUS": "1227", "SHOW SLAVE STATUS": "1227",
    "SHOW ALL SLAVES STATUS NONBLOCKING": "1064", "SHOW ALL SLAVES STATUS NOLOCK": "1064",
    "SHOW SLAVE STATUS NONBLOCKING": "1064", "SHOW SLAVE STATUS NOLOCK": "1064",
}

Start = Callable[[Path, str], AbstractContextManager[tuple[object, str]]]


@dataclass(frozen=True)
class Exporter:
    """A Debian exporter and what each of its scrapes must do to its database."""
    start: Start  # (workdir, DSN) -> (process, host:port), tests/debian_programs.py
    binary: str
    server: str  # the fixture of its database server
    system: str  # db.system.name
    up: str  # the sample of /metrics that says the exporter reached its database
    # The statements each goroutine runs, one tuple a goroutine; in that order where ordered.
    goroutines: tuple[tuple[str, ...], ...]
    ordered: tuple[tuple[str, ...], ...] = ()
    built: frozenset[str] = frozenset()  # statements built at run time (not in the binary)
    errors: dict[str, str] = field(default_factory=dict)  # statement -> the server's code

    @property
    def mysql(self) -> bool:
        return self.system == "mysql"

    @property
    def statements(self) -> list[str]:
        return [s for group in self.goroutines for s in group]


EXPORTERS = {
    "postgres-exporter": Exporter(
        start=postgres_exporter, binary="/usr/bin/prometheus-postgres-exporter",
        server="postgres_server", system="postgresql", up="pg_up 1",
        goroutines=(PG_EXPORTER, PG_BGWRITER, PG_DATABASE),
        built=frozenset({"SELECT * FROM pg_stat_database;",
                         "SELECT * FROM pg_stat_database_conflicts;"})),
    "mysqld-exporter": Exporter(
        start=mysqld_exporter, binary="/usr/bin/prometheus-mysqld-exporter",
        server="mariadb_server", system="mysql", up="mysql_up 1",
        goroutines=(MYSQL_VERSION, MYSQL_GLOBAL_STATUS, MYSQL_GLOBAL_VARIABLES, MYSQL_CMP,
                    MYSQL_CMPMEM, MYSQL_QUERY_RESPONSE_TIME, MYSQL_SLAVE_STATUS),
        ordered=(MYSQL_SLAVE_STATUS,),
        built=frozenset(s for s in MYSQL_SLAVE_STATUS if s.endswith(("NONBLOCKING", "NOLOCK"))),
        errors=MYSQL_ERRORS),
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


def scrape(addr: str) -> str:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=30) as response:
        assert response.status == 200
        return response.read().decode()


def group_key(texts: list[str]) -> tuple[str, ...]:
    return tuple(sorted(texts))


@pytest.mark.parametrize("name", EXPORTERS)
def test_database_spans_of_a_debian_exporter(tmp_path, receiver, request, name):
    exporter = EXPORTERS[name]
    db = request.getfixturevalue(exporter.server)

    # The constants are the exporter's own statements, literals and white space included.
    binary = Path(exporter.binary).read_bytes()
    missing = [s for s in exporter.statements
               if s not in exporter.built and s.encode() not in binary]
    assert not missing, f"not in {exporter.binary}: {missing}"

    def redacted(statement: str) -> str:
        return redact_sql(statement, mysql=exporter.mysql)

    per_scrape = len(exporter.statements)
    receiver.clear()
    with exporter.start(tmp_path, db.dsn) as (proc, addr), \
            gotrace(tmp_path, "trace", "--pid", str(proc.pid), "--stats",
                    *otlp_args(receiver)) as tracer:
        for _ in range(SCRAPES):
            assert exporter.up in scrape(addr).splitlines()
        receiver.wait_for(SCRAPES * (1 + per_scrape), timeout=30)
        _, err = stop(tracer)
    spans = receiver.spans  # all of them, once gotrace flushed and exited

    traces: dict[str, list[dict]] = defaultdict(list)
    for span in spans:
        traces[span["trace_id"]].append(span)
    assert Counter(len(t) for t in traces.values()) == {1 + per_scrape: SCRAPES}, (
        Counter((s["kind"], s["name"]) for s in spans), err)

    expected_texts = Counter(redacted(s) for s in exporter.statements)
    errors = {redacted(s): code for s, code in exporter.errors.items()}
    expected_groups = Counter(group_key([redacted(s) for s in g]) for g in exporter.goroutines)
    port = int(addr.rsplit(":", 1)[1])
    for trace in traces.values():
        servers = [s for s in trace if s["kind"] == "SERVER"]
        assert len(servers) == 1, [s["name"] for s in trace]
        server = servers[0]
        assert server["parent_span_id"] is None
        assert server["name"] == "GET"
        assert server["attributes"]["url.path"] == "/metrics"
        assert server["attributes"]["server.port"] == port
        assert server["attributes"]["http.response.status_code"] == 200
        clients = [s for s in trace if s is not server]
        by_goroutine: dict[int, list[dict]] = defaultdict(list)
        for span in clients:
            attrs = span["attributes"]
            text = attrs["db.query.text"]
            assert span["kind"] == "CLIENT", span
            assert span["parent_span_id"] == server["span_id"], span
            assert server["start_time_unix_nano"] <= span["start_time_unix_nano"]
            assert span["start_time_unix_nano"] <= span["end_time_unix_nano"]
            assert span["end_time_unix_nano"] <= server["end_time_unix_nano"], span
            assert attrs["db.system.name"] == exporter.system
            assert (attrs["server.address"], attrs["server.port"]) == (db.host, db.port), span
            assert span["name"] == attrs["db.query.summary"], span
            # No literal of the exporter's statements left: every string and number a `?`.
            assert "'" not in text and not re.search(r"\b\d+\b", text), text
            by_goroutine[attrs["go.goroutine.id"]].append(span)
            code = errors.get(text)
            if code:
                assert span["status"] == "ERROR", span
                assert attrs["db.response.status_code"] == code, span
                assert attrs["error.type"] == code, span
            else:
                assert span["status"] == "UNSET", span
                assert "error.type" not in attrs, span
                assert attrs["network.peer.port"] == db.port, span
        # The same queries on every scrape (one span each, the text as redact_sql gives it).
        assert Counter(s["attributes"]["db.query.text"] for s in clients) == expected_texts
        # None on the handler's goroutine; each of the exporter's goroutines runs its own.
        assert server["attributes"]["go.goroutine.id"] not in by_goroutine
        got_groups = Counter(group_key([s["attributes"]["db.query.text"] for s in group])
                             for group in by_goroutine.values())
        assert got_groups == expected_groups
        for sequence in exporter.ordered:
            texts = [redacted(s) for s in sequence]
            group = next(g for g in by_goroutine.values()
                         if group_key([s["attributes"]["db.query.text"] for s in g])
                         == group_key(texts))
            group.sort(key=lambda s: s["start_time_unix_nano"])
            assert [s["attributes"]["db.query.text"] for s in group] == texts
            for before, after in itertools.pairwise(group):
                assert before["end_time_unix_nano"] <= after["start_time_unix_nano"]

    # Two probe hits a query: database/sql's call and its return.
    hits = probe_hits(err)
    assert hits.get("sql_db_call") == SCRAPES * per_scrape, hits
    assert hits.get("sql_rows_return") == SCRAPES * per_scrape, hits
