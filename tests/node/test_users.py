"""The web interface's accounts on a real store: names, passwords, lockout and sessions.

Every test runs against a real SQLite file (``node.store.Store``) and reads that file's bytes
where secrecy is the point: no password and no session token may be found in it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import nacl.pwhash
import pytest

from node.store import Store
from node.users import MAX_PASSWORD, MIN_PASSWORD, Role, Session, UserBook
from protocol.errors import ConfigError, RogatoryError, WebForbidden

NOW = 1_750_000_000
PASSWORD = "correct horse battery staple"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "node.db")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def book(store: Store) -> UserBook:
    """The store's own users table, with the cheapest Argon2id limits so tests stay quick."""
    return UserBook(store.db, max_failures=3, lockout=600, idle=300, lifetime=3600,
                    opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN,
                    memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN)


def db_bytes(store: Store) -> bytes:
    """Everything SQLite has written: the main file and the write-ahead log."""
    store.db.execute("PRAGMA wal_checkpoint(FULL)")
    path = Path(store.db.execute("PRAGMA database_list").fetchone()[2])
    found = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return found + (wal.read_bytes() if wal.exists() else b"")


def add(store: Store, book: UserBook, name: str = "alice", role: Role = Role.CASEWORKER,
        password: str = PASSWORD) -> None:
    with store.transaction():
        book.add(name, role, password, now=NOW)


def attempt(store: Store, book: UserBook, name: str, password: str, now: int) -> tuple[str, str]:
    good = book.verify_password(book.password_hash(name), password)
    with store.transaction():
        return book.record_attempt(name, good, now)


def code_of(error: pytest.ExceptionInfo[RogatoryError]) -> str:
    return error.value.code


# --- accounts --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "alice", "a.b-c_d", "0day", "x" * 64])
def test_valid_names_are_accepted(store: Store, book: UserBook, name: str) -> None:
    add(store, book, name)
    account = book.account(name)
    assert (account.name, account.role, account.display_name) == (name, Role.CASEWORKER, name)
    assert (account.failures, account.locked_until) == (0, 0)


@pytest.mark.parametrize("name", ["", "Alice", "-alice", ".alice", "_a", "al ice", "al:ice",
                                  "x" * 65, "alicé", "a/b", "a\nb", "user:alice"])
def test_invalid_names_are_refused(store: Store, book: UserBook, name: str) -> None:
    with pytest.raises(ConfigError) as caught, store.transaction():
        book.add(name, Role.CASEWORKER, PASSWORD, now=NOW)
    assert code_of(caught) == "config.invalid"
    assert book.accounts() == []


def test_a_duplicate_name_is_refused_and_the_first_account_kept(store: Store,
                                                               book: UserBook) -> None:
    add(store, book, "alice", Role.AUDITOR)
    with pytest.raises(ConfigError) as caught, store.transaction():
        book.add("alice", Role.HEAD_OF_UNIT, "another password entirely", now=NOW)
    assert "exists" in caught.value.message
    assert [(a.name, a.role) for a in book.accounts()] == [("alice", Role.AUDITOR)]
    assert book.verify_password(book.password_hash("alice"), PASSWORD)


@pytest.mark.parametrize("length", [0, 1, MIN_PASSWORD - 1, MAX_PASSWORD + 1])
def test_password_length_is_enforced(store: Store, book: UserBook, length: int) -> None:
    with pytest.raises(ConfigError), store.transaction():
        book.add("alice", Role.CASEWORKER, "p" * length, now=NOW)
    assert book.accounts() == []


@pytest.mark.parametrize("length", [MIN_PASSWORD, MAX_PASSWORD])
def test_password_length_bounds_are_inclusive(store: Store, book: UserBook, length: int) -> None:
    add(store, book, password="p" * length)
    assert book.verify_password(book.password_hash("alice"), "p" * length)


def test_password_is_stored_only_as_an_argon2id_hash(store: Store, book: UserBook) -> None:
    secret = "Zebra-Quartz-Lantern-7741"
    add(store, book, password=secret)
    (stored,) = store.db.execute("SELECT password_hash FROM users WHERE name = 'alice'").fetchone()
    assert bytes(stored).startswith(b"$argon2id$")
    raw = db_bytes(store)
    assert secret.encode() not in raw
    assert secret.encode("utf-16-le") not in raw
    assert b"$argon2id$" in raw


