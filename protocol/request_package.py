"""Request packages v1: one schema per form of cooperation, and the completeness check.

A request package is the payload of a ``request`` message, content type ``CONTENT_TYPE``. It is
a JSON object with ``"v": 1``, a ``"form"`` (one of ``FORMS``) and the fields of that form's
schema below. The fields follow UNTOC art. 18(15)-(17) and the UN Model Treaty on Mutual
Assistance in Criminal Matters, art. 5; the form-specific ones follow UNTOC art. 13 and 16-18,
UNCAC art. 55 and the UN model treaties on extradition, on the transfer of proceedings and on
the transfer of foreign prisoners. Mutual legal assistance lists its *measures*, one per act of
assistance sought (UNTOC art. 18(3)(a)-(i) and the hearing by videoconference of art. 18(18)),
each with the fields that kind of act needs.

Two checks, kept apart on purpose:

- **Structure** (``parse_request``): strict. Unknown fields, wrong types, bad dates, unknown
  choices and control characters are ``package.malformed``; an unknown form, schema version or
  measure type is ``package.schema_unknown``. A field that is *absent* is read as blank (empty
  text, empty list, ``null`` flag), so a drafter may leave out what is not known yet; the
  encoder writes every field, so ``encode_request`` gives one normal form per package.
- **Completeness** (``check_completeness``): like the UNODC MLA Request Writer Tool, which
  "prompts the drafter if essential information has been omitted" (CTOC/COP/2010 §13), each
  blank essential field is a ``Gap`` naming its JSON path, what is missing and why it matters.
  A sender refuses an incomplete request unless a reason for overriding is recorded
  (``require_complete``); a receiver runs the same check and names the gaps in its
  acknowledgement.

The schema is the tables ``COMMON_FIELDS``, ``FORM_FIELDS`` and ``MEASURES``: every field with
its type, what it holds, whether it is essential (its ``why``) and when. This module is pure:
bytes and values in, values out.
"""

from __future__ import annotations

import datetime
import enum
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from protocol.encoding import canonical_json
from protocol.errors import (
    EncodingError,
    PackageIncomplete,
    PackageLanguageNotAccepted,
    PackageMalformed,
    PackageSchemaUnknown,
)
from protocol.header import is_authority_id

__all__ = [
    "COMMON_FIELDS",
    "CONTENT_TYPE",
    "FORMS",
    "FORM_FIELDS",
    "MAX_ITEMS",
    "MAX_PACKAGE_BYTES",
    "MAX_TEXT",
    "MEASURES",
    "OFFENCE_CATEGORIES",
    "PERSON_ROLES",
    "VERSION",
    "Field",
    "FieldType",
    "Gap",
    "Measure",
    "RequestPackage",
    "check_completeness",
    "check_language",
    "encode_request",
    "fields_for",
    "parse_request",
    "require_complete",
    "template",
]

CONTENT_TYPE = "application/vnd.rogatory.request.v1+json"
VERSION = 1
FORMS = (
    "mla",
    "extradition",
    "transfer-of-proceedings",
    "transfer-of-sentenced-persons",
    "confiscation",
)
MAX_PACKAGE_BYTES = 4 * 1024 * 1024
MAX_TEXT = 65_536
MAX_ITEMS = 1_000
MAX_OVERRIDE_REASON = 4_096
_GAPS_NAMED_IN_ERROR = 12

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}")
# Control characters (Unicode category Cc) but tab, newline and carriage return; and lone
# surrogates (Cs), which JSON's \u escapes can produce but UTF-8 cannot encode.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class FieldType(enum.Enum):
    """The JSON type of a field, and what counts as blank (not filled in) for it."""

    TEXT = "text"  # string; blank ""
    TEXTS = "texts"  # list of non-blank strings; blank []
    DATE = "date"  # "YYYY-MM-DD"; blank ""
    FLAG = "flag"  # true / false; blank null (not yet stated)
    CHOICE = "choice"  # one of Field.choices; blank ""
    CHOICES = "choices"  # list of distinct Field.choices; blank []
    LANGUAGE = "language"  # BCP 47 tag such as "en" or "pt-BR"; blank ""
    AUTHORITY = "authority"  # authority id "CC:NAME"; blank ""
    OBJECT = "object"  # object of Field.fields; never blank, its fields may be
    OBJECTS = "objects"  # list of such objects; blank []


Condition = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
"""(the object holding the field, the whole package) -> whether the field is essential there."""


@dataclass(frozen=True)
class Field:
    """One field of a schema.

    ``why`` makes the field essential (only while ``when`` holds, if given): it is the one
    sentence a caseworker reads when the field is blank. For an ``OBJECT``, ``when`` says
    whether its essential fields are checked at all. For ``OBJECTS`` with ``variants`` (the
    MLA measures), each element's ``type`` adds that variant's fields to ``fields``.
    """

    name: str
    type: FieldType
    label: str
    why: str = ""
    when: Condition | None = None
    choices: tuple[str, ...] = ()
    fields: tuple[Field, ...] = ()
    variants: tuple[Measure, ...] = ()

    def applies(self, holder: Mapping[str, Any], package: Mapping[str, Any]) -> bool:
        return self.when is None or self.when(holder, package)

    def essential(self, holder: Mapping[str, Any], package: Mapping[str, Any]) -> bool:
        return bool(self.why) and self.applies(holder, package)


@dataclass(frozen=True)
class Measure:
    """One kind of mutual legal assistance and the fields a request for it needs."""

    type: str
    article: str
    title: str
    fields: tuple[Field, ...]


# --- conditions --------------------------------------------------------------------------------


def _facts_needed(holder: Mapping[str, Any], package: Mapping[str, Any]) -> bool:
    """Facts and law are not needed for a request that only asks for service of documents.

    UNTOC art. 18(15)(c) and Model Treaty art. 5(1)(c) make that one exception.
    """
    if package.get("form") != "mla":
        return True
    types = {m.get("type") for m in package.get("measures", [])}
    return types != {"service-of-documents"}


