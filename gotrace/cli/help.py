"""The long help of `gotrace trace` and `gotrace run`, laid out like a manual page.

argparse prints these verbatim (RawDescriptionHelpFormatter); sections both commands share
are written once and joined.
"""

_CONFIG = """\
configuration file:
  --config FILE reads the same settings from a YAML mapping: each key is a long flag
  without its dashes (otlp-endpoint, or otlp_endpoint), switches take true or false, and
  repeatable flags a list or a single value. Flags given on the command line win over the
  file, the file over the environment, the environment over the defaults. An unknown key
  or a bad value is an error naming the file and the key.

      # /etc/gotrace/config.yaml
      exe: [/usr/local/bin/api, /usr/local/bin/worker]
      otlp-endpoint: http://otel-collector:4317
      otlp-protocol: grpc
      metrics-port: 9464
"""

_ENVIRONMENT = """\
environment:
  OTEL_EXPORTER_OTLP_ENDPOINT    where to send spans over OTLP; setting it turns OTLP export
                                 on (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT takes precedence)
  OTEL_EXPORTER_OTLP_PROTOCOL    grpc or http/protobuf (default http/protobuf;
                                 OTEL_EXPORTER_OTLP_TRACES_PROTOCOL takes precedence)
  OTEL_EXPORTER_OTLP_HEADERS     key=value,... sent with every export, e.g. credentials
  OTEL_SERVICE_NAME              service.name of every traced process (default: the name
                                 of its executable)
  OTEL_RESOURCE_ATTRIBUTES       key=value,... added to the resource of every span
  OTEL_TRACES_SAMPLER            which traces to keep (--sampler): parentbased_always_on
                                 (default), traceidratio, always_off, adaptive, ...
  OTEL_TRACES_SAMPLER_ARG        its argument (--sampler-arg), e.g. 0.1
  GOTRACE_PROBE_PATH             directories (':'-separated) of more libraries to
                                 instrument, each as <library>.toml, .c and .py (README:
                                 "Adding a library")
"""

_STATUS = """\
status output:
  On a terminal, stderr shows one line refreshed every second: processes traced, spans
  decoded per second, spans exported, spans dropped, failed export attempts ("errors").
  Otherwise (a file, a pipe, a container log) stderr carries JSON lines with time, level
  and msg: "tracing" when attached, "status" every 10 seconds, "stopped" at the end, and
  warnings such as an exporter failing; counters still at zero are left out. --stats adds
  probe hits, same-host links and per-exporter counts when the session ends, and the
  probes' run time while the sysctl kernel.bpf_stats_enabled is 1.
"""

TRACE_DESCRIPTION = """\
Attach to running Go programs and export one span per HTTP request and gRPC call they
serve or make, with OpenTelemetry attributes; calls between traced programs on this host
join one trace. Nothing in the programs changes (unless --inject-traceparent is given):
no restart, no rebuild, no new environment, and they keep running when gotrace stops
(Ctrl-C, SIGTERM, --duration, or, without --exe, when every --pid and --port target has
exited).

Say what to trace with --pid, --exe and --port, in any combination. Spans go to the
outputs chosen, the console when none is.
"""

TRACE_EPILOG = f"""\
{_CONFIG}
{_ENVIRONMENT}
{_STATUS}
exit status:
  0 after a clean stop; 2 when an argument, the configuration file, a target or the
  machine is not right (one line on stderr says what: no such process, not a Go binary,
  not root, no kernel headers, a port nobody listens on, ...).

examples:
  Print the requests of one process as trees:
      gotrace trace --pid 4242

  Every process of a file, now and later, to an OpenTelemetry Collector over gRPC:
      gotrace trace --exe /usr/local/bin/api \\
          --otlp-endpoint http://localhost:4317 --otlp-protocol grpc

  Whatever listens on port 8080, for one minute, into a file, then a report:
      gotrace trace --port 8080 --jsonl spans.jsonl --duration 60
      gotrace report spans.jsonl

  Request-duration histograms for Prometheus, settings from a file:
      gotrace trace --config /etc/gotrace/config.yaml --metrics-port 9464

  Routes made from paths where no router names them (/users/42 -> GET /users/{id}):
      gotrace trace --pid 4242 --metrics-port 9464 --infer-routes
"""

RUN_DESCRIPTION = """\
Start PROGRAM with its arguments and trace it from its first request: the program is held
back until every probe is attached. gotrace exits when the program does, with its exit
status; Ctrl-C and SIGTERM stop the tracing and then the program.
"""

RUN_EPILOG = f"""\
{_CONFIG}
{_ENVIRONMENT}
{_STATUS}
exit status:
  The program's exit status; 2 when an argument, the configuration file or the machine is
  not right (one line on stderr says what).

examples:
  gotrace run -- ./server -addr :8080
  gotrace run --jsonl spans.jsonl --stats -- ./server -addr :8080
  gotrace run --config gotrace.yaml -- /usr/local/bin/api --listen :9000
"""
