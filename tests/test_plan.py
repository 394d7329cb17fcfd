"""plan_probes over declarations: a probe dropped for a missing requirement takes its
variant's and features' macros with it; the kernel's offsets of the tcp_identity option."""

from __future__ import annotations

import dataclasses

import pytest

from gotrace.errors import GotraceError
from gotrace.gobin.binary import GoBinary
from gotrace.kernel import plan
from gotrace.kernel.plan import plan_probes
from gotrace.pipeline.sampling import KEEP_ALL
from gotrace.probes import ALL_PROBES
from gotrace.probes.base import Feature
from gotrace.resolve.layout import resolve
from testapps import matrix


def test_a_probe_whose_requirement_cannot_run_leaves_no_macros():
    with GoBinary(matrix.build(matrix.Cell("httpclient", matrix.go_versions()[-1],
                                           "plain"))) as binary:
        layout = resolve(binary)
    client = next(p for p in ALL_PROBES if p.library == "nethttp_client")
    marked = Feature("mark", lambda _layout: {"MARKED_FEATURE": 1})
    needy = dataclasses.replace(client, library="needy", requires=("nowhere",),
                                features=(marked,))
    plan = plan_probes(layout, KEEP_ALL.kernel_macros(), [client, needy])
    assert [p.library for p in plan.probes] == ["nethttp_client"]
    assert plan.refused["needy"] == "needs the nowhere probe, which cannot run"
    assert "MARKED_FEATURE" not in plan.macros and "WITH_NEEDY" not in plan.macros
    kept = dataclasses.replace(needy, requires=("nethttp_client",))
    plan = plan_probes(layout, KEEP_ALL.kernel_macros(), [client, kept])
    assert plan.macros["MARKED_FEATURE"] == 1 and plan.macros["WITH_NEEDY"] == 1


def test_a_feature_that_cannot_be_takes_its_attachments_with_it():
    """The bundled HTTP/2 server's end is attached only where its feature resolves; where it
    does not, the probe runs without it and gotrace names the feature among the refused."""
    with GoBinary(matrix.build(matrix.Cell("h2", matrix.go_versions()[-1], "plain"))) as binary:
        layout = resolve(binary)
    server = next(p for p in ALL_PROBES if p.library == "nethttp_server")
    plan = plan_probes(layout, KEEP_ALL.kernel_macros(), [server])
    programs = [a.program for a in plan.probes[0].attachments]
    assert "http2_server_end" in programs and plan.macros["NETHTTP_HTTP2"] == 1
    del layout.fields["net/http.http2stream.id"]
    plan = plan_probes(layout, KEEP_ALL.kernel_macros(), [server])
    assert [p.library for p in plan.probes] == ["nethttp_server"]
    assert "http2_server_end" not in [a.program for a in plan.probes[0].attachments]
    assert "NETHTTP_HTTP2" not in plan.macros
    assert plan.refused["nethttp_server.http2"] == "missing net/http.http2stream.id"


def test_tcp_identity_offsets_come_from_the_kernel():
    macros = plan.tcp_identity_macros()
    assert macros["KERNEL_TCP_IDENTITY"] == 1
    assert {"KOFF_sock_skc_state", "KOFF_tcp_sock_bytes_acked",
            "KOFF_task_struct_files"} <= macros.keys()


def test_tcp_identity_without_a_kernel_member_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(plan, "TCP_IDENTITY_KERNEL_MEMBERS", (("tcp_sock", "no_such_field"),))
    with pytest.raises(GotraceError) as e:
        plan.tcp_identity_macros()
    assert "no_such_field" in str(e.value) and "\n" not in str(e.value)
