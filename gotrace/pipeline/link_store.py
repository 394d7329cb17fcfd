"""Where agents on different hosts meet to link their spans: a Redis the operators run.

A client span published here is found by the agent of the host that served the request
(gotrace/pipeline/cross_host.py says what the keys and values are). This module only moves
bytes: one thread owns the connection and, every FLUSH_INTERVAL_S, sends everything queued
as one pipelined write (SET ... PX for the publications, one MGET for the lookups) and reads
the replies. The pipeline thread only appends to bounded queues and takes the answers, so a
store that is slow, down or restarted never blocks it: publications queued while the store
is down are dropped (counted), lookups are answered "down" at once, and the thread
reconnects with a growing back-off, saying so in one line each way.

The protocol is Redis's RESP, written by hand: redis-py's pipeline costs several times more
CPU per key than the span it links (bench/REPORT.md), and the few commands used here need no
client library.
"""

from __future__ import annotations

import collections
import random
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from gotrace.errors import GotraceError

FLUSH_INTERVAL_S = 0.05
CONNECT_TIMEOUT_S = 2.0
IO_TIMEOUT_S = 1.0  # a round trip slower than this counts the store as down
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
MAX_QUEUED_PUBLICATIONS = 100_000  # beyond, the oldest are dropped (counted)
MAX_WANTED_KEYS = 100_000  # lookups outstanding; beyond, the oldest are given up (counted)
MAX_KEYS_PER_ROUND = 5_000  # per command kind and round trip
HEALTH_KEY = b"gt1:health"  # asked for on connecting: never written


class LinkStoreError(GotraceError):
    """A --link-store setting that cannot be used."""


@dataclass(frozen=True)
class StoreAddress:
    """Where the store is and how to log in: redis://[[user]:password@]host[:port][/db], or
    rediss:// for TLS (verified against the system's CAs, or ?cacert=FILE)."""

    url: str
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None
    database: int = 0
    cacert: str | None = None

    @property
    def shown(self) -> str:
        """The URL without its credentials, for messages."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.database}"


def parse_store_url(url: str) -> StoreAddress:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise LinkStoreError(f"--link-store {url!r}: expected redis://HOST[:PORT] or "
                             "rediss://HOST[:PORT]")
    if not parts.hostname:
        raise LinkStoreError(f"--link-store {url!r}: no host")
    try:
        port = parts.port or 6379
        database = int(parts.path.strip("/") or 0)
    except ValueError:
        raise LinkStoreError(f"--link-store {url!r}: bad port or database number") from None
    query = urllib.parse.parse_qs(parts.query)
    unknown = set(query) - {"cacert"}
    if unknown:
        raise LinkStoreError(f"--link-store {url!r}: unknown option {sorted(unknown)[0]!r} "
                             "(known: cacert)")
    unquote = urllib.parse.unquote
    return StoreAddress(url, parts.hostname, port, parts.scheme == "rediss",
                        unquote(parts.username) if parts.username else None,
                        unquote(parts.password) if parts.password is not None else None,
                        database, query.get("cacert", [None])[0])


OK = b"+OK\r\n"


class _Reply(Exception):
    """An error reply (-ERR ...) from the store."""


class RespConnection:
    """One connection speaking RESP: commands are packed here, replies parsed here."""

    def __init__(self, address: StoreAddress) -> None:
        raw = socket.create_connection((address.host, address.port), timeout=CONNECT_TIMEOUT_S)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if address.tls:
            context = ssl.create_default_context(cafile=address.cacert)
            raw = context.wrap_socket(raw, server_hostname=address.host)
        raw.settimeout(IO_TIMEOUT_S)
        self._sock = raw
        self._reader = raw.makefile("rb")
        login: list[list[bytes]] = []
        if address.password is not None:
            who = [address.username.encode()] if address.username else []
            login.append([b"AUTH", *who, address.password.encode()])
        if address.database:
            login.append([b"SELECT", str(address.database).encode()])
        if login:
            self.send(b"".join(pack(c) for c in login))
            for _ in login:
                self.reply()

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def reply(self) -> object:
        """The next reply: bytes, int, None (a nil), a list, or _Reply raised for an error."""
        line = self._reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("the store closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise _Reply(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._reader.read(size + 2)
            if len(data) != size + 2:
                raise ConnectionError("the store closed the connection")
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.reply() for _ in range(count)]
        raise ConnectionError(f"not a RESP reply: {line[:40]!r}")

    def expect_ok(self, count: int) -> None:
        """count replies that are all +OK (SET's), read at once; _Reply for an error among
        them (the connection is then out of step: the caller drops it)."""
        data = self._reader.read(len(OK) * count)
        if data == OK * count:
            return
        for at in range(0, len(data), len(OK)):
            if data[at:at + 1] == b"-":
                raise _Reply(data[at + 1:].split(b"\r\n", 1)[0].decode("utf-8", "replace"))
        raise ConnectionError("the store answered SET with something else")

    def close(self) -> None:
        try:
            self._reader.close()
            self._sock.close()
        except OSError:
            pass


def pack(command: list[bytes]) -> bytes:
    """A command as RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(command) + b"".join(
        [b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in command])


def pack_set(key: bytes, value: bytes, ttl_ms: bytes) -> bytes:
    """SET key value PX ttl_ms as RESP, in one step (one per span published)."""
    return b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nPX\r\n$%d\r\n%s\r\n" % (
        len(key), key, len(value), value, len(ttl_ms), ttl_ms)


