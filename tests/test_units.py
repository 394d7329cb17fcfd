"""Small pure functions: versions, varints, names, manifests."""

from __future__ import annotations

import struct

import pytest

from gotrace.errors import GotraceError
from gotrace.gobin.callers import direct_callers
from gotrace.gobin.typeinfo import package_matches, package_names, split_type_name
from gotrace.gobin.varint import encode_uvarint, uvarint
from gotrace.probes import type_names
from gotrace.probes.db_attributes import system_name
from gotrace.probes.db_namespace import dsn_database
from gotrace.probes.type_names import package_of
from gotrace.resolve.manifest import load_manifest, load_manifests
from gotrace.versions import parse_version, satisfies


@pytest.mark.parametrize("text,expected", [
    ("go1.22.12", (1, 22, 12)), ("v1.64.0", (1, 64, 0)), ("1.19", (1, 19)),
    ("go1.26rc1", (1, 26)), ("devel", None),
])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


@pytest.mark.parametrize("version,constraint,ok", [
    ((1, 23, 5), ">=1.23", True), ((1, 22, 12), ">=1.23", False),
    ((1, 22, 0), ">=1.22,<1.26", True), ((1, 26, 1), ">=1.22,<1.26", False),
    ((1, 69, 0), "<1.69", False), ((1, 64, 0), "<1.69", True),
])
def test_satisfies(version, constraint, ok):
    assert satisfies(version, constraint) is ok


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 1 << 20, (1 << 63) - 1])
def test_uvarint_round_trip(value):
    encoded = encode_uvarint(value)
    assert uvarint(encoded + b"tail", 0) == (value, len(encoded))


def test_split_type_name():
    assert split_type_name("net/http.Request") == ("net/http", "Request")
    assert split_type_name("runtime.g") == ("runtime", "g")
    assert split_type_name("google.golang.org/grpc/internal/transport.Stream") == (
        "google.golang.org/grpc/internal/transport", "Stream")
    # A gopkg.in path's last element carries its version after a dot.
    assert split_type_name("gopkg.in/redis.v5.baseClient") == ("gopkg.in/redis.v5", "baseClient")
    assert split_type_name("gopkg.in/redis.v5/internal.RedisError") == (
        "gopkg.in/redis.v5/internal", "RedisError")
    assert split_type_name("gopkg.in/yaml.v2.Node") == ("gopkg.in/yaml.v2", "Node")
    with pytest.raises(ValueError):
        split_type_name("nodot")


def test_vendored_packages_match():
    assert package_matches("k8s.io/x/vendor/google.golang.org/grpc", "google.golang.org/grpc")
    assert not package_matches("example.com/google.golang.org/grpc", "google.golang.org/grpc")


def test_shipped_manifests_load():
    manifests = {m.library: m for m in load_manifests()}
    assert {"runtime", "net", "nethttp_server", "nethttp_client", "grpc_server",
            "grpc_client"} <= manifests.keys()
    assert any(f.name == "runtime.g.goid" for f in manifests["runtime"].fields)


def test_bad_manifest_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[library]\nname = "x"\n[[field]]\nname = "a.b.c"\ngo = "~1.2"\n')
    with pytest.raises(GotraceError, match="bad version constraint"):
        load_manifest(path)


def test_every_probe_needs_only_what_its_manifest_names():
    """A probe's functions and fields must be resolved for its library; the shared ones come
    from the runtime and net manifests."""
    from gotrace.probes import ALL_PROBES, COMMON_FIELDS

    manifests = {m.library: m for m in load_manifests()}
    shared = {f.name for lib in ("runtime", "net") for f in manifests[lib].fields}
    assert set(COMMON_FIELDS) <= shared
    for probe in ALL_PROBES:
        manifest = manifests[probe.library]
        assert {a.function for a in probe.attachments} <= {f.name for f in manifest.functions}
        assert set(probe.fields + probe.optional_fields) <= {
            f.name for f in manifest.fields} | shared


