"""``hokusai redact [FILE]...``: a line-for-line filter."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.cli.redact import known_secrets_from_env, main
from tests.redaction import make_secret


def run(argv: list[str], data: bytes = b"", environ: dict[str, str] | None = None):
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(argv, io.BytesIO(data), stdout, stderr, environ=environ or {})
    return code, stdout.getvalue(), stderr.getvalue()


def test_stdin_is_copied_line_for_line() -> None:
    key = make_secret("hokusai-api-key")
    data = f"one\r\nkey={key}\r\n\r\nlast line without newline".encode()
    code, out, err = run([], data)
    assert code == 0 and not err
    assert out == "one\r\nkey=[redacted:hokusai-api-key]\r\n\r\nlast line without newline"


def test_files_in_order_and_dash_for_stdin(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text("first file\n")
    second.write_text("second file\n")
    code, out, _ = run([str(first), "-", str(second)], b"from stdin\n")
    assert code == 0
    assert out == "first file\nfrom stdin\nsecond file\n"


def test_missing_file_is_named_on_one_line_and_exits_2(tmp_path: Path) -> None:
    present = tmp_path / "present.log"
    present.write_text("kept\n")
    missing = tmp_path / "missing.log"
    code, out, err = run([str(missing), str(present)])
    assert code == 2
    assert out == "kept\n"
    assert err.count("\n") == 1 and str(missing) in err


def test_directory_is_unreadable(tmp_path: Path) -> None:
    code, _, err = run([str(tmp_path)])
    assert code == 2 and str(tmp_path) in err


def test_unknown_option_and_help() -> None:
    assert run(["--bogus"])[0] == 2
    code, out, _ = run(["--help"])
    assert code == 0 and "hokusai redact" in out


def test_bytes_that_are_not_utf8_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "latin1.log"
    path.write_bytes(b"caf\xe9 ok\n")
    stdout = io.BytesIO()
    wrapper = io.TextIOWrapper(stdout, encoding="utf-8")  # like sys.stdout, with a .buffer
    code = main([str(path)], io.BytesIO(), wrapper, io.StringIO(), environ={})
    wrapper.flush()
    assert code == 0 and stdout.getvalue() == b"caf\xe9 ok\n"


def test_the_process_own_secrets_are_redacted(tmp_path: Path) -> None:
    config = tmp_path / "hokusai.yml"
    config.write_text(
        "default_env: dev\nenvironments:\n  dev:\n    auth: {api_key_env: PROBE_KEY}\n"
    )
    environ = {
        "HOKUSAI_CONFIG": str(config),
        "PROBE_KEY": "opaque-probe-value-1",
        "SLACK_SIGNING_SECRET": "0123abcd" * 4,
        "UNRELATED": "not-a-secret-value",
    }
    assert sorted(known_secrets_from_env(environ)) == ["0123abcd" * 4, "opaque-probe-value-1"]
    data = b"sig 0123abcd0123abcd0123abcd0123abcd probe=opaque-probe-value-1 not-a-secret-value\n"
    code, out, _ = run([], data, environ)
    assert code == 0
    assert out == "sig [redacted:known-secret] probe=[redacted:known-secret] not-a-secret-value\n"


def test_a_broken_config_adds_no_names(tmp_path: Path) -> None:
    config = tmp_path / "hokusai.yml"
    config.write_text(": not yaml : [")
    assert known_secrets_from_env({"HOKUSAI_CONFIG": str(config)}) == []


@pytest.mark.parametrize("chunk", [40, 200, 1 << 18])
def test_streaming_keeps_wrapped_secrets_and_key_blocks_across_chunks(chunk: int) -> None:
    from bot.redaction import Redactor

    key = make_secret("hokusai-api-key", 2)
    line = "2025-08-19T13:57:01.123Z api " + " " * 40 + "key=" + key
    wrapped = [line[:80] + "\n", line[80:] + " done\n"]
    body = ["MIIE" + make_secret("aws-secret-key", i).replace("/", "A") + "\n" for i in range(6)]
    pem = ["-----BEGIN " + "PRIVATE KEY-----\n", *body, "-----END PRIVATE KEY-----\n"]
    lines = [f"filler line {i}\n" for i in range(20)] + wrapped + ["x\n"] * 3 + pem + ["end"]
    out = list(Redactor().redact_lines(lines, chunk_chars=chunk))
    assert len(out) == len(lines)
    text = "".join(out)
    assert key[:7] not in text and key[7:] not in text  # wrapped after 7 characters
    assert not any(b.strip() in text for b in body)
    assert out[:20] == lines[:20] and out[-1] == "end"
    assert out[21].endswith(" done\n")
