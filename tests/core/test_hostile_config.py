"""Hostile or unlucky config input: a clear message and exit 2, never a traceback, never accepted.

Each case once gave a traceback (non-UTF-8, 2,000 levels, --home /dev/null), ate memory until the
OOM killer came (`start -c /dev/zero`), or was silently accepted (1e308, duplicate keys, 7520.0,
an id ending in a newline, a health check every nanosecond).
"""
from __future__ import annotations

import json
import os

import pytest

from tests.conftest import _processes_of, run_cli
from tests.core.util import registry, write_config


def no_traceback(out) -> None:
    assert "Traceback" not in out.stdout + out.stderr, out.stderr


def rewrite(path, text: str | bytes) -> None:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def set_field(section: str, key: str, value: object):
    def change(doc: dict) -> str:
        doc[section][key] = value
        return json.dumps(doc)
    return change


CASES = [
    ("huge", lambda d: json.dumps({**d, "metadata": {**d["metadata"], "name": "x" * 50_000_000}}), ["larger than"]),
    ("deep", lambda d: "[" * 2000 + "]" * 2000, ["2000 levels deep"]),
    ("stop_timeout", set_field("daemon_config", "stop_timeout", 1e308), ["daemon_config.stop_timeout", "<= 3600"]),
    ("nan", lambda d: json.dumps(d).replace('"stop_timeout": 2', '"stop_timeout": NaN'), ["NaN"]),
    ("duplicate", lambda d: json.dumps(d)[:-1] + ', "strategy_config": {}}', ["duplicate key 'strategy_config'"]),
    ("float_port", set_field("daemon_config", "web_port", 7520.0), ["daemon_config.web_port", "7520.0", "integer"]),
    ("newline_id", set_field("metadata", "instance_id", "hostile\n"), ["metadata.instance_id", '"hostile\\n"']),
    ("spin", set_field("daemon_config", "health_check_interval", 1e-9), ["health_check_interval", ">= 0.1"]),
]


@pytest.mark.parametrize("name,make,needles", CASES, ids=[c[0] for c in CASES])
def test_refused_with_a_clear_message(home, name, make, needles):
    path = write_config(home, "hostile")
    rewrite(path, make(json.loads(path.read_text())))
    for command in ("validate", "start"):
        out = run_cli(home, command, "-c", str(path))
        no_traceback(out)
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        for needle in needles:
            assert needle in out.stdout + out.stderr, (command, needle, out.stdout, out.stderr)
    assert registry(home) == {} and _processes_of(home) == []


def test_a_non_utf8_config_does_not_break_validate_of_the_others(home):
    write_config(home, "good_one")
    rewrite(home / "config" / "active" / "latin1.json", '{"metadata": {"name": "café"}}'.encode("latin-1"))
    out = run_cli(home, "validate")
    no_traceback(out)
    assert out.returncode == 2
    assert "OK       config/active/good_one.json" in out.stdout
    assert "INVALID  config/active/latin1.json" in out.stdout and "not UTF-8" in out.stdout
    assert "1 valid, 1 invalid" in out.stdout


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_a_device_or_a_fifo_is_not_read(home, special):
    if special == "fifo":
        special = str(home / "config.fifo")
        os.mkfifo(special)  # nobody writes: a blocking open would hang the CLI
    for command in ("validate", "start"):
        out = run_cli(home, command, "-c", special, timeout=30)
        no_traceback(out)
        assert out.returncode == 2 and "not a regular file" in out.stdout + out.stderr, (out.stdout, out.stderr)


def test_an_instance_id_flag_with_a_trailing_newline(home):
    out = run_cli(home, "start", "-c", str(write_config(home, "fine")), "--instance-id", "fine\n")
    no_traceback(out)
    assert out.returncode == 2 and "--instance-id" in out.stderr
    assert not (home / "logs" / "fine\n").exists()


@pytest.mark.parametrize("command", [["list"], ["validate"], ["status", "-i", "x"]])
def test_a_home_that_is_not_a_directory(command):
    out = run_cli("/dev/null", *command)
    no_traceback(out)
    assert out.returncode == 2 and "not a directory" in out.stderr


def test_a_huge_or_binary_dotenv_is_a_clear_error(home):
    path = write_config(home, "dotenv_big", exchange_config={"api_key": "${SOME_KEY:-fallback-key-1234}"})
    env_file = home / ".env"
    for content in (b"SOME_KEY=" + b"x" * 2_000_000 + b"\n", b"SOME_KEY=\xff\xfe\n"):
        env_file.write_bytes(content)
        env_file.chmod(0o600)
        out = run_cli(home, "validate", "-c", str(path))
        no_traceback(out)
        assert out.returncode == 2 and f"{env_file}: cannot read" in out.stdout, (out.stdout, out.stderr)