def _form_is(*forms: str) -> Condition:
    return lambda holder, package: package.get("form") in forms


def _is(name: str, *values: object) -> Condition:
    return lambda holder, package: holder.get(name) in values


def _has_any(name: str, *values: str) -> Condition:
    return lambda holder, package: any(v in holder.get(name, ()) for v in values)


def _urgent_or_dated(holder: Mapping[str, Any], package: Mapping[str, Any]) -> bool:
    return holder.get("urgent") is True or bool(holder.get("deadline"))


def _top(name: str, *values: object) -> Condition:
    return lambda holder, package: package.get(name) in values


# --- the tables --------------------------------------------------------------------------------

F = FieldType

PERSON_ROLES = (
    "suspect",
    "accused",
    "person-sought",
    "sentenced-person",
    "witness",
    "expert",
    "victim",
    "account-holder",
    "owner",
    "other",
)

_UNKNOWN_OK = " (write 'unknown' if it is not known)"

_PERSON = (
    Field("name", F.TEXT, "the person's full name (or a company's registered name)",
          "UNTOC art. 18(15)(e) asks for the identity of each person concerned: the requested "
          "authority cannot find, summon or protect someone it cannot identify."),
    Field("role", F.CHOICE, "the person's role in the case", "The role (suspect, witness, "
          "victim...) decides which rights the requested State must respect when it acts, "
          "such as the right not to incriminate oneself.", choices=PERSON_ROLES),
    Field("nationality", F.TEXT, "the person's nationality" + _UNKNOWN_OK,
          "UNTOC art. 18(15)(e) asks for nationality where possible: it can bar extradition or "
          "call for consular notification."),
    Field("location", F.TEXT, "where the person is (address, town, or prison)" + _UNKNOWN_OK,
          "UNTOC art. 18(15)(e) asks for the person's location: the requested authority cannot "
          "act on a person it cannot find."),
    Field("date_of_birth", F.DATE, "the person's date of birth, if known"),
)

# Level-1 sections of the UNODC International Classification of Crime for Statistical
# Purposes (ICCS, 2015): the categories central authorities report their caseload in.
OFFENCE_CATEGORIES = (
    "01-acts-leading-to-death",
    "02-acts-causing-harm",
    "03-sexual-acts",
    "04-property-with-violence",
    "05-property-only",
    "06-controlled-drugs",
    "07-fraud-deception-corruption",
    "08-public-order-authority",
    "09-public-safety-state-security",
    "10-natural-environment",
    "11-other",
)

_OFFENCE = (
    Field("name", F.TEXT, "the offence's name", "Each offence must be named so the requested "
          "State can match the conduct to an offence under its own law (dual criminality).",
          when=_facts_needed),
    Field("category", F.CHOICE, "the offence's category in the UNODC International "
          "Classification of Crime for Statistical Purposes (level 1)",
          choices=OFFENCE_CATEGORIES),
    Field("legal_provision", F.TEXT, "the article of law that creates the offence",
          "Model Treaty on Mutual Assistance art. 5(1)(c) asks for the text or a statement of "
          "the law creating the offence, so the requested State can compare it with its own.",
          when=_facts_needed),
    Field("maximum_penalty", F.TEXT, "the maximum penalty the offence carries",
          "The maximum penalty decides whether the offence is a 'serious crime' under UNTOC "
          "art. 2(b), whether a treaty's threshold is met, and whether coercive measures are "
          "proportionate.", when=_facts_needed),
)

COMMON_FIELDS: tuple[Field, ...] = (
    Field("language", F.LANGUAGE, "the language the request is written in (e.g. en, fr, pt)",
          "UNTOC art. 18(14) requires a request in a language acceptable to the requested "
          "State; one it cannot read is sent back for translation, which costs weeks."),
    Field("requesting_authority", F.OBJECT, "the authority making the request", fields=(
        Field("authority", F.AUTHORITY, "its authority id in the directory, e.g. FR:MJ"),
        Field("name", F.TEXT, "the name of the authority making the request",
              "UNTOC art. 18(15)(a) requires the identity of the authority making the request; "
              "the requested State acts only on a request from an authority it can recognise."),
        Field("reference", F.TEXT, "your reference for this request",
              "The requested authority quotes your reference in every acknowledgement, status "
              "report and reply; without it answers cannot be matched to your case."),
        Field("contact", F.TEXT, "the official to contact about this request (name, phone, "
              "e-mail)", "Executing officials with a question can ask this person directly "
              "instead of returning the request for more information (UNTOC art. 18(16)), "
              "which saves weeks."),
    )),
    Field("proceeding", F.OBJECT, "the case the request is for", fields=(
        Field("nature", F.CHOICE, "whether it is an investigation, a prosecution, judicial "
              "proceedings or enforcement", "UNTOC art. 18(15)(b) requires the nature of the "
              "proceeding: the stage of the case decides which measures the requested State's "
              "law allows.",
              choices=("investigation", "prosecution", "judicial-proceedings", "enforcement")),
        Field("subject_matter", F.TEXT, "what the case is about, in a sentence or two",
              "UNTOC art. 18(15)(b) requires the subject matter: the requested State must see "
              "what the case is about to judge whether it can lawfully help."),
        Field("conducting_authority", F.TEXT, "the name and function of the authority "
              "conducting the case (court, prosecutor, investigating judge)",
              "UNTOC art. 18(15)(b) asks for the name and functions of the authority conducting "
              "the case; some measures are granted only at a judicial authority's request."),
        Field("reference", F.TEXT, "the case number at that authority"),
    )),
    Field("summary_of_facts", F.TEXT, "a summary of the relevant facts",
          "UNTOC art. 18(15)(c) requires a summary of the facts; without it the requested State "
          "cannot see the link between the offence and the help sought or check dual "
          "criminality, and refuses or asks again.", when=_facts_needed),
    Field("purpose", F.TEXT, "what the evidence, information or action will be used for",
          "UNTOC art. 18(15)(f) requires the purpose: it shows why the help is needed and "
          "bounds what the results may be used for afterwards (art. 18(19)).",
          when=_form_is("mla", "confiscation")),
    Field("legal_basis", F.OBJECT, "the treaty, convention or arrangement relied on", fields=(
        Field("instrument", F.TEXT, "the treaty or convention relied on (or 'reciprocity')",
              "The legal basis decides the requested State's obligations, the grounds on which "
              "it may refuse and the channel to use, so it is the first thing it checks."),
        Field("provisions", F.TEXT, "the articles of that instrument relied on"),
    )),
    Field("offences", F.OBJECTS, "the offences the case concerns", "The requested State needs "
          "the offences to check dual criminality, the seriousness its treaty demands and any "
          "ground for refusal (Model Treaty on Mutual Assistance art. 5(1)(c)).",
          when=_facts_needed, fields=_OFFENCE),
    Field("persons", F.OBJECTS, "the persons concerned", fields=_PERSON),
    Field("urgency", F.OBJECT, "whether the request is urgent, and why", fields=(
        Field("urgent", F.FLAG, "whether the request is urgent"),
        Field("reason", F.TEXT, "why it is urgent (trial date, detention limit, assets about "
              "to move, data about to be deleted)", "UNTOC art. 18(24) asks the requested State "
              "to take account of deadlines for which reasons are given; without a reason the "
              "request is treated as ordinary.", when=_urgent_or_dated),
        Field("deadline", F.DATE, "the date by which the assistance is needed",
              "An urgent request without a date cannot be scheduled; the requested State takes "
              "account of deadlines suggested in the request (UNTOC art. 18(24), Model Treaty "
              "art. 5(1)(f)).", when=_is("urgent", True)),
    )),
    Field("confidentiality", F.OBJECT, "whether the request must be kept confidential", fields=(
        Field("required", F.FLAG, "whether the request must be kept confidential",
              "Under UNTOC art. 18(20) the requested State keeps the fact and substance of a "
              "request confidential only if asked, so say whether it must; otherwise a suspect "
              "or a bank's customer may be told."),
        Field("details", F.TEXT, "what must stay confidential, and from whom",
              "Say what must stay secret and from whom (for instance, the account holder must "
              "not be told) so the requested State can comply or warn you that it cannot "
              "(UNTOC art. 18(20)).", when=_is("required", True)),
    )),
    Field("annexes", F.TEXTS, "the documents attached to the request"),
)