@pytest.mark.parametrize(("path", "name"), [
    ("net/http", "http"), ("github.com/labstack/echo/v4", "echo"),
    ("github.com/go-chi/chi/v5", "chi"), ("github.com/jackc/pgx/v4", "pgx"),
    ("gopkg.in/redis.v5", "redis"), ("github.com/mattn/go-sqlite3", "sqlite3"),
    ("github.com/lib/pq", "pq"),
])
def test_a_type_descriptor_is_looked_up_by_its_package_name_not_its_path(path, name):
    """Module builds name a versioned package's types by its name ('echo.context' for
    github.com/labstack/echo/v4), which the path's last element is not always."""
    assert name in package_names(path)
    assert package_names(path)[0] == path.rsplit("/", 1)[-1]  # the common case first


@pytest.mark.parametrize(("type_name", "package"), [
    ("*github.com/lib/pq.conn", "github.com/lib/pq"),
    ("gopkg.in/redis.v5/internal.RedisError", "gopkg.in/redis.v5/internal"),
    ("*github.com/jackc/pgx/v4/stdlib.Conn", "github.com/jackc/pgx/v4/stdlib"),
    ("*errors.errorString", "errors"),
    ("example.com/cache.Map[example.com/key.ID]", "example.com/cache"),
])
def test_a_type_names_its_package(type_name, package):
    assert package_of(type_name) == package


@pytest.mark.parametrize(("type_name", "system"), [
    ("*github.com/lib/pq.conn", "postgresql"),
    ("*github.com/jackc/pgx/v4/stdlib.Conn", "postgresql"),  # under pgx's path
    ("*github.com/go-sql-driver/mysql.mysqlConn", "mysql"),
    ("*github.com/mattn/go-sqlite3.SQLiteConn", "sqlite"),
    ("*example.com/ourdriver.conn", "other_sql"),
])
def test_the_driver_type_names_the_database(type_name, system):
    type_names.learn({0x1234: type_name})
    assert system_name(0x1234) == system
    assert system_name(0x9999_9999) == "other_sql"  # a type gotrace never learnt


class _Text:
    """An ElfImage's read() over bytes at a base address."""

    def __init__(self, base: int, data: bytes) -> None:
        self.base, self.data = base, data

    def read(self, address: int, size: int) -> bytes:
        return self.data[address - self.base: address - self.base + size]


def _call(at: int, target: int) -> bytes:
    return b"\xe8" + struct.pack("<i", target - (at + 5))


def test_direct_callers_are_the_functions_holding_a_call_to_the_target():
    base = 0x401000
    # f at 0x401000 (calls h), g at 0x401010 (calls h, and i through a byte that only looks
    # like a call to something else), h at 0x401020, i at 0x401030.
    code = bytearray(b"\x90" * 0x40)
    code[0x02:0x07] = _call(base + 0x02, base + 0x20)
    code[0x11:0x16] = _call(base + 0x11, base + 0x20)
    code[0x18:0x1D] = _call(base + 0x18, base + 0x30)
    code[0x1D] = 0xE8  # an E8 byte whose next four bytes lead nowhere listed
    functions = [(base, "f"), (base + 0x10, "g"), (base + 0x20, "h"), (base + 0x30, "i")]
    found = direct_callers(_Text(base, bytes(code)), base, base + 0x40, functions,
                           {base + 0x20, base + 0x30})
    assert found == {base + 0x20: {"f", "g"}, base + 0x30: {"g"}}
    assert direct_callers(_Text(base, bytes(code)), base, base + 0x40, functions, ()) == {}


@pytest.mark.parametrize(("dsn", "system", "database"), [
    ("postgres://gotrace:secret@127.0.0.1:5432/orders?sslmode=disable", "postgresql", "orders"),
    ("postgresql://u@db.internal/my%20db", "postgresql", "my db"),
    ("host=db user=u password='s e c' dbname=orders sslmode=disable", "postgresql", "orders"),
    ("host=db user=u password=secret", "postgresql", None),  # libpq's default: not said
    ("u:secret@tcp(127.0.0.1:3306)/shop?parseTime=true", "mysql", "shop"),
    ("file:/var/lib/app/app.db?cache=shared", "sqlite", "/var/lib/app/app.db"),
    ("/tmp/x.sqlite", "sqlite", "/tmp/x.sqlite"),
    ("", "postgresql", None),
])
def test_the_database_is_named_out_of_its_data_source_name(dsn, system, database):
    assert dsn_database(dsn, system) == database
    if database is not None:
        assert "secret" not in database
