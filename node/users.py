"""The people who use the web interface: accounts, roles, passwords, lockout and sessions.

Passwords are hashed with Argon2id (libsodium's ``crypto_pwhash``, through PyNaCl) and never
stored otherwise. A name that has no account costs the same hashing work as a wrong password,
so timing does not tell which names exist. After ``max_failures`` wrong passwords in a row the
account is locked for ``lockout`` seconds; a correct password does not open it early.

A session is a random 256-bit token in a cookie; the store keeps only its SHA-256, so a copy of
the database does not let anyone sign in. Each session has its own anti-forgery token that every
form must carry. Sessions end when signed out, after ``idle`` seconds without use, and after
``lifetime`` seconds in any case.

Everything here runs on the store thread, inside the store's transactions.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass

import nacl.exceptions
import nacl.pwhash
import sqlite_utils

from node.statements import insert
from protocol.errors import (
    ConfigError,
    WebForbidden,
    WebLockedOut,
    WebLoginFailed,
)
from protocol.log_entry import USER_NAME

__all__ = ["Account", "Role", "Session", "UserBook"]

MIN_PASSWORD = 12
MAX_PASSWORD = 1024


class Role(enum.Enum):
    """What a user may do. Caseworkers handle cases; heads of unit also answer the conditions of
    spontaneous information (they are its designated receivers) and see the audit view;
    auditors see the audit view, statistics and directory, never a message's content."""

    CASEWORKER = "caseworker"
    HEAD_OF_UNIT = "head-of-unit"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Account:
    name: str
    role: Role
    display_name: str
    locked_until: int
    failures: int


@dataclass(frozen=True)
class Session:
    user: str
    role: Role
    display_name: str
    csrf: str
    expires: int

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise WebForbidden(f"{self.display_name} is {self.role.value}; this needs "
                               + " or ".join(r.value for r in roles))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