_WHY_PERSON_SUMMONED = ("The requested authority must know whom to summon; name the person as "
                        "in the persons list.")
_WHY_DUAL_CRIMINALITY = (
    "Seizing or freezing property is coercive and many States grant it only if the conduct is "
    "also an offence under their law (UNTOC art. 18(9)), so state that it is and why.")

MEASURES: tuple[Measure, ...] = (
    Measure("taking-evidence", "UNTOC art. 18(3)(a)", "Taking evidence or statements", (
        Field("person", F.TEXT, "the person whose evidence or statement is to be taken",
              _WHY_PERSON_SUMMONED),
        Field("questions", F.TEXTS, "the questions to put to the person",
              "The officials who take the statement do not know your case; written questions "
              "make sure the answers are the evidence you need."),
    )),
    Measure("service-of-documents", "UNTOC art. 18(3)(b)", "Service of judicial documents", (
        Field("person", F.TEXT, "the person on whom the documents are to be served",
              "Documents can be served only on a named person (Model Treaty on Mutual "
              "Assistance art. 5(1)(d))."),
        Field("address", F.TEXT, "the address of the person to be served",
              "Model Treaty on Mutual Assistance art. 5(1)(d) asks for the address of the "
              "person to be served; without it service cannot even be attempted."),
        Field("documents", F.TEXTS, "the documents to serve",
              "The requested authority must know which documents to serve and be able to "
              "confirm that each one was served."),
        Field("proof_of_service", F.FLAG, "whether proof of service is to be returned"),
    )),
    Measure("search-seizure-freezing", "UNTOC art. 18(3)(c)",
            "Searches and seizures, and freezing", (
        Field("actions", F.CHOICES, "which of search, seizure and freezing is wanted",
              "Search, seizure and freezing are separate coercive acts, each authorised "
              "separately under the requested State's law.",
              choices=("search", "seizure", "freezing")),
        Field("place", F.TEXT, "the premises, place or institution concerned",
              "A search or seizure order in the requested State has to name the place; "
              "officials cannot search somewhere the request does not identify."),
        Field("objects", F.TEXTS, "the objects, documents, data or assets to look for, seize "
              "or freeze", "Officials may seize only what the order describes; a vague list "
              "leads to refusal or to the wrong things being taken."),
        Field("dual_criminality", F.TEXT, "a statement that the conduct is an offence under "
              "the requested State's law too", _WHY_DUAL_CRIMINALITY,
              when=_has_any("actions", "seizure", "freezing")),
    )),
    Measure("examining-objects-and-sites", "UNTOC art. 18(3)(d)",
            "Examining objects and sites", (
        Field("items", F.TEXTS, "the objects or sites to examine",
              "The requested authority must know what to examine and what to look for."),
        Field("location", F.TEXT, "where the objects or sites are",
              "An object or site that cannot be located cannot be examined."),
    )),
    Measure("information-and-expert-evaluations", "UNTOC art. 18(3)(e)",
            "Information, evidentiary items and expert evaluations", (
        Field("items", F.TEXTS, "the information, evidentiary items or expert evaluations "
              "wanted", "The requested authority can provide only what is specifically "
              "asked for."),
        Field("holder", F.TEXT, "who holds the information or items, if known"),
    )),
    Measure("documents-and-records", "UNTOC art. 18(3)(f)",
            "Documents and records, including bank, financial, corporate or business records", (
        Field("category", F.CHOICE, "the kind of records: bank, financial, corporate, "
              "business, government or other", "The kind of records decides who must produce "
              "them and under which law, and bank or financial records need account "
              "identifiers and a period.",
              choices=("bank", "financial", "corporate", "business", "government", "other")),
        Field("holder", F.TEXT, "the bank, company or registry holding the records",
              "The requested authority must know whom to order to produce the records."),
        Field("records", F.TEXTS, "the records wanted (statements, account-opening files, "
              "register extracts...)", "Institutions produce exactly what the order lists; "
              "'all documents' is refused as a fishing expedition."),
        Field("accounts", F.TEXTS, "the account numbers (IBAN or other identifiers)",
              "A bank can search only by account number or customer; without identifiers the "
              "request is a fishing expedition that banks and courts refuse.",
              when=_is("category", "bank", "financial")),
        Field("period", F.OBJECT, "the period the records cover", fields=(
            Field("from", F.DATE, "the first day of the period",
                  "Banks produce records for a stated period only; an open period is refused "
                  "as disproportionate or takes months to execute."),
            Field("to", F.DATE, "the last day of the period",
                  "Banks produce records for a stated period only; an open period is refused "
                  "as disproportionate or takes months to execute."),
        ), when=_is("category", "bank", "financial")),
        Field("certified", F.FLAG, "whether certified copies are needed (for use in court)"),
    )),
    Measure("tracing-proceeds", "UNTOC art. 18(3)(g)",
            "Identifying or tracing proceeds of crime, property and instrumentalities", (
        Field("property", F.TEXT, "a description of the proceeds, property or "
              "instrumentalities to identify or trace", "The requested authority can trace "
              "only property it can recognise: amounts, assets, accounts, vehicles or "
              "companies, and their link to the offence."),
        Field("location", F.TEXT, "where the property is believed to be, if known"),
    )),
    Measure("voluntary-appearance", "UNTOC art. 18(3)(h)",
            "Facilitating the voluntary appearance of persons", (
        Field("person", F.TEXT, "the person invited to appear", _WHY_PERSON_SUMMONED),
        Field("date", F.DATE, "the date the person is to appear, if set"),
        Field("expenses", F.TEXT, "which of the person's expenses and allowances you will pay",
              "Model Treaty on Mutual Assistance art. 14 asks the requesting State to say which "
              "expenses it will pay; a person will not travel without knowing."),
        Field("safe_conduct", F.FLAG, "whether safe conduct is guaranteed (UNTOC art. 18(27))"),
    )),
    Measure("other-assistance", "UNTOC art. 18(3)(i)",
            "Any other assistance not contrary to the requested State's law", ()),
    Measure("videoconference", "UNTOC art. 18(18)", "Hearing by videoconference", (
        Field("person", F.TEXT, "the witness or expert to be heard",
              "UNTOC art. 18(18) hearings are of a named witness or expert, whom the requested "
              "State must identify, summon and bring to the link."),
        Field("proposed_date", F.DATE, "the date proposed for the hearing",
              "The requested State must book a room, a judge and an interpreter and summon "
              "the witness, which it can do only for a proposed date."),
        Field("questions", F.TEXTS, "the questions to be put, if they are to be sent ahead"),
        Field("technical_contact", F.TEXT, "who to contact to test the video link"),
    )),
)

