"""Several "hosts" on this machine for cross-host tests: network namespaces behind a router.

    with hosts("front", "middle", "back") as net:
        front = net["front"]                      # a Host: .name, .netns, .address, .prefix
        front.run("ip", "-br", "addr")            # any command inside it (nsenter --net)
        vip = net.service(net["middle"], 7002)    # "10.222.N.128:80": DNAT to middle:7002
        net.snat(net["middle"], net["back"])      # middle -> back seen as from the router
        net.outside                               # this process's address, as the hosts see it

The topology, everything but one veth pair inside namespaces of its own:

    root namespace (this process)          router namespace                host namespaces
    gtx<pid> 10.222.N.253/30  <-- veth -->  uplink 10.222.N.254/30
                                            br0 10.222.N.1/25  <-- veth --> eth0 10.222.N.11/32
                                                               <-- veth --> eth0 10.222.N.12/32 ...

The root namespace gets that one interface and one route, 10.222.N.0/24 via the router, so the
test process itself (load driver, OTLP receiver, Redis, bound to `net.outside`) and the hosts
reach each other; its forwarding, NAT and firewall are never touched. N is picked per run
(from the pid, skipping /24s already routed here). Service addresses (VIPs) come from
10.222.N.128/26 and are on no interface: only a DNAT rule makes them answer.

Every packet a host sends goes through the router, also to another host on the same bridge:
a host's address is a /32 with the router as its only gateway, and the router sends no ICMP
redirects. So the router's conntrack sees both directions of every connection, and a DNAT in
its prerouting hook needs no masquerade for the answers (with hosts in one on-link subnet the
server would answer the client directly, past the NAT, as in the classic hairpin problem).

Names carry this process's pid (namespaces gtx<pid>-<name>, the root veth gtx<pid>, the nft
tables gtx<pid>); everything is deleted on exit, also after a failure, and what a killed
earlier run left behind (its pid no longer running) is deleted when the next one starts,
together with the processes still running inside its namespaces.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

PREFIX = "gtx"  # of every name this module makes
NETS = ipaddress.ip_network("10.222.0.0/16")  # one /24 of it per run
TOOLS = {"ip": "iproute2", "nft": "nftables", "nsenter": "util-linux"}


class HostsError(RuntimeError):
    """The hosts cannot be built here; the message is one line saying why."""


@dataclass(frozen=True)
class Host:
    """One network namespace with one address; `prefix` runs a command inside it."""

    name: str
    netns: str
    address: str

    @property
    def prefix(self) -> tuple[str, ...]:
        """Runs a command in the host's network namespace and nothing else. Not `ip netns
        exec`: that also gives the command a mount namespace with a fresh /sys, without the
        tracefs mounted under /sys/kernel/tracing, which BCC's tracepoint programs need."""
        return ("nsenter", f"--net=/run/netns/{self.netns}")

    def command(self, *args: str) -> list[str]:
        return [*self.prefix, *args]

    def run(self, *args: str, input: str | None = None) -> str:
        """Run a command inside the host to its end; its stdout. HostsError if it fails."""
        return run(self.command(*args), input=input)

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        """Start a command inside the host (subprocess.Popen's keyword arguments). nsenter
        execs the command itself, so the process's pid is the command's."""
        return subprocess.Popen(self.command(*args), **kwargs)


@dataclass
class Network:
    """The hosts of one run, the router between them and the NAT rules made so far."""

    run_id: str  # gtx<pid>
    subnet: ipaddress.IPv4Network  # 10.222.N.0/24
    hosts: dict[str, Host] = field(default_factory=dict)
    _vips_used: int = 0
    _tables: set[str] = field(default_factory=set)  # namespaces with our nft table

    @property
    def router(self) -> Host:
        """The router's namespace, as a Host (its address is the one on the bridge)."""
        return Host("router", f"{self.run_id}-router", self._addr(1))

    @property
    def router_address(self) -> str:
        """Where a SNAT'ed hop comes from, as the server sees it."""
        return self._addr(1)

    @property
    def outside(self) -> str:
        """This process's address (the root namespace's end of its veth): bind servers the
        hosts must reach (OTLP receiver, Redis) here."""
        return self._addr(253)

    @property
    def vip_range(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(f"{self._addr(128)}/26")

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def service(self, target: Host, port: int, vip_port: int = 80,
                client: Host | None = None) -> str:
        """A new service address 'VIP:vip_port' that reaches target:port through a DNAT, as
        kube-proxy makes one: in the router's prerouting hook (for every client, this
        process included), or with `client` in that host's own output hook (kube-proxy's
        rule for a host-network client: the client's conntrack translates, the server sees
        the client's own address)."""
        vip = str(self.vip_range[self._vips_used])
        self._vips_used += 1
        rule = f"ip daddr {vip} tcp dport {vip_port} dnat to {target.address}:{port}"
        if client is None:
            self._nft(self.router, "prerouting", rule)
        else:
            self._nft(client, "output", rule)
        return f"{vip}:{vip_port}"

    def snat(self, source: Host, dest: Host) -> None:
        """Connections from source to dest (whatever port, also through a service address)
        leave the router with the router's address as their source."""
        self._nft(self.router, "postrouting",
                  f"ip saddr {source.address} ip daddr {dest.address} "
                  f"snat to {self.router_address}")

    def _addr(self, host_part: int) -> str:
        return str(self.subnet[host_part])

    def _nft(self, host: Host, chain: str, rule: str) -> None:
        """Add rule to chain (prerouting, postrouting or output) of our nat table in host."""
        if host.netns not in self._tables:
            # nft 1.0.6 refuses `priority dstnat` on the output hook: -100 is its value.
            host.run("nft", "-f", "-", input=f"""
table ip {self.run_id} {{
  chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
  chain output {{ type nat hook output priority -100; policy accept; }}
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
}}""")
            self._tables.add(host.netns)
        host.run("nft", "add", "rule", "ip", self.run_id, chain, *rule.split())

    def ruleset(self) -> str:
        """Our nft tables, router first (for failure messages)."""
        return "\n".join(h.run("nft", "list", "table", "ip", self.run_id)
                         for h in [self.router, *self.hosts.values()]
                         if h.netns in self._tables)


def run(command: list[str], input: str | None = None) -> str:
    """Run a command to its end; its stdout. HostsError, one line, if it fails."""
    try:
        done = subprocess.run(command, input=input, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise HostsError(f"{' '.join(command)}: {e}") from e
    if done.returncode != 0:
        raise HostsError(f"{' '.join(command)} failed ({done.returncode}): "
                         f"{' '.join(done.stderr.split())}")
    return done.stdout


def check_tools() -> None:
    """HostsError (one line) unless we are root and have `ip`, `nft` and `nsenter`."""
    missing = [f"{tool} (Debian package {package})" for tool, package in TOOLS.items()
               if shutil.which(tool) is None]
    if missing:
        raise HostsError(f"cross-host tests need {' and '.join(missing)}: run "
                         "scripts/setup.sh")
    if os.geteuid() != 0:
        raise HostsError("cross-host tests make network namespaces: run them as root")


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def namespaces() -> list[str]:
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line]


def _kill_inside(netns: str) -> None:
    """SIGKILL the processes still running inside one of our namespaces (only ours: the
    namespace's name says which run made it), so that deleting its name frees it."""
    try:
        pids = run(["ip", "netns", "pids", netns]).split()
    except HostsError:
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def _delete(run_id: str) -> None:
    """Everything run_id made: its namespaces (and the processes in them), its root veth
    (which takes its route with it). Deleting the router's namespace deletes every veth pair
    with an end in it."""
    for netns in namespaces():
        if netns.startswith(f"{run_id}-"):
            _kill_inside(netns)
            with contextlib.suppress(HostsError):
                run(["ip", "netns", "del", netns])
    if os.path.exists(f"/sys/class/net/{run_id}"):
        with contextlib.suppress(HostsError):
            run(["ip", "link", "del", run_id])


def clean_stale() -> list[str]:
    """Delete what earlier runs, no longer running, left behind; their run ids."""
    pattern = re.compile(rf"^{PREFIX}(\d+)(?:-|$)")
    names = namespaces() + os.listdir("/sys/class/net")
    stale = {m[0].rstrip("-") for name in names if (m := pattern.match(name))
             and int(m[1]) != os.getpid() and not _alive(int(m[1]))}
    for run_id in sorted(stale):
        _delete(run_id)
    return sorted(stale)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of NETS that no route or address of the root namespace overlaps, starting from
    one the pid picks (so that concurrent runs rarely try the same one)."""
    taken = []
    for line in run(["ip", "-4", "route", "show", "table", "all"]).splitlines() + \
            run(["ip", "-4", "-o", "addr", "show"]).split("\n"):
        for word in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?\b", line):
            net = ipaddress.ip_network(word, strict=False)
            if net.prefixlen > 0:  # a default route overlaps everything
                taken.append(net)
    subnets = list(NETS.subnets(new_prefix=24))[1:-1]
    start = os.getpid() % len(subnets)
    for subnet in subnets[start:] + subnets[:start]:
        if not any(subnet.overlaps(net) for net in taken):
            return subnet
    raise HostsError(f"no free /24 in {NETS} for the test hosts")


@contextlib.contextmanager
def hosts(*names: str) -> Iterator[Network]:
    """Hosts of these names (each its own namespace, addresses .11, .12, ... of the run's
    /24), the router between them and the root namespace; torn down on exit."""
    check_tools()
    clean_stale()
    run_id = f"{PREFIX}{os.getpid()}"
    _delete(run_id)  # an earlier hosts() of this process that failed half-way
    net = Network(run_id, _free_subnet())
    try:
        _build(net, names)
        yield net
    finally:
        _delete(run_id)


def _build(net: Network, names: tuple[str, ...]) -> None:
    router = net.router.netns
    r = net.router
    run(["ip", "netns", "add", router])
    r.run("ip", "link", "set", "lo", "up")
    for setting in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
                    "net.ipv4.conf.default.send_redirects=0"):
        r.run("sysctl", "-qw", setting)
    r.run("ip", "link", "add", "br0", "type", "bridge")
    r.run("ip", "addr", "add", f"{net.router_address}/25", "dev", "br0")
    r.run("ip", "link", "set", "br0", "up")
    # The root namespace's one interface: a veth whose other end is the router's uplink.
    up = net._addr(254)
    run(["ip", "link", "add", net.run_id, "type", "veth", "peer", "name", "uplink",
          "netns", router])
    run(["ip", "addr", "add", f"{net.outside}/30", "dev", net.run_id])
    run(["ip", "link", "set", net.run_id, "up"])
    r.run("ip", "addr", "add", f"{up}/30", "dev", "uplink")
    r.run("ip", "link", "set", "uplink", "up")
    run(["ip", "route", "add", str(net.subnet), "via", up, "dev", net.run_id])
    for i, name in enumerate(names):
        host = Host(name, f"{net.run_id}-{name}", net._addr(11 + i))
        run(["ip", "netns", "add", host.netns])
        r.run("ip", "link", "add", f"h{i}", "type", "veth", "peer", "name", "eth0",
              "netns", host.netns)
        r.run("ip", "link", "set", f"h{i}", "master", "br0", "up")
        host.run("sysctl", "-qw", "net.ipv4.conf.all.accept_redirects=0")
        host.run("ip", "link", "set", "lo", "up")
        host.run("ip", "addr", "add", f"{host.address}/32", "dev", "eth0")
        host.run("ip", "link", "set", "eth0", "up")
        host.run("ip", "route", "add", net.router_address, "dev", "eth0", "scope", "link")
        host.run("ip", "route", "add", "default", "via", net.router_address, "dev", "eth0")
        net.hosts[name] = host
