"""The ``rogatory`` command, run in-process: setting up two nodes and a signed directory.

Key stores are created at the CLI's default Argon2id cost, so the federation is set up once
per module (three secretariat keys, two nodes, one directory signed by two keys) and each test
then runs the commands it is about. Failures must be exit status 1 and exactly one stderr line
``error: <code>: ...``.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keys.directory import SignedRecord, verify_directory
from keys.identity import decode_public
from node.cli import main
from node.config import load_config
from node.federation import free_port

NODE_PASSPHRASE = "correct horse battery staple"
SECRETARIAT_PASSPHRASE = "secretariat: three keys, two to sign"


@dataclass(frozen=True)
class Setup:
    root: Path
    keys: list[Path]
    pins: list[str]
    homes: dict[str, Path]
    directory: Path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def one_error_line(stderr: str, code: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: {code}"), stderr


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROGATORY_PASSPHRASE", NODE_PASSPHRASE)
    monkeypatch.setenv("ROGATORY_SECRETARIAT_PASSPHRASE", SECRETARIAT_PASSPHRASE)
    monkeypatch.delenv("ROGATORY_HOME", raising=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ROGATORY_PASSPHRASE", NODE_PASSPHRASE)
        env.setenv("ROGATORY_SECRETARIAT_PASSPHRASE", SECRETARIAT_PASSPHRASE)
        keys, pins = [], []
        for n in range(3):
            keys.append(root / f"secretariat-{n}.key")
            status, out, err = run("directory", "keygen", "--out", str(keys[-1]))
            assert (status, err) == (0, "")
            pins.append(out.strip())
        homes = {"FR:MJ": root / "fr", "BR:MJSP": root / "br"}
        for authority, home in homes.items():
            pin_args = [arg for pin in pins for arg in ("--secretariat", pin)]
            status, out, err = run(
                "init", "--home", str(home), "--authority", authority,
                "--name", f"Central authority {authority}", "--peer-port", str(free_port()),
                "--api-port", str(free_port()), "--threshold", "2", "--language", "en",
                *pin_args)
            assert (status, err) == (0, ""), err
            assert out.startswith(f"initialised {authority}")
        directory = root / "directory.json"
        status, _, err = run("directory", "create", "--federation", "cli-test", "--serial", "1",
                             "--out", str(directory),
                             *(str(h / "authority-record.json") for h in homes.values()))
        assert (status, err) == (0, "")
        for key in keys[:2]:
            status, out, err = run("directory", "sign", "--file", str(directory),
                                   "--key", str(key))
            assert (status, err) == (0, "")
        assert "2 signature(s)" in out
        yield Setup(root, keys, pins, homes, directory)


def test_keygen_prints_distinct_secretariat_keys(setup: Setup) -> None:
    raw = [decode_public("secretariat", pin) for pin in setup.pins]
    assert len(set(raw)) == 3
    config = load_config(setup.homes["FR:MJ"])
    assert config.secretariat_keys == raw
    assert config.threshold == 2


def test_verify_with_threshold_two_passes(setup: Setup) -> None:
    pins = [arg for pin in setup.pins for arg in ("--secretariat", pin)]
    status, out, err = run("directory", "verify", "--file", str(setup.directory), *pins,
                           "--threshold", "2")
    assert (status, err) == (0, "")
    assert out.startswith("valid: federation cli-test, serial 1, 2 records")
    # The node's own pins and threshold say the same; so does the library a node runs.
    status, _, err = run("directory", "verify", "--file", str(setup.directory),
                         "--home", str(setup.homes["BR:MJSP"]))
    assert (status, err) == (0, "")
    directory = verify_directory(setup.directory.read_bytes(),
                                 [decode_public("secretariat", p) for p in setup.pins], 2)
    assert sorted(directory.records) == ["BR:MJSP", "FR:MJ"]


def test_verify_with_threshold_three_fails(setup: Setup) -> None:
    pins = [arg for pin in setup.pins for arg in ("--secretariat", pin)]
    status, out, err = run("directory", "verify", "--file", str(setup.directory), *pins,
                           "--threshold", "3")
    assert (status, out) == (1, "")
    one_error_line(err, "directory.threshold_not_met")


def test_keys_rotate_writes_a_record_with_two_prekeys(setup: Setup) -> None:
    home = setup.homes["BR:MJSP"]
    record_path = home / "authority-record.json"
    before = SignedRecord.from_json(json.loads(record_path.read_bytes()))
    assert len(before.record.prekeys) == 1

    status, out, err = run("keys", "rotate", "--home", str(home))
    assert (status, err) == (0, "")
    assert "2 private prekeys held, 2 published" in out

    after = SignedRecord.from_json(json.loads(record_path.read_bytes()))
    after.verify()  # signed by the node's own identity key
    assert after.record.identity_key == before.record.identity_key
    assert len(after.record.prekeys) == 2
    assert before.record.prekeys[0] in after.record.prekeys
    assert len({p.prekey.id for p in after.record.prekeys}) == 2


def test_wrong_passphrase_is_one_error_line(setup: Setup,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    home = setup.homes["FR:MJ"]
    record = (home / "authority-record.json").read_bytes()
    keystore = (home / "keystore.json").read_bytes()
    monkeypatch.setenv("ROGATORY_PASSPHRASE", "not the passphrase")
    status, out, err = run("keys", "rotate", "--home", str(home))
    assert (status, out) == (1, "")
    one_error_line(err, "keystore.passphrase_wrong")
    assert (home / "authority-record.json").read_bytes() == record
    assert (home / "keystore.json").read_bytes() == keystore


def test_init_into_an_existing_home_is_refused(setup: Setup) -> None:
    home = setup.homes["FR:MJ"]
    files = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    status, out, err = run("init", "--home", str(home), "--authority", "KE:ODPP",
                           "--name", "Someone else", "--peer-port", str(free_port()))
    assert (status, out) == (1, "")
    one_error_line(err, "config.invalid")
    assert {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()} == files


def test_users_are_added_listed_unlocked_and_given_new_passwords(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    from node.store import Store

    home = str(setup.homes["FR:MJ"])
    monkeypatch.setenv("ROGATORY_USER_PASSWORD", "a password of the head of unit")
    status, out, _ = run("user", "add", "m.dupont", "--role", "head-of-unit",
                         "--display-name", "Marie Dupont", "--home", home)
    assert status == 0 and "added m.dupont (Marie Dupont), head-of-unit" in out
    status, _, err = run("user", "add", "m.dupont", "--role", "auditor", "--home", home)
    assert status == 1
    one_error_line(err, "config.invalid")
    monkeypatch.setenv("ROGATORY_USER_PASSWORD", "short")
    status, _, err = run("user", "add", "p.court", "--role", "auditor", "--home", home)
    assert status == 1
    one_error_line(err, "config.invalid")

    database = load_config(setup.homes["FR:MJ"]).database_path
    store = Store(database)
    try:
        with store.transaction():
            for _ in range(5):
                store.users.record_attempt("m.dupont", False, now=2_000_000_000)
        assert store.users.account("m.dupont").locked_until > 2_000_000_000
    finally:
        store.close()
    status, out, _ = run("user", "list", "--home", home)
    assert status == 0 and "m.dupont" in out and "head-of-unit" in out and "locked until" in out
    status, out, _ = run("user", "unlock", "m.dupont", "--home", home)
    assert status == 0
    status, out, _ = run("user", "list", "--home", home)
    assert "locked until" not in out

    monkeypatch.setenv("ROGATORY_USER_PASSWORD", "the second password of Marie")
    assert run("user", "password", "m.dupont", "--home", home)[0] == 0
    store = Store(database)
    try:
        stored = store.users.password_hash("m.dupont")
        assert store.users.verify_password(stored, "the second password of Marie")
        assert not store.users.verify_password(stored, "a password of the head of unit")
    finally:
        store.close()