_MEASURE_BASE = (
    Field("type", F.CHOICE, "the kind of assistance (UNTOC art. 18(3))",
          "The kind of assistance decides which law the requested State applies and which of "
          "its authorities executes it.", choices=tuple(m.type for m in MEASURES)),
    Field("description", F.TEXT, "what exactly is to be done",
          "UNTOC art. 18(15)(d) requires a description of the assistance sought; executing "
          "officials do only what the request says."),
    Field("procedure", F.TEXT, "any particular procedure to follow (sworn statement, "
          "presence of your officials, chain of custody) and why"),
)


def _needs_role(*roles: str) -> Callable[[Mapping[str, Any]], list[Gap]]:
    def rule(package: Mapping[str, Any]) -> list[Gap]:
        if any(p["role"] in roles for p in package["persons"]):
            return []
        listed = " or ".join(f"'{r}'" for r in roles)
        return [Gap("persons", f"missing: a person with the role {listed}",
                    _ROLE_WHY[roles[0]])]

    return rule


_ROLE_WHY = {
    "person-sought": "Model Treaty on Extradition art. 5(2) asks for as accurate a description "
    "as possible of the person sought, with their identity, nationality and location.",
    "suspect": "The Model Treaty on the Transfer of Proceedings asks for the identity, "
    "nationality and residence of the suspected person, whom the requested State will "
    "prosecute.",
    "sentenced-person": "A transfer concerns one sentenced person, whose identity and "
    "nationality or residence the administering State must check (UNTOC art. 17).",
}


def _flag_true(path: str, message: str, why: str,
               when: Condition | None = None) -> Callable[[Mapping[str, Any]], list[Gap]]:
    """A flag that must be stated *true*: blank is a missing field, false a missing condition."""
    first, _, second = path.partition(".")

    def rule(package: Mapping[str, Any]) -> list[Gap]:
        if when is not None and not when(package, package):
            return []
        value = package[first][second] if second else package[first]
        return [Gap(path, message, why)] if value is False else []

    return rule


