"""The one exception tree of Rogatory, with stable machine-readable codes.

Every failure a user, a peer or an operator can meet is one of these classes. The ``code`` is
part of the wire protocol (it travels in signed rejection receipts) and of the CLI's output, so
codes never change meaning once published; new failures get new codes. The class docstring is
the sentence shown to people; ``hint`` says what to do about it.

    RogatoryError
    ├── EncodingError            encoding.*   bytes that are not the canonical encoding
    ├── EnvelopeError            envelope.*   an envelope refused by the receiver's checks
    ├── ReceiptError             receipt.*    a receipt that does not prove what it should
    ├── KeyMaterialError         key.*, keystore.*, prekey.*
    ├── DirectoryError           directory.*  the signed authority directory
    ├── LogError                 log.*        the audit log, checkpoints and proofs
    ├── PackageError             package.*    request packages and their completeness
    ├── CaseError                case.*       the lifecycle of a case
    ├── AttachmentError          attachment.* evidence files streamed beside an envelope
    ├── TransportError           transport.*  HTTP between nodes
    ├── StoreError               store.*      the node's database
    ├── ConfigError              config.*     the node's TOML configuration
    ├── ApiError                 api.*        the local API for the authority's own tools
    └── WebError                 web.*        the web interface for the authority's own users

Lower-layer exceptions (``nacl``, ``cryptography``, ``json``, ``sqlite3``) are translated at the
boundary with ``raise SomeError(...) from exc`` so callers only ever handle this tree.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ERRORS_BY_CODE",
    "ApiError",
    "ApiIdempotencyKeyReused",
    "AttachmentCorrupt",
    "AttachmentError",
    "AttachmentExists",
    "AttachmentIncomplete",
    "AttachmentMalformed",
    "AttachmentMismatch",
    "AttachmentNameUnsafe",
    "AttachmentTruncated",
    "CaseConditionsAnswered",
    "CaseContentWithheld",
    "CaseError",
    "CaseMessageMalformed",
    "CaseOverdue",
    "ConfigError",
    "DirectoryError",
    "EncodingError",
    "EnvelopeError",
    "KeyMaterialError",
    "LogError",
    "PackageError",
    "ReceiptError",
    "RogatoryError",
    "StoreError",
    "TransportError",
    "WebCsrfInvalid",
    "WebError",
    "WebForbidden",
    "WebLockedOut",
    "WebLoginFailed",
    "WebLoginRequired",
    "error_for_code",
]


class RogatoryError(Exception):
    """Rogatory failed."""

    code: ClassVar[str] = "rogatory.error"
    hint: ClassVar[str] = ""

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(detail)

    @property
    def message(self) -> str:
        summary = (type(self).__doc__ or "").strip().splitlines()[0]
        return f"{summary} ({self.detail})" if self.detail else summary

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        return f"{text}. {self.hint}" if self.hint else text


class EncodingError(RogatoryError):
    """The bytes are not a valid encoding."""

    code = "encoding.malformed"


class NonCanonicalEncoding(EncodingError):
    """The bytes decode, but are not the one canonical encoding of their value."""

    code = "encoding.non_canonical"
    hint = "Encoders must emit canonical JSON (sorted keys, no whitespace, integers only)."


# --- envelopes -------------------------------------------------------------------------------


class EnvelopeError(RogatoryError):
    """The envelope was refused."""

    code = "envelope.refused"


class EnvelopeMalformed(EnvelopeError):
    """The envelope could not be parsed."""

    code = "envelope.malformed"


class EnvelopeVersionUnsupported(EnvelopeError):
    """The envelope uses a protocol version this node does not speak."""

    code = "envelope.version_unsupported"


class EnvelopeKindUnknown(EnvelopeError):
    """The envelope's message kind is not one this protocol version defines."""

    code = "envelope.kind_unknown"


class EnvelopeSuiteUnsupported(EnvelopeError):
    """The envelope names an HPKE suite this protocol version does not define."""

    code = "envelope.suite_unsupported"


class EnvelopeSignatureInvalid(EnvelopeError):
    """The envelope's outer signature does not verify against the sender's directory key."""

    code = "envelope.signature_invalid"
    hint = "The header or ciphertext was altered in transit, or the sender key is wrong."


class EnvelopeUnknownSender(EnvelopeError):
    """The sender is not an authority in the adopted directory, or the key id is not theirs."""

    code = "envelope.unknown_sender"
    hint = "Adopt a directory that lists the sender, or refuse the traffic."


class EnvelopeKeyRevoked(EnvelopeError):
    """The sender's signing key was revoked at the time of use."""

    code = "envelope.key_revoked"


class EnvelopeReflected(EnvelopeError):
    """The envelope claims to come from this very node: a reflection of its own traffic."""

    code = "envelope.reflected"