class UserBook:
    def __init__(self, db: sqlite_utils.Database, *, max_failures: int = 5, lockout: int = 900,
                 idle: int = 1800, lifetime: int = 12 * 3600,
                 opslimit: int = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                 memlimit: int = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE) -> None:
        self.db = db
        self.max_failures = max_failures
        self.lockout = lockout
        self.idle = idle
        self.lifetime = lifetime
        self._limits = (opslimit, memlimit)
        self._decoy = b""
        with db.atomic():
            db.execute("""CREATE TABLE IF NOT EXISTS users (
                name TEXT PRIMARY KEY, role TEXT NOT NULL, display_name TEXT NOT NULL,
                password_hash BLOB NOT NULL, failures INTEGER NOT NULL DEFAULT 0,
                locked_until INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL)""")
            db.execute("""CREATE TABLE IF NOT EXISTS web_sessions (
                token_hash TEXT PRIMARY KEY, user TEXT NOT NULL REFERENCES users(name),
                csrf TEXT NOT NULL, created INTEGER NOT NULL, last_seen INTEGER NOT NULL)""")

    # --- accounts ---------------------------------------------------------------------------

    def add(self, name: str, role: Role, password: str, *, display_name: str = "",
            now: int) -> Account:
        if not USER_NAME.fullmatch(name):
            raise ConfigError(f"user name {name!r}: use 1-64 of a-z, 0-9, '.', '_', '-', "
                              "starting with a letter or digit")
        self._check_password(password)
        if self._row(name) is not None:
            raise ConfigError(f"user {name} exists already")
        insert(self.db, "users", {
            "name": name, "role": role.value, "display_name": display_name or name,
            "password_hash": self._hash(password), "failures": 0, "locked_until": 0,
            "created": now})
        return self.account(name)

    def set_password(self, name: str, password: str) -> None:
        self._check_password(password)
        self.account(name)
        self.db.execute("UPDATE users SET password_hash = ?, failures = 0, locked_until = 0 "
                        "WHERE name = ?", [self._hash(password), name])
        self.db.execute("DELETE FROM web_sessions WHERE user = ?", [name])

    def unlock(self, name: str) -> None:
        self.account(name)
        self.db.execute("UPDATE users SET failures = 0, locked_until = 0 WHERE name = ?", [name])

    def account(self, name: str) -> Account:
        row = self._row(name)
        if row is None:
            raise ConfigError(f"no user {name!r}")
        return row

    def accounts(self) -> list[Account]:
        rows = self.db.execute("SELECT name FROM users ORDER BY name").fetchall()
        return [self.account(name) for (name,) in rows]

    def _row(self, name: str) -> Account | None:
        row = self.db.execute("SELECT name, role, display_name, locked_until, failures "
                              "FROM users WHERE name = ?", [name]).fetchone()
        if row is None:
            return None
        return Account(row[0], Role(row[1]), row[2], row[3], row[4])

    @staticmethod
    def _check_password(password: str) -> None:
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise ConfigError(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters")

    def _hash(self, password: str) -> bytes:
        return nacl.pwhash.argon2id.str(password.encode("utf-8"), *self._limits)

    # --- signing in -------------------------------------------------------------------------

    def password_hash(self, name: str) -> bytes:
        """What to verify a sign-in against: the account's hash, or a decoy for an unknown name.

        Verifying (``verify_password``) is slow on purpose and needs no database, so the node
        runs it off the store thread, between this call and ``record_attempt``.
        """
        row = self.db.execute("SELECT password_hash FROM users WHERE name = ?",
                              [name]).fetchone()
        if row is not None:
            return bytes(row[0])
        if not self._decoy:
            # Verified against when the name is unknown, so that costs what a wrong password does.
            self._decoy = self._hash(secrets.token_urlsafe(16))
        return self._decoy

    @staticmethod
    def verify_password(stored: bytes, password: str) -> bool:
        try:
            return bool(nacl.pwhash.verify(stored, password.encode("utf-8")[:MAX_PASSWORD * 4]))
        except nacl.exceptions.InvalidkeyError:
            return False

    def record_attempt(self, name: str, good: bool, now: int) -> tuple[str, str]:
        """Count a sign-in; returns ``(account name or "", outcome)`` for the audit log.

        A locked account stays locked whatever the password; the ``max_failures``-th wrong
        password in a row locks it.
        """
        account = self._row(name)
        if account is None:
            return "", "failure"
        if account.locked_until > now:
            return name, "locked"
        if not good:
            failures = account.failures + 1
            locked = now + self.lockout if failures >= self.max_failures else 0
            self.db.execute("UPDATE users SET failures = ?, locked_until = ? WHERE name = ?",
                            [0 if locked else failures, locked, name])
            return name, "locked" if locked else "failure"
        self.db.execute("UPDATE users SET failures = 0, locked_until = 0 WHERE name = ?", [name])
        return name, "success"

    @staticmethod
    def refuse(outcome: str) -> None:
        if outcome == "locked":
            raise WebLockedOut("too many failed sign-ins; the account is locked for a while")
        if outcome != "success":
            raise WebLoginFailed("wrong user name or password")

    def open_session(self, name: str, now: int) -> str:
        token = secrets.token_urlsafe(32)
        self.db.execute("DELETE FROM web_sessions WHERE last_seen < ? OR created < ?",
                        [now - self.idle, now - self.lifetime])
        insert(self.db, "web_sessions", {"token_hash": _digest(token), "user": name,
                                         "csrf": secrets.token_urlsafe(32), "created": now,
                                         "last_seen": now})
        return token

    def session(self, token: str, now: int) -> Session | None:
        """The live session of this cookie value (using it keeps it alive), else ``None``.

        An expired session is deleted here and reported as ``None`` rather than raised, so the
        caller's transaction commits the delete.
        """
        if not token or len(token) > 100 or not token.isascii():
            return None
        row = self.db.execute(
            "SELECT s.user, u.role, u.display_name, s.csrf, s.created, s.last_seen "
            "FROM web_sessions s JOIN users u ON u.name = s.user WHERE s.token_hash = ?",
            [_digest(token)]).fetchone()
        if row is None:
            return None
        if row[5] < now - self.idle or row[4] < now - self.lifetime:
            self.db.execute("DELETE FROM web_sessions WHERE token_hash = ?", [_digest(token)])
            return None
        self.db.execute("UPDATE web_sessions SET last_seen = ? WHERE token_hash = ?",
                        [now, _digest(token)])
        expires = min(now + self.idle, row[4] + self.lifetime)
        return Session(row[0], Role(row[1]), row[2], row[3], expires)

    def close_session(self, token: str) -> None:
        self.db.execute("DELETE FROM web_sessions WHERE token_hash = ?", [_digest(token)])