FORM_FIELDS: Mapping[str, tuple[Field, ...]] = {
    "mla": (
        Field("measures", F.OBJECTS, "the assistance sought, one entry per measure",
              "UNTOC art. 18(15)(d) requires a description of the assistance sought; a request "
              "that asks for nothing specific cannot be executed.",
              fields=_MEASURE_BASE, variants=MEASURES),
    ),
    "extradition": (
        Field("basis", F.CHOICE, "whether the person is sought for prosecution or to enforce "
              "a sentence", "Model Treaty on Extradition art. 5(2) asks for an arrest warrant "
              "for prosecution but a judgment for enforcement, so the requested State must "
              "know which.", choices=("prosecution", "enforcement")),
        Field("identification", F.TEXT, "a description of the person sought (physical "
              "description, identity documents, photographs, fingerprints)",
              "Model Treaty on Extradition art. 5(2) asks for as accurate a description as "
              "possible so that the right person, and only that person, is arrested."),
        Field("time_and_place", F.TEXT, "when and where the offence was committed",
              "Model Treaty on Extradition art. 5(2) asks for the time and place of the acts; "
              "they decide jurisdiction and whether prosecution is time-barred."),
        Field("warrant", F.OBJECT, "the arrest warrant", fields=(
            Field("issued_by", F.TEXT, "the court or judicial authority that issued it",
                  "A person sought for prosecution is surrendered on a warrant of arrest issued "
                  "by a court or other competent judicial authority (Model Treaty art. 5(2))."),
            Field("date", F.DATE, "the date of the warrant", "The requested State checks that "
                  "the warrant is current and matches the certified copy attached."),
            Field("reference", F.TEXT, "the warrant's reference", "The requested State checks "
                  "that the warrant is current and matches the certified copy attached."),
        ), when=_top("basis", "prosecution")),
        Field("judgment", F.OBJECT, "the judgment to be enforced", fields=(
            Field("court", F.TEXT, "the court that gave judgment", "Extradition to enforce a "
                  "sentence needs the judgment setting out the conviction and sentence (Model "
                  "Treaty on Extradition art. 5(2))."),
            Field("date", F.DATE, "the date of the judgment", "Extradition to enforce a "
                  "sentence needs the judgment setting out the conviction and sentence (Model "
                  "Treaty on Extradition art. 5(2))."),
            Field("reference", F.TEXT, "the judgment's reference", "Extradition to enforce a "
                  "sentence needs the judgment setting out the conviction and sentence (Model "
                  "Treaty on Extradition art. 5(2))."),
            Field("sentence", F.TEXT, "the sentence imposed", "The sentence imposed is part of "
                  "what the requested State checks against its treaty's threshold."),
            Field("remaining", F.TEXT, "how much of the sentence remains to be served",
                  "Treaties refuse extradition to enforce a sentence with too little left to "
                  "serve (often under six months), so the remainder must be stated."),
            Field("enforceable", F.FLAG, "whether the sentence is enforceable",
                  "Model Treaty on Extradition art. 5(2) asks for a statement that the "
                  "sentence is enforceable."),
        ), when=_top("basis", "enforcement")),
        Field("in_absentia", F.FLAG, "whether the person was convicted in their absence",
              "A conviction in absentia needs a statement of the person's right to a retrial "
              "or defence; say whether there was one.", when=_top("basis", "enforcement")),
        Field("defence_rights", F.TEXT, "how the person convicted in absentia can have the "
              "case retried or prepare a defence", "Model Treaty on Extradition art. 5(2) "
              "asks, after a conviction in absentia, for the legal means the person has to "
              "defend themselves or be retried; without it surrender is refused.",
              when=_top("in_absentia", True)),
        Field("assurances", F.TEXT, "assurances given (death penalty, speciality, fair trial)"),
    ),
    "transfer-of-proceedings": (
        Field("reasons", F.TEXT, "why the requested State should take over the proceedings",
              "UNTOC art. 21 allows a transfer in the interests of the proper administration "
              "of justice; the requested State must be shown why it is better placed."),
        Field("time_and_place", F.TEXT, "when and where the offence was committed",
              "The Model Treaty on the Transfer of Proceedings asks for the time and place of "
              "the act, which decide the requested State's jurisdiction and limitation."),
        Field("investigation_results", F.TEXT, "the results of the investigation so far that "
              "substantiate the suspicion", "The Model Treaty on the Transfer of Proceedings "
              "asks for the results that substantiate the suspicion; the requested State will "
              "not prosecute on an allegation alone."),
        Field("case_file", F.TEXTS, "the case file documents transmitted with the request",
              "The requested State prosecutes on the evidence in the file sent with the "
              "request (originals or certified copies), so list what is sent."),
    ),
    "transfer-of-sentenced-persons": (
        Field("requesting_role", F.CHOICE, "whether the requesting State is the sentencing or "
              "the administering State", "Either State may ask for a transfer; the documents "
              "each must provide differ, so say which one you are.",
              choices=("sentencing", "administering")),
        Field("link", F.CHOICE, "whether the person is a national or a resident of the "
              "administering State", "A prisoner is transferred to the State of which they "
              "are a national or resident, to serve the sentence there (UNTOC art. 17).",
              choices=("national", "resident")),
        Field("judgment", F.OBJECT, "the judgment imposing the sentence", fields=(
            Field("court", F.TEXT, "the court that gave judgment", "The administering State "
                  "enforces a sentence only on the judgment itself."),
            Field("date", F.DATE, "the date of the judgment", "The administering State "
                  "enforces a sentence only on the judgment itself."),
            Field("reference", F.TEXT, "the judgment's reference", "The administering State "
                  "enforces a sentence only on the judgment itself."),
            Field("final", F.FLAG, "whether the judgment is final", "Transfer is possible only "
                  "on a final and enforceable judgment (UN Model Agreement on the Transfer of "
                  "Foreign Prisoners)."),
        )),
        Field("sentence", F.OBJECT, "the sentence", fields=(
            Field("imposed", F.TEXT, "the sentence imposed", "The administering State must "
                  "know the sentence to continue or convert it."),
            Field("start_date", F.DATE, "the date the sentence began", "Time already served "
                  "counts towards the sentence in the administering State; it is computed from "
                  "this date."),
            Field("remaining", F.TEXT, "how much of the sentence remains to be served",
                  "A transfer is usually refused when little of the sentence remains, so the "
                  "remainder must be stated."),
        )),
        Field("consent", F.FLAG, "whether the sentenced person consents to the transfer",
              "The UN Model Agreement on the Transfer of Foreign Prisoners bases a transfer on "
              "the prisoner's free consent, given in writing."),
    ),
    "confiscation": (
        Field("action", F.CHOICE, "whether you ask the requested State to obtain a "
              "confiscation order, to give effect to yours, or to identify, trace, freeze or "
              "seize property", "UNTOC art. 13(3) asks for different information for each kind "
              "of confiscation request.",
              choices=("obtain-order", "give-effect-to-order", "identify-trace-freeze-seize")),
        Field("property", F.OBJECTS, "the property concerned", "UNTOC art. 13(3)(a) requires "
              "a description of the property: nothing can be frozen or confiscated that is "
              "not identified.", fields=(
            Field("description", F.TEXT, "what the property is (account, real estate, vehicle, "
                  "shares...)", "UNTOC art. 13(3)(a) requires a description of the property "
                  "to be confiscated."),
            Field("location", F.TEXT, "where the property is (address, bank, registry)",
                  "The requested authority must know where the property is to freeze or "
                  "seize it."),
            Field("holder", F.TEXT, "who holds or owns the property, if known"),
            Field("estimated_value", F.TEXT, "its estimated value, if known"),
        )),
        Field("order", F.OBJECT, "the confiscation order to be given effect", fields=(
            Field("issued_by", F.TEXT, "the court that made the order", "UNTOC art. 13(3)(b) "
                  "requires a legally admissible copy of the confiscation order the request is "
                  "based on."),
            Field("date", F.DATE, "the date of the order", "UNTOC art. 13(3)(b) requires a "
                  "legally admissible copy of the confiscation order the request is based on."),
            Field("reference", F.TEXT, "the order's reference", "UNTOC art. 13(3)(b) requires "
                  "a legally admissible copy of the confiscation order the request is based "
                  "on."),
            Field("final", F.FLAG, "whether the order is final", "UNCAC art. 55(3)(b) asks for "
                  "a statement that the confiscation order is final."),
        ), when=_top("action", "give-effect-to-order")),
        Field("extent", F.TEXT, "to what extent the order is to be executed (which property, "
              "up to what amount)", "UNTOC art. 13(3)(b) requires information on the extent "
              "to which execution of the order is requested.",
              when=_top("action", "give-effect-to-order")),
        Field("third_parties", F.TEXT, "how bona fide third parties were notified and due "
              "process ensured", "UNCAC art. 55(3)(b) asks for the measures taken to notify "
              "bona fide third parties and ensure due process; courts refuse orders that "
              "ignore them.", when=_top("action", "give-effect-to-order")),
        Field("actions_requested", F.TEXT, "the actions requested (identify, trace, freeze, "
              "seize) and on what", "UNTOC art. 13(3)(c) requires a description of the actions "
              "requested.", when=_top("action", "identify-trace-freeze-seize")),
        Field("disposal", F.TEXT, "proposals for the return or sharing of confiscated assets"),
    ),
}