class EnvelopeWrongRecipient(EnvelopeError):
    """The envelope is addressed to another authority."""

    code = "envelope.wrong_recipient"


class EnvelopePrekeyUnknown(EnvelopeError):
    """The envelope is sealed to a prekey this node does not hold (never had it, or destroyed)."""

    code = "envelope.prekey_unknown"
    hint = "The sender should fetch the current directory and seal to a current prekey."


class EnvelopePrekeyExpired(EnvelopeError):
    """The envelope is sealed to a prekey outside its validity window."""

    code = "envelope.prekey_expired"


class EnvelopeSuiteDowngrade(EnvelopeError):
    """The envelope uses a weaker suite than the recipient's prekey demands."""

    code = "envelope.suite_downgrade"


class EnvelopeReplayed(EnvelopeError):
    """A different envelope with this sender and message id was already accepted."""

    code = "envelope.replayed"


class EnvelopeExpired(EnvelopeError):
    """The envelope expired before it arrived."""

    code = "envelope.expired"


class EnvelopeClockSkew(EnvelopeError):
    """The envelope was created further in the future than the allowed clock skew."""

    code = "envelope.clock_skew"
    hint = "Check the clocks of both nodes (NTP)."


class EnvelopeLifetimeInvalid(EnvelopeError):
    """The envelope's validity window is empty or longer than the protocol allows."""

    code = "envelope.lifetime_invalid"


class EnvelopeDecryptFailed(EnvelopeError):
    """The ciphertext did not decrypt under the named prekey."""

    code = "envelope.decrypt_failed"


class EnvelopeHeaderMismatch(EnvelopeError):
    """The header sealed inside the envelope differs from the outer header (splicing)."""

    code = "envelope.header_mismatch"


class EnvelopeForwarded(EnvelopeError):
    """The sealed package was signed for another recipient and forwarded here."""

    code = "envelope.forwarded"


class EnvelopeInnerSignatureInvalid(EnvelopeError):
    """The sender's signature over the header and payload, inside the encryption, is invalid."""

    code = "envelope.inner_signature_invalid"


# --- receipts --------------------------------------------------------------------------------


class ReceiptError(RogatoryError):
    """The receipt does not prove delivery."""

    code = "receipt.invalid"


class ReceiptMalformed(ReceiptError):
    """The receipt could not be parsed."""

    code = "receipt.malformed"


class ReceiptSignatureInvalid(ReceiptError):
    """The receipt's signature does not verify against the receiver's directory key."""

    code = "receipt.signature_invalid"


class ReceiptMismatch(ReceiptError):
    """The receipt names a different envelope, sender or receiver than the one delivered."""

    code = "receipt.mismatch"


# --- keys --------------------------------------------------------------------------------------


class KeyMaterialError(RogatoryError):
    """A key is unusable."""

    code = "key.invalid"


class KeyMalformed(KeyMaterialError):
    """A key string or key bytes are not well formed."""

    code = "key.malformed"


class KeystoreMissing(KeyMaterialError):
    """No key store was found."""

    code = "keystore.missing"
    hint = "Run `rogatory init` first, or point --home at the node's folder."


class KeystorePassphraseWrong(KeyMaterialError):
    """The key store passphrase is wrong (or the key store file was altered)."""

    code = "keystore.passphrase_wrong"
    hint = "Check ROGATORY_PASSPHRASE; the store cannot be opened without the right one."


class KeystoreCorrupt(KeyMaterialError):
    """The key store file is damaged or of an unknown format."""

    code = "keystore.corrupt"


class KeystoreExists(KeyMaterialError):
    """A key store already exists at this path; it was not overwritten."""

    code = "keystore.exists"
    hint = "Overwriting would destroy the node's keys; move the old key store away first."


class KeystorePassphraseMissing(KeyMaterialError):
    """No passphrase for the key store was given."""

    code = "keystore.passphrase_missing"
    hint = "Set ROGATORY_PASSPHRASE or run from a terminal to be prompted."


class PrekeySignatureInvalid(KeyMaterialError):
    """A prekey is not signed by the identity key it claims."""

    code = "prekey.signature_invalid"


# --- directory ------------------------------------------------------------------------------


class DirectoryError(RogatoryError):
    """The authority directory was refused."""

    code = "directory.invalid"


class DirectoryMalformed(DirectoryError):
    """The directory or one of its records could not be parsed."""

    code = "directory.malformed"


class DirectoryRecordSignatureInvalid(DirectoryError):
    """An authority record is not signed by that authority's identity key."""

    code = "directory.record_signature_invalid"


class DirectoryThresholdNotMet(DirectoryError):
    """The directory does not carry enough valid secretariat signatures."""

    code = "directory.threshold_not_met"
    hint = "A directory must be signed by at least M of the N pinned secretariat keys."


