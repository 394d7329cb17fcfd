"""Settings of `gotrace trace` and `gotrace run` from a YAML file (--config FILE).

The file is one mapping; its keys are the long flags without their dashes (`otlp-endpoint`,
or `otlp_endpoint`), its values what the flag takes: `true`/`false` for switches such as
`console`, a list or a single value for repeatable flags such as `pid`. Values go through
the flag's own parser (type and choices), so a file and the equivalent command line give
the same settings.

Precedence, highest first: flags, the file, the OTEL_* environment variables, defaults.
A flag was given when its value differs from its argparse default, which is why every
session option's default is None (switches: False) - a value no flag can produce; built-in
defaults other than that are applied where the value is used. The environment needs no
step here: what reads OTEL_* (otlp_config, the resource) only does so for a setting that is
still None.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from gotrace.errors import GotraceError

CONFIG_DEST = "config"


def apply_config(args: argparse.Namespace, parser: argparse.ArgumentParser
                 ) -> argparse.Namespace:
    """Fill the options not given on the command line from args.config, if any."""
    path = getattr(args, CONFIG_DEST, None)
    if path is None:
        return args
    options = session_options(parser)
    for key, raw in load_config(path).items():
        action = options.get(key.replace("_", "-"))
        if action is None:
            raise GotraceError(f"{path}: unknown setting {key!r} (known: "
                               f"{', '.join(sorted(options))})")
        if getattr(args, action.dest) == action.default:
            setattr(args, action.dest, _value(action, raw, f"{path}: {key}"))
    return args


def session_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's options a file may set, by long flag name without dashes.

    argparse has no public way to list a parser's options; _actions is that list.
    """
    options = {}
    for action in parser._actions:
        long_flags = [flag for flag in action.option_strings if flag.startswith("--")]
        if long_flags and action.dest not in ("help", CONFIG_DEST):
            options[long_flags[0].removeprefix("--")] = action
    return options


def load_config(path: str | Path) -> dict[str, Any]:
    """The file's mapping (empty for an empty file); any problem is a one-line GotraceError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise GotraceError(f"cannot read config {path}: {reason or e}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise GotraceError(f"{path}: not valid YAML ({_yaml_problem(e)})") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise GotraceError(f"{path}: expected a mapping of settings, got "
                           f"{type(document).__name__}")
    for key in document:
        if not isinstance(key, str):
            raise GotraceError(f"{path}: setting names are strings, got {key!r}")
    return document


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def _value(action: argparse.Action, raw: object, where: str) -> object:
    if action.nargs == 0:  # a switch
        if not isinstance(raw, bool):
            raise GotraceError(f"{where}: expected true or false, got {raw!r}")
        return action.const if raw else action.default
    if isinstance(action, argparse._AppendAction):  # repeatable: a list or one value
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise GotraceError(f"{where}: empty list")
        return [_scalar(action, item, where) for item in items]
    return _scalar(action, raw, where)


def _scalar(action: argparse.Action, raw: object, where: str) -> object:
    """One value, converted as argparse converts the flag's argument."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise GotraceError(f"{where}: expected a single value, got {raw!r}")
    text = str(raw)
    convert = action.type
    if convert is None:
        value: object = text
    else:
        try:
            value = convert(text)  # type: ignore[operator]
        except argparse.ArgumentTypeError as e:
            raise GotraceError(f"{where}: {e}") from None
        except (TypeError, ValueError):
            kind = getattr(convert, "__name__", repr(convert))
            raise GotraceError(f"{where}: invalid {kind} value: {text!r}") from None
    if action.choices is not None and value not in action.choices:
        raise GotraceError(f"{where}: {value!r} is not one of "
                           f"{', '.join(map(str, action.choices))}")
    return value