@dataclass
class StoreStats:
    published: int = 0  # keys written
    publish_dropped: dict[str, int] = field(
        default_factory=lambda: {"store_down": 0, "queue_full": 0})
    lookups: int = 0  # keys asked (each round a key is still wanted counts once)
    found: int = 0
    round_trips: int = 0
    outages: int = 0  # times the store was found down
    wanted_dropped: int = 0  # lookups given up because too many were outstanding

    def summary(self) -> str:
        dropped = ", ".join(f"{reason}={n}" for reason, n in self.publish_dropped.items())
        return (f"published {self.published} (dropped {dropped}), looked up {self.lookups}, "
                f"found {self.found}, round trips {self.round_trips}, outages {self.outages}, "
                f"lookups given up for room {self.wanted_dropped}")


class LinkStore:
    """The store, seen from the pipeline: publish, want, take answers. Thread-safe."""

    def __init__(self, address: StoreAddress, ttl_ms: int, warn: TextIO = sys.stderr,
                 settled: Callable[[bytes], bool] = lambda _value: False) -> None:
        """settled: whether a value found is the key's last (no longer asked for: the next
        rounds would fetch it again before the pipeline takes the answer)."""
        self.address = address
        self._settled = settled
        self.ttl = str(ttl_ms).encode()
        self.stats = StoreStats()
        self._warn = warn
        self._lock = threading.Lock()
        self._publications: collections.deque[tuple[bytes, bytes]] = collections.deque()
        # key -> (monotonic times to ask first, to give up asking), in the order wanted
        self._wanted: dict[bytes, tuple[float, float]] = {}
        self._answers: list[tuple[bytes, bytes]] = []
        self._up = True  # until the first failure: the first connection is tried at once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gotrace-link-store",
                                        daemon=True)
        self._conn: RespConnection | None = None
        self._in_flight = 0  # publications of the round under way

    # --- the pipeline's side ---------------------------------------------------------------

    @property
    def up(self) -> bool:
        """Whether the last round trip (or the first connection) worked."""
        return self._up

    def start(self) -> None:
        self._thread.start()

    def publish(self, key: bytes, value: bytes) -> None:
        with self._lock:  # the store thread counts drops too
            if not self._up:
                self.stats.publish_dropped["store_down"] += 1
                return
            if len(self._publications) >= MAX_QUEUED_PUBLICATIONS:
                self._publications.popleft()
                self.stats.publish_dropped["queue_full"] += 1
            self._publications.append((key, value))

    def want(self, key: bytes, seconds: float, after: float = 0.0) -> None:
        """Ask for key every round from `after` seconds from now (when it may have been
        written) until `seconds` from now, unless it is settled or forgotten before."""
        now = time.monotonic()
        with self._lock:
            self._wanted[key] = (now + after, now + seconds)
            if len(self._wanted) > MAX_WANTED_KEYS:
                del self._wanted[next(iter(self._wanted))]
                self.stats.wanted_dropped += 1

    def forget(self, key: bytes) -> None:
        with self._lock:
            self._wanted.pop(key, None)

    def answers(self) -> list[tuple[bytes, bytes]]:
        """(key, value) found since the last call. A key stays wanted (its value may change:
        cross_host.py's pending values) until its value is settled, it is forgotten or its
        time is up."""
        with self._lock:
            found, self._answers = self._answers, []
        return found

    def close(self) -> None:
        """Send what is queued (briefly), then stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=IO_TIMEOUT_S + 1)

    # --- the store thread ------------------------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_FIRST_S
        while True:
            stopping = self._stop.is_set()
            try:
                self._round()
                if not self._up:
                    self._up = True
                    print(f"gotrace: link store {self.address.shown} reachable again; "
                          "linking across hosts resumes", file=self._warn)
                backoff = BACKOFF_FIRST_S
                if stopping:
                    break
                self._stop.wait(FLUSH_INTERVAL_S)
            except (OSError, ConnectionError, _Reply, ValueError) as e:
                self._disconnect()
                if self._up:
                    self._up = False
                    self.stats.outages += 1
                    print(f"gotrace: link store {self.address.shown} unavailable ({_why(e)}); "
                          "spans called from other hosts are exported unlinked until it is "
                          "back", file=self._warn)
                self._drop_queued()
                if stopping:
                    break
                self._stop.wait(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, BACKOFF_MAX_S)
        self._disconnect()

    def _drop_queued(self) -> None:
        with self._lock:
            self.stats.publish_dropped["store_down"] += len(self._publications) + \
                self._in_flight
            self._publications.clear()
            self._in_flight = 0

    def _take_round(self) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        """What to send now. Keys are wanted in order, each for as long as the last (the
        pipeline asks alike for all), so both ends of the wanted ones are a prefix: no round
        walks the keys it does not ask for."""
        now = time.monotonic()
        with self._lock:
            n = min(len(self._publications), MAX_KEYS_PER_ROUND)
            publications = [self._publications.popleft() for _ in range(n)]
            expired = []
            for key, (_, until) in self._wanted.items():
                if until > now:
                    break
                expired.append(key)
            for key in expired:
                del self._wanted[key]
            wanted = []
            for key, (first, _) in self._wanted.items():
                if first > now or len(wanted) == MAX_KEYS_PER_ROUND:
                    break
                wanted.append(key)
        return publications, wanted

    def _round(self) -> None:
        if self._conn is None:  # also with nothing to send: only an answer says it is up
            self._conn = self._connect()
        publications, wanted = self._take_round()
        if not publications and not wanted:
            return
        self._in_flight = len(publications)  # lost with the connection, if it fails now
        ttl = self.ttl
        out = [pack_set(key, value, ttl) for key, value in publications]
        if wanted:
            out.append(pack([b"MGET", *wanted]))
        self._conn.send(b"".join(out))
        if publications:
            self._conn.expect_ok(len(publications))
        self.stats.published += len(publications)
        self._in_flight = 0
        self.stats.round_trips += 1
        if not wanted:
            return
        values = self._conn.reply()
        if not isinstance(values, list) or len(values) != len(wanted):
            raise ConnectionError("the store answered MGET with something else")
        self.stats.lookups += len(wanted)
        found = [(k, v) for k, v in zip(wanted, values, strict=True) if isinstance(v, bytes)]
        if found:
            self.stats.found += len(found)
            with self._lock:
                self._answers.extend(found)
                for key, value in found:
                    if self._settled(value):
                        self._wanted.pop(key, None)

    def _connect(self) -> RespConnection:
        """A connection on which the store has answered (a server that accepts but does not
        answer, stopped or overloaded, is not up): an MGET, which is all an agent's ACL user
        may need besides SET."""
        conn = RespConnection(self.address)
        try:
            conn.send(pack([b"MGET", HEALTH_KEY]))
            conn.reply()
        except BaseException:
            conn.close()
            raise
        return conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _why(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200]