class DirectoryRollback(DirectoryError):
    """The directory's serial is lower than one this node has already adopted."""

    code = "directory.rollback"


class DirectoryEquivocation(DirectoryError):
    """Two different directories carry the same serial."""

    code = "directory.equivocation"


class DirectoryUnknownAuthority(DirectoryError):
    """No authority with this id is in the directory."""

    code = "directory.unknown_authority"


class DirectoryKeyUnknown(DirectoryError):
    """The key id is neither the authority's identity key nor one of its revoked keys."""

    code = "directory.key_unknown"


class DirectoryNoPrekey(DirectoryError):
    """The authority publishes no prekey valid now, so nothing can be sealed to it."""

    code = "directory.no_current_prekey"
    hint = "Fetch a newer directory; the authority must rotate its prekeys and republish."


class DirectoryAuthorityIdInvalid(DirectoryError):
    """An authority id must be `CC:NAME`: ISO 3166 alpha-2 country, colon, A-Z 0-9 - _ name."""

    code = "directory.authority_id_invalid"


# --- node ---------------------------------------------------------------------------------


class TransportError(RogatoryError):
    """The peer could not be reached or answered badly."""

    code = "transport.failed"


class TransportBodyTooLarge(TransportError):
    """The request body is larger than this node accepts."""

    code = "transport.body_too_large"


class TransportBodyTooSlow(TransportError):
    """The request body did not arrive within the time this node allows."""

    code = "transport.body_too_slow"
    hint = "A slow sender may retry; a deliberately slow one (slowloris) is cut off."


class TransportUnreachable(TransportError):
    """The peer's endpoint did not answer."""

    code = "transport.unreachable"


class TransportBadResponse(TransportError):
    """The peer answered with something that is not a receipt."""

    code = "transport.bad_response"


class TransportBatchUnsupported(TransportError):
    """The peer does not take batches of envelopes; they go one by one."""

    code = "transport.batch_unsupported"


class TransportPinMismatch(TransportError):
    """The peer's TLS certificate does not match the fingerprint pinned in the directory."""

    code = "transport.tls_pin_mismatch"


class LogError(RogatoryError):
    """The audit log, a checkpoint or a proof does not show what it should."""

    code = "log.invalid"


class LogInvalid(LogError):
    """An audit bundle or log does not verify."""

    code = "log.verify_failed"


class LogMalformed(LogError):
    """A checkpoint, signed note, proof or log entry could not be parsed."""

    code = "log.malformed"


class LogProofInvalid(LogError):
    """An inclusion or consistency proof does not verify against the checkpoint."""

    code = "log.proof_invalid"
    hint = "The log may have been altered; keep the evidence and raise it with the node's operator."


class LogSignatureInvalid(LogError):
    """A checkpoint or cosignature carries no valid signature by the expected key."""

    code = "log.signature_invalid"


class LogRollback(LogError):
    """A checkpoint is smaller than one already seen from the same log."""

    code = "log.rollback"
    hint = "A log never shrinks; this node showed an older or different history."


class LogFork(LogError):
    """Two checkpoints of one log cannot both be true: the log was forked or rewritten."""

    code = "log.fork"
    hint = "Keep both checkpoints: together they prove the log's operator rewrote its history."


class LogAlarm(LogError):
    """The witness has raised alarms about a peer's log."""

    code = "log.alarm"
    hint = "Each alarm keeps its evidence; raise it with the peer and the secretariat."


class LogEntryMismatch(LogError):
    """A log entry does not match the message, receipt or leaf it should record."""

    code = "log.entry_mismatch"


class PackageError(RogatoryError):
    """A request package does not meet its schema."""

    code = "package.invalid"


class PackageMalformed(PackageError):
    """A request package could not be parsed, or a field has the wrong type."""

    code = "package.malformed"


class PackageSchemaUnknown(PackageError):
    """A request package names a form of cooperation or schema version this node does not know."""

    code = "package.schema_unknown"


class PackageIncomplete(PackageError):
    """A request package lacks fields that are essential for its form of cooperation."""

    code = "package.incomplete"
    hint = "Run `rogatory request check FILE` for the list; override only with a recorded reason."


class PackageLanguageNotAccepted(PackageError):
    """The request's language is not one the requested authority accepts."""

    code = "package.language_not_accepted"
    hint = "Check the languages in the recipient's directory record; attach a translation."


class CaseError(RogatoryError):
    """The case cannot do that."""

    code = "case.invalid"


class CaseTransitionInvalid(CaseError):
    """This message is not allowed in the case's current state."""

    code = "case.transition_invalid"