_FORM_RULES: Mapping[str, tuple[Callable[[Mapping[str, Any]], list[Gap]], ...]] = {
    "mla": (),
    "extradition": (_needs_role("person-sought"),),
    "transfer-of-proceedings": (_needs_role("suspect", "accused"),),
    "transfer-of-sentenced-persons": (
        _needs_role("sentenced-person"),
        _flag_true("judgment.final", "the judgment is not final",
                   "Transfer is possible only on a final and enforceable judgment (UN Model "
                   "Agreement on the Transfer of Foreign Prisoners)."),
        _flag_true("consent", "the sentenced person has not consented",
                   "The UN Model Agreement on the Transfer of Foreign Prisoners bases a transfer "
                   "on the prisoner's free consent; without it most States refuse."),
    ),
    "confiscation": (
        _flag_true("order.final", "the confiscation order is not final",
                   "UNCAC art. 55(3)(b) asks for a statement that the confiscation order is "
                   "final; many States give effect only to final orders.",
                   when=_top("action", "give-effect-to-order")),
    ),
}

_MEASURES_BY_TYPE = {m.type: m for m in MEASURES}


def fields_for(form: str) -> tuple[Field, ...]:
    """The schema of one form: the common fields, then the form's own (without v and form)."""
    if form not in FORM_FIELDS:
        raise PackageSchemaUnknown(f"form {_show(form)}; known forms: {', '.join(FORMS)}")
    return COMMON_FIELDS + FORM_FIELDS[form]


# --- reading and normalising --------------------------------------------------------------------


