"""``rogatory request check`` and ``rogatory request template``, run in-process.

The language check reads the recipient's record from the node's own directory.json, verified
against the node's pinned secretariat keys, so a federation of two nodes (not started) is set
up once: FR:MJ accepts French and English, BR:MJSP Portuguese and Spanish.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from keys.directory import add_signature, build_directory, sign_directory, sign_record
from keys.keystore import KeyStore
from node.cli import main
from node.config import load_config
from node.federation import Federation, Member, passphrase_for
from protocol.request_package import FORMS, MEASURES, check_completeness, parse_request

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples" / "requests"
COMPLETE = str(EXAMPLES / "mla.json")
INCOMPLETE = str(EXAMPLES / "mla-incomplete.json")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def one_error_line(stderr: str, code: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: {code}: "), stderr
    return lines[0]


@pytest.fixture(autouse=True)
def no_home_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROGATORY_HOME", raising=False)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Federation:
    return Federation.create(tmp_path_factory.mktemp("request-cli"), [
        Member("FR:MJ", "Ministère de la Justice", {"languages": ["fr", "en"]}),
        Member("BR:MJSP", "Ministério da Justiça e Segurança Pública",
               {"languages": ["pt", "es"]}),
    ])


@pytest.fixture
def home(federation: Federation) -> Iterator[Path]:
    """France's node home; its directory.json is put back after each test."""
    path = federation.home("FR:MJ")
    directory = (path / "directory.json").read_bytes()
    yield path
    (path / "directory.json").write_bytes(directory)


# --- check --------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_check_passes_a_complete_request(form: str) -> None:
    status, out, err = run("request", "check", str(EXAMPLES / f"{form}.json"))
    assert (status, err) == (0, "")
    assert f": {form} request, reference " in out.splitlines()[0]
    assert out.rstrip().endswith("complete: no essential field is missing")


def test_check_lists_each_gap_with_what_is_missing_and_why() -> None:
    status, out, err = run("request", "check", INCOMPLETE)
    assert status == 1
    line = one_error_line(err, "package.incomplete")
    assert "2 essential field(s) missing: offences[0].maximum_penalty, measures[0].accounts" in (
        line)
    gaps = check_completeness(parse_request(Path(INCOMPLETE).read_bytes()))
    for gap in gaps:
        assert f"\n{gap.field}\n  {gap.message}\n  why: {gap.why}\n" in out
    assert "account numbers" in out and "maximum penalty" in out
    assert "complete:" not in out


def test_check_accepts_a_language_the_recipient_accepts(home: Path) -> None:
    status, out, err = run("request", "check", COMPLETE, "--to", "FR:MJ", "--home", str(home))
    assert (status, err) == (0, "")
    assert "language: FR:MJ accepts 'en' (fr, en)" in out


def test_check_flags_a_language_the_recipient_does_not_accept(home: Path) -> None:
    status, out, err = run("request", "check", COMPLETE, "--to", "BR:MJSP", "--home", str(home))
    assert status == 1
    line = one_error_line(err, "package.language_not_accepted")
    assert "'en'" in line and "pt, es" in line
    assert "not accepted by BR:MJSP" in out


def test_an_incomplete_request_in_the_wrong_language_gets_one_error_naming_both(
        home: Path) -> None:
    status, out, err = run("request", "check", INCOMPLETE, "--to", "BR:MJSP",
                           "--home", str(home))
    assert status == 1
    line = one_error_line(err, "package.incomplete")
    assert "language is not accepted by BR:MJSP" in line
    assert "measures[0].accounts" in out


def test_check_refuses_an_unknown_recipient(home: Path) -> None:
    status, _, err = run("request", "check", COMPLETE, "--to", "KE:ODPP", "--home", str(home))
    assert status == 1
    one_error_line(err, "directory.unknown_authority")