def test_verify_password(store: Store, book: UserBook) -> None:
    add(store, book)
    stored = book.password_hash("alice")
    assert book.verify_password(stored, PASSWORD)
    assert not book.verify_password(stored, PASSWORD + " ")
    assert not book.verify_password(stored, PASSWORD.upper())
    assert not book.verify_password(stored, "")
    assert not book.verify_password(b"not a hash at all", PASSWORD)


def test_an_unknown_name_gets_a_decoy_hash_that_matches_nothing(store: Store,
                                                               book: UserBook) -> None:
    decoy = book.password_hash("nobody")
    assert decoy.startswith(b"$argon2id$")
    assert decoy == book.password_hash("someone-else")  # one decoy, made once
    assert not book.verify_password(decoy, PASSWORD)


# --- sign-in attempts and lockout -------------------------------------------------------------


def test_failures_count_then_lock_even_the_right_password(store: Store, book: UserBook) -> None:
    add(store, book)
    assert attempt(store, book, "alice", "wrong password 1", NOW) == ("alice", "failure")
    assert book.account("alice").failures == 1
    assert attempt(store, book, "alice", "wrong password 2", NOW + 1) == ("alice", "failure")
    assert book.account("alice").failures == 2
    # The third wrong password in a row (max_failures=3) locks the account.
    assert attempt(store, book, "alice", "wrong password 3", NOW + 2) == ("alice", "locked")
    assert book.account("alice").locked_until == NOW + 2 + 600
    # Locked: the right password does not open it, and nothing resets the lock.
    assert attempt(store, book, "alice", PASSWORD, NOW + 3) == ("alice", "locked")
    assert attempt(store, book, "alice", PASSWORD, NOW + 2 + 599) == ("alice", "locked")
    assert book.account("alice").locked_until == NOW + 2 + 600
    with pytest.raises(RogatoryError) as caught:
        book.refuse("locked")
    assert code_of(caught) == "web.locked_out"
    # Once the lock has expired, the right password works again and clears the count.
    assert attempt(store, book, "alice", PASSWORD, NOW + 2 + 600) == ("alice", "success")
    account = book.account("alice")
    assert (account.failures, account.locked_until) == (0, 0)


def test_a_success_resets_the_failure_count(store: Store, book: UserBook) -> None:
    add(store, book)
    attempt(store, book, "alice", "wrong password 1", NOW)
    attempt(store, book, "alice", "wrong password 2", NOW)
    assert attempt(store, book, "alice", PASSWORD, NOW) == ("alice", "success")
    assert book.account("alice").failures == 0
    # Two more failures do not lock: the count started over.
    attempt(store, book, "alice", "wrong password 3", NOW)
    assert attempt(store, book, "alice", "wrong password 4", NOW) == ("alice", "failure")
    assert book.account("alice").locked_until == 0


def test_a_lock_applies_to_one_account_only(store: Store, book: UserBook) -> None:
    add(store, book, "alice")
    add(store, book, "bob")
    for i in range(3):
        attempt(store, book, "alice", f"wrong password {i}", NOW)
    assert attempt(store, book, "bob", PASSWORD, NOW) == ("bob", "success")
    assert attempt(store, book, "alice", PASSWORD, NOW) == ("alice", "locked")


def test_unknown_names_are_failures_without_a_name(store: Store, book: UserBook) -> None:
    add(store, book)
    for _ in range(5):
        assert attempt(store, book, "mallory", PASSWORD, NOW) == ("", "failure")
    with pytest.raises(RogatoryError) as caught:
        book.refuse("failure")
    assert code_of(caught) == "web.login_failed"
    book.refuse("success")  # does not raise


def test_unlock_and_set_password(store: Store, book: UserBook) -> None:
    add(store, book)
    for i in range(3):
        attempt(store, book, "alice", f"wrong password {i}", NOW)
    with store.transaction():
        book.unlock("alice")
    assert attempt(store, book, "alice", PASSWORD, NOW + 1) == ("alice", "success")
    with store.transaction():
        book.set_password("alice", "a brand new password")
    assert attempt(store, book, "alice", PASSWORD, NOW + 2) == ("alice", "failure")
    assert attempt(store, book, "alice", "a brand new password", NOW + 3) == ("alice", "success")
    with pytest.raises(ConfigError), store.transaction():
        book.set_password("alice", "short")
    with pytest.raises(ConfigError), store.transaction():
        book.set_password("nobody", "long enough password")


# --- sessions ---------------------------------------------------------------------------------


def open_session(store: Store, book: UserBook, name: str = "alice", now: int = NOW) -> str:
    with store.transaction():
        return book.open_session(name, now)