class CaseMessageMalformed(CaseError):
    """A message about a case does not meet the schema of its kind."""

    code = "case.message_malformed"
    hint = "See PROTOCOL.md, case messages, for the fields each kind of message carries."


class CaseContentWithheld(CaseError):
    """Spontaneous information is withheld until its conditions are accepted."""

    code = "case.content_withheld"
    hint = ("Read its conditions, then accept them with `rogatory conditions accept ID`; only "
            "the designated receiver may read the content before that.")


class CaseOverdue(CaseError):
    """Cases are overdue: the answer they wait for is later than their deadline."""

    code = "case.overdue"
    hint = "See `rogatory cases --overdue`; chase whoever owes the answer, or record why not."


class CaseConditionsAnswered(CaseError):
    """The conditions of this spontaneous information have already been answered."""

    code = "case.conditions_answered"


class AttachmentError(RogatoryError):
    """An attachment cannot be used."""

    code = "attachment.invalid"


class AttachmentMalformed(AttachmentError):
    """An attachment's manifest entry or stream header is malformed."""

    code = "attachment.malformed"


class AttachmentCorrupt(AttachmentError):
    """An attachment chunk failed authentication: modified, reordered, duplicated or misplaced."""

    code = "attachment.corrupt"


class AttachmentTruncated(AttachmentError):
    """An attachment's stream ended before its final chunk."""

    code = "attachment.truncated"


class AttachmentMismatch(AttachmentError):
    """An attachment's size or SHA-256 differs from what the signed manifest says."""

    code = "attachment.mismatch"


class AttachmentNameUnsafe(AttachmentError):
    """An attachment's file name could write outside its folder or mislead."""

    code = "attachment.name_unsafe"


class AttachmentIncomplete(AttachmentError):
    """Not every attachment has arrived yet."""

    code = "attachment.incomplete"
    hint = "The sender resumes the upload from the last byte acknowledged."


class AttachmentExists(AttachmentError):
    """A file of that name exists already and is never overwritten."""

    code = "attachment.exists"


class StoreError(RogatoryError):
    """The node's store failed."""

    code = "store.failed"


class StoreDiskFull(StoreError):
    """The node's disk has no room for this."""

    code = "store.disk_full"
    hint = "Free space on the node's disk; the sender retries."


class StoreNotFound(StoreError):
    """No such message in the store."""

    code = "store.not_found"


class ConfigError(RogatoryError):
    """The node configuration is invalid."""

    code = "config.invalid"


class ConfigMissing(ConfigError):
    """The node configuration file was not found."""

    code = "config.missing"
    hint = "Run `rogatory init` to create one."


class ApiError(RogatoryError):
    """The local API refused the call."""

    code = "api.refused"


class ApiUnauthorized(ApiError):
    """The local API needs the node's API token."""

    code = "api.unauthorized"


class ApiBadRequest(ApiError):
    """The local API call was malformed."""

    code = "api.bad_request"


class ApiIdempotencyKeyReused(ApiError):
    """An idempotency key already used for a different message was given again."""

    code = "api.idempotency_key_reused"
    hint = "Use a fresh key for each new message; repeat a key only to retry the same one."


class WebError(RogatoryError):
    """The web interface refused the request."""

    code = "web.refused"


class WebLoginRequired(WebError):
    """This page needs a signed-in user; the session is missing, expired or signed out."""

    code = "web.login_required"
    hint = "Sign in again."


class WebLoginFailed(WebError):
    """The user name or the password is wrong."""

    code = "web.login_failed"
    hint = "Check both; repeated failures lock the account for a while."


class WebLockedOut(WebError):
    """The account is locked after repeated failed sign-ins."""

    code = "web.locked_out"
    hint = "Wait until the lock ends, or ask an administrator to run `rogatory user unlock`."


class WebCsrfInvalid(WebError):
    """The form did not come from a page of this node for this session (cross-site request)."""

    code = "web.csrf_invalid"
    hint = "Reload the page and submit the form again."


class WebForbidden(WebError):
    """The signed-in user's role does not allow this."""

    code = "web.forbidden"
    hint = "Ask a user with the right role (caseworker, head of unit, auditor)."


def _all_subclasses(cls: type[RogatoryError]) -> list[type[RogatoryError]]:
    found: list[type[RogatoryError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


_ALL_ERRORS: list[type[RogatoryError]] = [RogatoryError, *_all_subclasses(RogatoryError)]
ERRORS_BY_CODE: dict[str, type[RogatoryError]] = {cls.code: cls for cls in _ALL_ERRORS}


def error_for_code(code: str, detail: str = "") -> RogatoryError:
    """Rebuild the typed error a peer reported by code, so callers can catch it by class."""
    return ERRORS_BY_CODE.get(code, RogatoryError)(detail)