def test_check_reads_the_recipient_only_from_a_directory_the_pinned_keys_sign(
        home: Path, federation: Federation) -> None:
    # BR:MJSP's record, re-signed by BR:MJSP itself, now accepts English too.
    br = federation.home("BR:MJSP")
    identity = KeyStore.open(load_config(br).keystore_path, passphrase_for("BR:MJSP")).identity
    record = replace(federation.records["BR:MJSP"].record, languages=("pt", "es", "en"))
    records = {**federation.records, "BR:MJSP": sign_record(record, identity)}
    body = build_directory("rogatory-demo", 99, 0, records.values())
    # Signed by one secretariat key of the two the node requires: not believed.
    one = sign_directory(body, federation.secretariat[0])
    (home / "directory.json").write_bytes(one)
    status, _, err = run("request", "check", COMPLETE, "--to", "BR:MJSP", "--home", str(home))
    assert status == 1
    one_error_line(err, "directory.threshold_not_met")
    # With the second signature the directory is valid, and its record is what is checked.
    (home / "directory.json").write_bytes(add_signature(one, federation.secretariat[1]))
    status, out, err = run("request", "check", COMPLETE, "--to", "BR:MJSP", "--home", str(home))
    assert (status, err) == (0, "")
    assert "language: BR:MJSP accepts 'en' (pt, es, en)" in out


def test_check_without_a_directory_is_one_error_line(tmp_path: Path, home: Path) -> None:
    other = tmp_path / "node"
    shutil.copytree(home, other)
    (other / "directory.json").unlink()
    status, _, err = run("request", "check", COMPLETE, "--to", "BR:MJSP", "--home", str(other))
    assert status == 1
    one_error_line(err, "config.invalid")


@pytest.mark.parametrize(("content", "code"), [
    (b"{not json", "package.malformed"),
    (b'{"v":1,"form":"mla","language":7}', "package.malformed"),
    (b'{"v":1,"form":"letters-rogatory"}', "package.schema_unknown"),
    (b'{"v":2,"form":"mla"}', "package.schema_unknown"),
])
def test_check_of_a_bad_file_is_one_error_line(tmp_path: Path, content: bytes,
                                               code: str) -> None:
    path = tmp_path / "request.json"
    path.write_bytes(content)
    status, out, err = run("request", "check", str(path))
    assert (status, out) == (1, "")
    one_error_line(err, code)


def test_check_of_a_missing_file_is_one_error_line(tmp_path: Path) -> None:
    status, _, err = run("request", "check", str(tmp_path / "nothing.json"))
    assert status == 1
    one_error_line(err, "config.invalid")


# --- template -----------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_template_prints_a_skeleton_that_check_then_walks_through(form: str,
                                                                  tmp_path: Path) -> None:
    status, out, err = run("request", "template", form)
    assert (status, err) == (0, "")
    skeleton = json.loads(out)
    assert skeleton["v"] == 1 and skeleton["form"] == form
    path = tmp_path / "draft.json"
    path.write_text(out, "utf-8")
    status, checked, err = run("request", "check", str(path))
    assert status == 1
    one_error_line(err, "package.incomplete")
    assert "\nlanguage\n  missing: " in checked


def test_template_with_measures_has_their_fields() -> None:
    status, out, err = run("request", "template", "mla", "--measure", "documents-and-records",
                           "--measure", "videoconference")
    assert (status, err) == (0, "")
    measures = json.loads(out)["measures"]
    assert [m["type"] for m in measures] == ["documents-and-records", "videoconference"]
    assert "accounts" in measures[0] and "proposed_date" in measures[1]


@pytest.mark.parametrize("argv", [
    ("letters-rogatory",),
    ("mla", "--measure", "wiretap"),
    ("extradition", "--measure", "taking-evidence"),
])
def test_template_of_an_unknown_form_or_measure_is_one_error_line(argv: tuple[str, ...]) -> None:
    status, out, err = run("request", "template", *argv)
    assert (status, out) == (1, "")
    one_error_line(err, "package.schema_unknown")


def test_help_names_the_forms_and_measures(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["request", "template", "--help"])
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")  # wrapped at hyphens
    for name in (*FORMS, *(m.type for m in MEASURES)):
        assert name in text