def session_at(store: Store, book: UserBook, token: str, now: int) -> Session | None:
    with store.transaction():
        return book.session(token, now)


def live_at(store: Store, book: UserBook, token: str, now: int) -> Session:
    session = session_at(store, book, token, now)
    assert session is not None
    return session


def test_a_session_token_is_stored_only_hashed(store: Store, book: UserBook) -> None:
    add(store, book)
    token = open_session(store, book)
    assert len(token) >= 43  # 256 bits, URL-safe base64
    rows = store.db.execute("SELECT token_hash FROM web_sessions").fetchall()
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(),)]
    raw = db_bytes(store)
    assert token.encode() not in raw
    assert hashlib.sha256(token.encode()).hexdigest().encode() in raw


def test_a_session_knows_its_user_and_has_its_own_csrf_token(store: Store,
                                                            book: UserBook) -> None:
    with store.transaction():
        book.add("alice", Role.HEAD_OF_UNIT, PASSWORD, display_name="Alice A.", now=NOW)
    first, second = open_session(store, book), open_session(store, book)
    assert first != second
    one = book.session(first, NOW + 1)
    two = book.session(second, NOW + 1)
    assert one is not None and two is not None
    assert (one.user, one.role, one.display_name) == ("alice", Role.HEAD_OF_UNIT, "Alice A.")
    assert one.csrf and two.csrf and one.csrf != two.csrf
    assert one.csrf != first


@pytest.mark.parametrize("token", ["", "x", "é" * 10, "a" * 101])
def test_a_bad_token_is_not_a_session(store: Store, book: UserBook, token: str) -> None:
    add(store, book)
    open_session(store, book)
    assert session_at(store, book, token, NOW) is None


def test_a_session_expires_when_idle(store: Store, book: UserBook) -> None:
    add(store, book)
    token = open_session(store, book)
    # Each use keeps it alive for another idle period (300 s).
    for step in (200, 400, 600, 800):
        session = live_at(store, book, token, NOW + step)
        assert session.expires == NOW + step + 300
    assert session_at(store, book, token, NOW + 800 + 301) is None
    assert session_at(store, book, token, NOW + 800 + 5000) is None


def test_an_expired_session_is_deleted_when_found(store: Store, book: UserBook) -> None:
    add(store, book)
    token = open_session(store, book)
    assert session_at(store, book, token, NOW + 301) is None
    assert store.db.execute("SELECT count(*) FROM web_sessions").fetchone()[0] == 0


def test_a_session_ends_after_its_lifetime_however_busy(store: Store, book: UserBook) -> None:
    add(store, book)
    token = open_session(store, book)
    at = NOW
    while at + 250 < NOW + 3600:
        at += 250
        session = live_at(store, book, token, at)
        assert session.expires <= NOW + 3600
    assert session_at(store, book, token, NOW + 3601) is None


def test_close_session(store: Store, book: UserBook) -> None:
    add(store, book)
    token, other = open_session(store, book), open_session(store, book)
    with store.transaction():
        book.close_session(token)
    assert session_at(store, book, token, NOW) is None
    live_at(store, book, other, NOW)  # the other session is untouched


def test_set_password_closes_every_session_of_that_user(store: Store, book: UserBook) -> None:
    add(store, book, "alice")
    add(store, book, "bob")
    tokens = [open_session(store, book, "alice") for _ in range(2)]
    bobs = open_session(store, book, "bob")
    with store.transaction():
        book.set_password("alice", "another long password")
    for token in tokens:
        assert session_at(store, book, token, NOW) is None
    live_at(store, book, bobs, NOW)


def test_stale_sessions_are_swept_when_a_new_one_opens(store: Store, book: UserBook) -> None:
    add(store, book)
    open_session(store, book, now=NOW)
    open_session(store, book, now=NOW + 1000)  # the first one has been idle 1000 s > 300 s
    assert store.db.execute("SELECT count(*) FROM web_sessions").fetchone()[0] == 1


def test_require_raises_web_forbidden_for_other_roles(store: Store, book: UserBook) -> None:
    add(store, book, "audrey", Role.AUDITOR)
    session = book.session(open_session(store, book, "audrey"), NOW)
    assert session is not None
    session.require(Role.AUDITOR)
    session.require(Role.HEAD_OF_UNIT, Role.AUDITOR)
    with pytest.raises(WebForbidden) as caught:
        session.require(Role.CASEWORKER, Role.HEAD_OF_UNIT)
    assert caught.value.code == "web.forbidden"
    assert "auditor" in caught.value.message