def _show(value: object) -> str:
    """A value quoted for an error detail: one line, and short."""
    text = repr(value)
    return text if len(text) <= 66 else text[:64] + "..."


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _text(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise PackageMalformed(f"{path} must be a string")
    if len(value) > MAX_TEXT:
        raise PackageMalformed(f"{path} is longer than {MAX_TEXT} characters")
    bad = _CONTROL.search(value)
    if bad:
        raise PackageMalformed(f"{path} contains control character U+{ord(bad.group()):04X}")
    return value


def _is_date(text: str) -> bool:
    if not _DATE.fullmatch(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise PackageMalformed(f"{path} must be a list")
    if len(value) > MAX_ITEMS:
        raise PackageMalformed(f"{path} has more than {MAX_ITEMS} entries")
    return value


def _choice(field: Field, value: object, path: str) -> str:
    text = _text(value, path)
    if text and text not in field.choices:
        raise PackageMalformed(f"{path} is {_show(text)}, not one of: {', '.join(field.choices)}")
    return text


def _blank(field: Field) -> Any:
    if field.type in (F.TEXTS, F.CHOICES, F.OBJECTS):
        return []
    if field.type is F.FLAG:
        return None
    if field.type is F.OBJECT:
        return {f.name: _blank(f) for f in field.fields}
    return ""


def _value(field: Field, value: object, path: str) -> Any:
    kind = field.type
    if kind is F.TEXT:
        return _text(value, path)
    if kind is F.TEXTS:
        items = [_text(item, f"{path}[{i}]") for i, item in enumerate(_list(value, path))]
        if any(not item.strip() for item in items):
            raise PackageMalformed(f"{path} has a blank entry")
        return items
    if kind is F.DATE:
        text = _text(value, path)
        if text and not _is_date(text):
            raise PackageMalformed(f"{path} must be a date YYYY-MM-DD, not {_show(text)}")
        return text
    if kind is F.FLAG:
        if value is not None and not isinstance(value, bool):
            raise PackageMalformed(f"{path} must be true, false or null")
        return value
    if kind is F.CHOICE:
        return _choice(field, value, path)
    if kind is F.CHOICES:
        chosen = [_choice(field, item, f"{path}[{i}]")
                  for i, item in enumerate(_list(value, path))]
        if "" in chosen or len(set(chosen)) != len(chosen):
            raise PackageMalformed(f"{path} has a blank or repeated entry")
        return chosen
    if kind is F.LANGUAGE:
        text = _text(value, path)
        if text and not _LANGUAGE.fullmatch(text):
            raise PackageMalformed(f"{path} must be a language tag such as 'en' or 'pt-BR'")
        return text
    if kind is F.AUTHORITY:
        text = _text(value, path)
        if text and not is_authority_id(text):
            raise PackageMalformed(f"{path} must be an authority id CC:NAME, not {_show(text)}")
        return text
    if kind is F.OBJECT:
        return _object(field.fields, value, path)
    return [_object(_element_fields(field, item, f"{path}[{i}]"), item, f"{path}[{i}]")
            for i, item in enumerate(_list(value, path))]


def _element_fields(field: Field, item: object, path: str) -> tuple[Field, ...]:
    """The fields of one element of a list: for the measures, the base plus its type's own."""
    if not field.variants or not isinstance(item, dict):
        return field.fields
    kind = item.get("type", "")
    if not isinstance(kind, str):
        raise PackageMalformed(f"{path}.type must be a string")
    if not kind:
        return field.fields
    for variant in field.variants:
        if variant.type == kind:
            return field.fields + variant.fields
    raise PackageSchemaUnknown(f"{path}.type {_show(kind)} is not a measure of version {VERSION}")


def _object(fields: Sequence[Field], value: object, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PackageMalformed(f"{path or 'the package'} must be a JSON object")
    names = {f.name for f in fields}
    unknown = sorted(key for key in value if key not in names)
    if unknown:
        where = f" in {path}" if path else ""
        raise PackageMalformed(f"unknown field {_show(unknown[0])}{where}")
    return {
        f.name: _value(f, value[f.name], _join(path, f.name)) if f.name in value else _blank(f)
        for f in fields
    }


def _identify(value: object) -> str:
    """Read ``v`` and ``form`` first, so a newer schema is reported as such, not as malformed."""
    if not isinstance(value, dict):
        raise PackageMalformed("a request package must be a JSON object")
    if "v" not in value or "form" not in value:
        raise PackageMalformed("a request package needs 'v' (the schema version) and 'form'")
    version, form = value["v"], value["form"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise PackageMalformed("v must be an integer")
    if version != VERSION:
        raise PackageSchemaUnknown(f"schema version {version}; this node reads version {VERSION}")
    if not isinstance(form, str):
        raise PackageMalformed("form must be a string")
    if form not in FORM_FIELDS:
        raise PackageSchemaUnknown(f"form {_show(form)}; known forms: {', '.join(FORMS)}")
    return form


def _normalise(value: object) -> dict[str, Any]:
    form = _identify(value)
    assert isinstance(value, dict)
    rest = {k: v for k, v in value.items() if k not in ("v", "form")}
    return {"v": VERSION, "form": form, **_object(fields_for(form), rest, "")}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise PackageMalformed(f"key {_show(key)} appears twice in one object")
        result[key] = item
    return result


def _no_numbers_but_integers(text: str) -> Any:
    raise PackageMalformed(f"number {text} is not an integer")


def _load(data: bytes) -> Any:
    if not isinstance(data, bytes):
        raise PackageMalformed("a request package is bytes")
    if len(data) > MAX_PACKAGE_BYTES:
        raise PackageMalformed(f"{len(data)} bytes is more than {MAX_PACKAGE_BYTES}")
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                          parse_float=_no_numbers_but_integers,
                          parse_constant=_no_numbers_but_integers)
    except PackageMalformed:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PackageMalformed(f"not UTF-8 JSON: {exc}") from None


# --- the package ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestPackage:
    """A request package that meets its schema (complete or not), held as its canonical bytes.

    Build one with ``RequestPackage.from_json`` or ``parse_request``; the constructor checks
    that ``body`` is the canonical encoding of a valid package, so no other kind can exist.
    """

    body: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.body, bytes):
            raise PackageMalformed("a request package is bytes")
        if _encode(_normalise(_load(self.body))) != self.body:
            raise PackageMalformed("not the canonical encoding of its package; use from_json")

    @classmethod
    def from_json(cls, value: object) -> RequestPackage:
        """Check a parsed JSON value against its form's schema; absent fields become blank."""
        package = object.__new__(cls)  # the body is valid by construction: skip the re-check
        object.__setattr__(package, "body", _encode(_normalise(value)))
        return package

    def to_json(self) -> dict[str, Any]:
        """Every field of the schema, absent ones as blanks; a fresh copy each time."""
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def form(self) -> str:
        return str(self.to_json()["form"])

    @property
    def language(self) -> str:
        return str(self.to_json()["language"])

    @property
    def reference(self) -> str:
        return str(self.to_json()["requesting_authority"]["reference"])

    @property
    def urgent(self) -> bool:
        return self.to_json()["urgency"]["urgent"] is True

    @property
    def legal_basis(self) -> str:
        return str(self.to_json()["legal_basis"]["instrument"])

    @property
    def offences(self) -> tuple[str, ...]:
        return tuple(o["name"] for o in self.to_json()["offences"])

    @property
    def offence_categories(self) -> tuple[str, ...]:
        """The ICCS categories of the offences, each once, in order of first mention."""
        found = (o.get("category", "") for o in self.to_json()["offences"])
        return tuple(dict.fromkeys(c for c in found if c))

    @property
    def measure_types(self) -> tuple[str, ...]:
        """The kinds of assistance asked for (MLA only; empty for the other forms)."""
        return tuple(m["type"] for m in self.to_json().get("measures", []))


def _encode(value: dict[str, Any]) -> bytes:
    try:
        return canonical_json(value)
    except EncodingError as exc:  # cannot happen for a normalised package; kept for safety
        raise PackageMalformed(exc.message) from exc


def parse_request(data: bytes) -> RequestPackage:
    """Read a request package: UTF-8 JSON (any spacing), with no duplicate keys or floats.

    Raises ``PackageMalformed`` for bytes that are not such JSON or do not meet the schema and
    ``PackageSchemaUnknown`` for an unknown form, version or measure type. Completeness is not
    checked here: see ``check_completeness``.
    """
    return RequestPackage.from_json(_load(data))


def encode_request(package: RequestPackage) -> bytes:
    """The canonical JSON of the package, every field present: what travels in an envelope."""
    return package.body


# --- completeness -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """An essential field left blank: where (a JSON path), what is missing, and why it matters."""

    field: str
    message: str
    why: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "why": self.why}

    @classmethod
    def from_json(cls, value: object) -> Gap:
        if not isinstance(value, dict) or set(value) != {"field", "message", "why"}:
            raise PackageMalformed("a gap is an object with field, message and why")
        return cls(*(_text(value[k], f"gap {k}") for k in ("field", "message", "why")))


def _is_blank(field: Field, value: Any) -> bool:
    if field.type is F.FLAG:
        return value is None
    if isinstance(value, str):
        return not value.strip()
    return not value


def _walk(fields: Sequence[Field], holder: Mapping[str, Any], package: Mapping[str, Any],
          path: str, gaps: list[Gap]) -> None:
    for field in fields:
        value = holder[field.name]
        where = _join(path, field.name)
        if field.type is F.OBJECT:
            if field.applies(holder, package):
                _walk(field.fields, value, package, where, gaps)
            continue
        if field.essential(holder, package) and _is_blank(field, value):
            gaps.append(Gap(where, f"missing: {field.label}", field.why))
        if field.type is F.OBJECTS:
            for i, item in enumerate(value):
                element = f"{where}[{i}]"
                _walk(_element_fields(field, item, element), item, package, element, gaps)


def check_completeness(package: RequestPackage) -> list[Gap]:
    """Every essential field of the package's form that is blank, in schema order."""
    value = package.to_json()
    gaps: list[Gap] = []
    _walk(fields_for(value["form"]), value, value, "", gaps)
    for rule in _FORM_RULES[value["form"]]:
        gaps.extend(rule(value))
    return gaps


def require_complete(package: RequestPackage, *, override_reason: str | None) -> list[Gap]:
    """Refuse an incomplete package unless the sender gives a reason to send it anyway.

    Returns the gaps (empty when complete) so the caller can record them with the reason.
    Raises ``PackageIncomplete``, naming the missing fields, when there are gaps and the
    reason is absent or blank.
    """
    gaps = check_completeness(package)
    if not gaps:
        return gaps
    if override_reason is not None and not isinstance(override_reason, str):
        raise PackageMalformed("the override reason must be text")
    if override_reason is not None and len(override_reason) > MAX_OVERRIDE_REASON:
        raise PackageMalformed(f"the override reason is longer than {MAX_OVERRIDE_REASON}")
    if override_reason is not None and override_reason.strip():
        return gaps
    named = ", ".join(gap.field for gap in gaps[:_GAPS_NAMED_IN_ERROR])
    more = len(gaps) - _GAPS_NAMED_IN_ERROR
    raise PackageIncomplete(
        f"{len(gaps)} essential field(s) missing: {named}" + (f" and {more} more" if more > 0
                                                               else ""))


def _accepts(accepted: str, language: str) -> bool:
    """'pt' accepts 'pt' and 'pt-BR'; 'pt-BR' accepts only 'pt-BR' (case does not matter)."""
    accepted, language = accepted.strip().lower(), language.lower()
    return language == accepted or language.startswith(accepted + "-")


def check_language(package: RequestPackage, accepted_languages: Sequence[str]) -> None:
    """Refuse a request whose language the recipient does not accept (UNTOC art. 18(14)).

    ``accepted_languages`` comes from the recipient's directory record; empty means the record
    states no constraint, and any language passes.
    """
    accepted = [a for a in accepted_languages if isinstance(a, str) and a.strip()]
    if not accepted:
        return
    language = package.language
    if not language:
        raise PackageLanguageNotAccepted(
            f"the request states no language; accepted: {', '.join(accepted)}")
    if not any(_accepts(a, language) for a in accepted):
        raise PackageLanguageNotAccepted(
            f"the request is in {_show(language)}; accepted: {', '.join(accepted)}")


# --- a blank skeleton for drafters ------------------------------------------------------------


def _skeleton(fields: Sequence[Field]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for field in fields:
        if field.type is F.OBJECT:
            result[field.name] = _skeleton(field.fields)
        elif field.type is F.OBJECTS and not field.variants:
            result[field.name] = [_skeleton(field.fields)]
        else:
            result[field.name] = _blank(field)
    return result


def template(form: str, *, measures: Sequence[str] = ()) -> dict[str, Any]:
    """A blank package of ``form`` to fill in: every field, one blank entry in each list.

    For ``mla``, ``measures`` names the kinds of assistance to include, one blank measure each
    with its own fields; without it there is one blank measure of the common fields. The
    skeleton parses, and ``check_completeness`` then lists everything left to fill in.
    """
    fields = fields_for(form)
    if measures and form != "mla":
        raise PackageSchemaUnknown(
            f"only mutual legal assistance (mla) has measures, not {_show(form)}")
    skeleton: dict[str, Any] = {"v": VERSION, "form": form, **_skeleton(fields)}
    skeleton["urgency"]["urgent"] = False
    if form == "mla":
        entries = []
        for kind in measures or ("",):
            if kind and kind not in _MEASURES_BY_TYPE:
                raise PackageSchemaUnknown(
                    f"measure {_show(kind)}; known: {', '.join(m.type for m in MEASURES)}")
            extra = _MEASURES_BY_TYPE[kind].fields if kind else ()
            entry = _skeleton(_MEASURE_BASE + extra)
            entry["type"] = kind
            entries.append(entry)
        skeleton["measures"] = entries
    return skeleton
