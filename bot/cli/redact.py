"""``hokusai redact [FILE]...``: copy text with every secret replaced, line for line.

For people cleaning a log before pasting it anywhere. Reads the files in order (``-`` or no
file: standard input), writes exactly as many lines as it read with their line endings, and
streams, so a 1 GB log never sits in memory. Besides every secret known by shape, it scrubs
the values of this process's own secret variables (``SLACK_BOT_TOKEN``, ``HOKUSAI_API_KEY``...).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import yaml

USAGE = "usage: hokusai redact [FILE]...  (no FILE or '-': standard input)"

SECRET_ENV_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "LINEAR_API_KEY",
    "JIRA_API_TOKEN",
    "HOKUSAI_API_KEY",
)


def known_secrets_from_env(environ: Mapping[str, str]) -> list[str]:
    """The values of the secret variables set in ``environ``.

    Besides ``SECRET_ENV_VARS``, every variable that ``hokusai.yml`` (``HOKUSAI_CONFIG``)
    names in an environment's ``auth.api_key_env`` counts; an unreadable config adds none.
    """
    names = [*SECRET_ENV_VARS, *_api_key_env_names(environ)]
    values = []
    for name in dict.fromkeys(names):
        value = environ.get(name, "")
        if value and value not in values:
            values.append(value)
    return values


def _api_key_env_names(environ: Mapping[str, str]) -> list[str]:
    path = Path(environ.get("HOKUSAI_CONFIG") or "hokusai.yml")
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []
    environments = config.get("environments") if isinstance(config, dict) else None
    if not isinstance(environments, dict):
        return []
    names = []
    for environment in environments.values():
        auth = environment.get("auth") if isinstance(environment, dict) else None
        name = auth.get("api_key_env") if isinstance(auth, dict) else None
        if isinstance(name, str) and name:
            names.append(name)
    return names


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "redact",
        help="Copy text with every secret replaced, line for line.",
        description="Reads FILEs (or stdin, or -) and writes them with every secret replaced.",
    )
    p.add_argument("files", nargs=argparse.REMAINDER, metavar="FILE", help="default: stdin")
    p.set_defaults(func=cmd_redact)


def cmd_redact(
    args: argparse.Namespace, stdout: IO[Any] | None = None, stderr: IO[Any] | None = None, **_: Any
) -> int:
    return main(args.files, sys.stdin, stdout or sys.stdout, stderr or sys.stderr)


def main(
    argv: list[str],
    stdin: IO[Any],
    stdout: IO[Any],
    stderr: IO[Any],
    environ: Mapping[str, str] | None = None,
) -> int:
    """Redact the files named in ``argv`` (or ``stdin``) to ``stdout``; return the exit code.

    Returns 0 when everything was copied, 2 for a file that cannot be read (one line on
    ``stderr`` naming it; the other files are still copied) or for an unknown option.
    """
    files: list[str] = []
    options_done = False
    for arg in argv:
        if not options_done and arg == "--":
            options_done = True
        elif not options_done and arg in ("-h", "--help"):
            stdout.write(USAGE + "\n")
            return 0
        elif not options_done and arg.startswith("-") and arg != "-":
            stderr.write(f"hokusai redact: unknown option {arg} ({USAGE})\n")
            return 2
        else:
            files.append(arg)
    from bot.redaction import Redactor

    redactor = Redactor(known_secrets_from_env(os.environ if environ is None else environ))
    write = _writer(stdout)
    status = 0
    try:
        for name in files or ["-"]:
            try:
                if name == "-":
                    _copy(redactor, _stream_lines(stdin), write)
                else:
                    with open(name, "rb") as handle:
                        _copy(redactor, _decoded(handle), write)
            except BrokenPipeError:
                raise
            except OSError as exc:
                reason = exc.strerror or str(exc)
                stderr.write(f"hokusai redact: {name}: {reason}\n")
                status = 2
        _flush(stdout)
    except BrokenPipeError:  # "hokusai redact big.log | head": the reader has had enough
        _silence(stdout)
    return status


def _copy(redactor: Any, lines: Iterator[str], write: Any) -> None:
    for chunk in redactor.redact_chunks(lines):
        write(chunk)


def _decoded(handle: IO[bytes]) -> Iterator[str]:
    # surrogateescape carries bytes that are not UTF-8 through unchanged
    for raw in handle:
        yield raw.decode("utf-8", "surrogateescape")


def _stream_lines(stream: IO[Any]) -> Iterator[str]:
    """Lines of a text or binary stream; a real stdin is read as bytes to keep CRLF endings."""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        yield from _decoded(buffer)
        return
    for line in stream:
        yield line.decode("utf-8", "surrogateescape") if isinstance(line, bytes) else line


def _writer(stream: IO[Any]) -> Any:
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        stream.flush()
        return lambda line: buffer.write(line.encode("utf-8", "surrogateescape"))
    return stream.write


def _silence(stream: IO[Any]) -> None:
    """Point a closed pipe at /dev/null so that the interpreter's final flush stays quiet."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _flush(stream: IO[Any]) -> None:
    buffer = getattr(stream, "buffer", None)
    (buffer or stream).flush()
