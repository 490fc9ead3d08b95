"""The caseworkers' web interface, driven in headless Chromium against real nodes on loopback.

Two authorities run with their web interfaces on; a caseworker in Paris drafts a request, sees
what is missing as she types, completes it and sends it; a caseworker in Brasília sees it
arrive, opens it and acknowledges it with a document attached; the Paris case view then shows
the acknowledgement and the verified receipts. Each main page is saved as a screenshot under
``$ROGATORY_SCREENSHOTS`` (default ``build/screenshots``), the artefact CI keeps.

Chromium is Debian's (``/usr/bin/chromium``, or ``$ROGATORY_CHROMIUM``), driven by Playwright;
the README's test command installs both. There is no skip: a missing browser fails the test.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from node.audit_bundle import verify_bundle
from node.federation import Federation, Member
from node.node import Node
from node.users import Role
from protocol.log_entry import EntryType, parse_entry
from tests.integration.kit import DELIVERY

pytestmark = pytest.mark.slow

FR, BR = "FR:MJ", "BR:MJSP"
MEMBERS = (
    Member(FR, "Ministère de la Justice", {
        "languages": ["fr", "en"], "request_types": ["mla", "extradition"],
        "urgent_procedure": "Call the BEPI duty magistrate, then send the request."}),
    Member(BR, "Ministério da Justiça e Segurança Pública", {
        "languages": ["pt", "en"], "request_types": ["mla", "extradition", "confiscation"],
        "urgent_procedure": "DRCI on call 24/7; send urgent requests with priority urgent.",
        "office_hours": "09:00-18:00", "time_zone": "America/Sao_Paulo"}),
)
PASSWORD = "a long password for tests"
REALISTIC = {
    "requesting_authority.name": "Ministère de la Justice, BEPI",
    "offences.name": "Money laundering (blanchiment)",
    "persons.name": "Henrique Exemplo",
    "contact": "Claire Martin, magistrate; +33 1 00 00 00 00",
    "conducting_authority": "Juge d'instruction, Tribunal judiciaire de Paris",
    "subject_matter": "Laundering of the proceeds of an organised fraud",
    "purpose": "To identify the holders of the accounts that received the funds.",
    "instrument": "United Nations Convention against Transnational Organized Crime (2000)",
    "legal_provision": "Code pénal, article 324-1",
    "maximum_penalty": "5 years' imprisonment and a fine of EUR 375,000",
    "nationality": "Brazilian",
    "location": "Rio de Janeiro",
    "description": "Hear the witness on the transfers of March 2025.",
    "person": "Henrique Exemplo",
    "questions": "Who opened the account?\nWho gave the transfer orders?",
    "details": "The suspects must not learn of the request.",
}
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("ROGATORY_SCREENSHOTS", ROOT / "build" / "screenshots"))
CHROMIUM = os.environ.get("ROGATORY_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-dev-shm-usage"]
USERS = {FR: [("claire", Role.CASEWORKER, "Claire Martin"),
              ("auditeur", Role.AUDITOR, "Paul Auditeur")],
         BR: [("bruno", Role.CASEWORKER, "Bruno Souza"),
              ("chefe", Role.HEAD_OF_UNIT, "Ana Chefe")]}


async def add_users(node: Node) -> None:
    def add() -> None:
        with node.store.transaction():
            for name, role, display in USERS[node.authority]:
                node.store.users.add(name, role, PASSWORD, display_name=display,
                                     now=int(time.time()))
    await node.call(add)


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[dict[str, Node]]:
    fed = Federation.create(tmp_path, MEMBERS, delivery=DELIVERY, web=True)
    started = await fed.start()
    for node in started.values():
        await add_users(node)
    try:
        yield started
    finally:
        await fed.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (the README's test command does)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def base(node: Node) -> str:
    return f"http://127.0.0.1:{node.web_port}"


async def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


async def sign_in(browser: Browser, node: Node, user: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        accept_downloads=True)
    context.set_default_timeout(15_000)
    page = await context.new_page()
    await page.goto(base(node) + "/inbox")
    await expect(page).to_have_url(f"{base(node)}/login?next=/inbox")
    await page.get_by_label("User name").fill(user)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("form.signout")).to_contain_text("Signed in as")
    return context, page


async def missing_fields(page: Page) -> list[str]:
    return await page.locator("#missing-list li[data-field]").evaluate_all(
        "items => items.map(i => i.dataset.field)")


async def fill_gap(page: Page, field: str) -> None:
    """Fill one reported gap the way a caseworker would, by the kind of input it is."""
    container = page.locator(f'[data-field="{field}"]').first
    radios = container.locator('input[type="radio"][value="yes"]')
    if await radios.count():
        await radios.first.check()
        return
    boxes = container.locator('input[type="checkbox"]')
    if await boxes.count():
        await boxes.first.check()
        return
    selects = container.locator("select")
    if await selects.count():
        options = await selects.first.locator("option").evaluate_all(
            "os => os.map(o => o.value).filter(v => v)")
        await selects.first.select_option(options[0])
        return
    date = container.locator('input[type="date"]')
    if await date.count():
        await date.first.fill("2026-12-31")
        return
    field_input = container.locator("input, textarea").first
    generic = re.sub(r"\[\d+\]", "", field)
    value = REALISTIC.get(generic) or REALISTIC.get(generic.rsplit(".", 1)[-1])
    await field_input.fill(value or f"Filled in for {field}")


async def until(probe: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_draft_send_receive_acknowledge_in_the_browser(
        nodes: dict[str, Node], browser: Browser, tmp_path: Path) -> None:
    fr, br = nodes[FR], nodes[BR]
    paris, claire = await sign_in(browser, fr, "claire")
    await shot(claire, "inbox-empty")

    # Drafting: the recipient's languages and urgent procedure come from the directory, and
    # what is missing is listed as she types, without a reload.
    await claire.goto(base(fr) + "/requests/new?form=mla&measure=taking-evidence")
    await claire.get_by_label("Send to").select_option(BR)
    await expect(claire.locator("#accepted-languages")).to_have_text("pt, en")
    await expect(claire.locator("#urgent-procedure")).to_contain_text("DRCI on call")
    await expect(claire.locator('#missing-list li[data-field="summary_of_facts"]')).to_have_count(1)
    before = len(await missing_fields(claire))
    await claire.locator('[id="summary_of_facts"]').fill(
        "Between 2024 and 2026 a group laundered EUR 2 million through accounts in Paris.")
    await expect(claire.locator('#missing-list li[data-field="summary_of_facts"]')).to_have_count(0)
    assert len(await missing_fields(claire)) == before - 1
    await expect(claire.locator('[id="summary_of_facts"]')).not_to_have_attribute(
        "aria-invalid", "true")
    await claire.locator('[id="language"]').fill("de")
    await expect(claire.locator("#language-problem")).to_contain_text("accepted: pt, en")
    await claire.locator('[id="language"]').fill("en")
    await expect(claire.locator("#language-problem")).to_be_hidden()
    await claire.locator('[id="requesting_authority.reference"]').fill("BEPI 2026/0042")
    await expect(claire.locator(
        '#missing-list li[data-field="requesting_authority.reference"]')).to_have_count(0)
    await claire.evaluate("window.scrollTo(0, 0)")
    await shot(claire, "request-draft-incomplete", full_page=False)

    # Sending an incomplete request without a recorded reason is refused, nothing is queued.
    await claire.locator("#send").click()
    await expect(claire.locator("#send-error")).to_contain_text("package.incomplete")
    assert await fr.call(fr.store.outbound, 10, 0) == []

    # Complete it from the list of gaps (each answer may reveal a field that depends on it).
    for _round in range(12):
        gaps = await missing_fields(claire)
        if not gaps:
            break
        for field in gaps:
            await fill_gap(claire, field)
        await claire.get_by_role("button", name="Check again").click()
    assert await missing_fields(claire) == []
    await expect(claire.locator("#missing-none")).to_be_visible()
    await claire.locator("#send").click()
    await expect(claire.locator("#sent-notice")).to_be_visible()
    await expect(claire.locator("h1")).to_contain_text("BEPI 2026/0042")
    sent = await fr.call(fr.store.outbound, 10, 0)
    assert [r.kind for r in sent] == ["request"] and sent[0].case_ref == "BEPI 2026/0042"

    # Brasília: the request arrives in the inbox; opening it is logged with the user's name.
    brasilia, bruno = await sign_in(browser, br, "bruno")

    async def arrived() -> bool:
        await bruno.goto(base(br) + "/inbox")
        return await bruno.locator("tbody a", has_text="request").count() == 1
    await until(arrived)
    await expect(bruno.locator("tbody")).to_contain_text("BEPI 2026/0042")
    await shot(bruno, "inbox")
    await bruno.locator("tbody a", has_text="request").click()
    await expect(bruno.locator("#content")).to_contain_text("laundered EUR 2 million")
    await shot(bruno, "message")
    opened = [fields for kind, fields in
              (parse_entry(e) for e in await br.call(br.store.audit.entries))
              if kind is EntryType.PACKAGE_OPENED]
    assert [o["by"] for o in opened] == ["user:bruno"] and opened[0]["id"] == sent[0].message_id

    # Acknowledge with a document attached, uploaded with a progress bar.
    await bruno.locator("dl.facts a", has_text="BEPI 2026/0042").click()
    await bruno.get_by_label("What to send").select_option("acknowledgement")
    await bruno.get_by_label("Your reference (acknowledgement)").fill("DRCI 2026/777")
    document = tmp_path / "receipt-of-request.pdf"
    document.write_bytes(b"%PDF-1.4 acknowledgement of receipt\n" * 40_000)
    await bruno.get_by_label("Attach files").set_input_files(str(document))
    await bruno.locator("#reply-send").click()
    await expect(bruno.locator("#sent-notice")).to_be_visible()
    await expect(bruno.locator("#case-state")).to_contain_text("acknowledged")

    # Paris: the case view shows the acknowledgement and each receipt verified.
    async def acknowledged() -> bool:
        await claire.goto(f"{base(fr)}/cases/BEPI%202026%2F0042?with={BR}")
        return "acknowledged" in await claire.locator("#case-state").inner_text()
    await until(acknowledged)
    timeline = claire.locator("#timeline")
    await expect(timeline.locator('li[data-kind="acknowledgement"]')).to_have_count(1)
    await expect(timeline.locator('li[data-kind="request"] .receipt.ok')).to_contain_text(
        "Receipt verified: signed by BR:MJSP")
    await expect(claire.locator("dl.facts")).to_contain_text("DRCI 2026/777")
    await shot(claire, "case")

    # The document comes down whole, through the browser's own download.
    await timeline.locator('li[data-kind="acknowledgement"] a').click()
    async with claire.expect_download() as info:
        await claire.locator("ul.attachments a").click()
    download = await info.value
    saved = tmp_path / "downloaded.pdf"
    await download.save_as(saved)
    assert saved.read_bytes() == document.read_bytes()
    assert download.suggested_filename == "receipt-of-request.pdf"

    for path, name in (("/outbox", "outbox"), ("/cases", "cases"),
                       ("/directory?language=pt", "directory"), ("/statistics", "statistics")):
        await claire.goto(base(fr) + path)
        await shot(claire, name)
    await claire.goto(base(fr) + "/statistics")
    await expect(claire.get_by_role("heading", name="Counterpart country")).to_be_visible()
    await expect(claire.locator("main table").first).to_contain_text("BR")
    await expect(claire.locator("#durations")).to_contain_text("outgoing")
    assert await claire.locator("figure img").count() >= 3
    await claire.goto(base(fr) + "/directory?language=pt")
    await expect(claire.locator("#authorities tbody tr")).to_have_count(1)
    await expect(claire.locator("#authorities")).to_contain_text(BR)
    # The auditor's view after the exchange: Brasília's log witnessed, the openings logged.
    audit_context, auditor = await sign_in(browser, fr, "auditeur")

    async def witnessed() -> bool:
        await auditor.goto(base(fr) + "/audit")
        return BR in await auditor.locator("#witnessed").inner_text()
    await until(witnessed)
    await expect(auditor.locator("#entries")).to_contain_text("package-opened")
    await shot(auditor, "audit")
    await audit_context.close()
    await paris.close()
    await brasilia.close()


async def test_spontaneous_information_is_withheld_until_a_head_of_unit_accepts(
        nodes: dict[str, Node], browser: Browser) -> None:
    from node.outbound import Draft
    from protocol.case_message import CONTENT_TYPE, CaseMessage, encode_case_message
    from protocol.kinds import Kind

    fr, br = nodes[FR], nodes[BR]
    message = CaseMessage.build(
        Kind.SPONTANEOUS_INFORMATION, information="Account FR76 3000 is used by the group.",
        conditions={"confidential": True, "use_restrictions": ["only for the investigation"],
                    "designated_receiver": "DRCI"})
    record = await fr.submit(Draft(recipient=BR, kind=Kind.SPONTANEOUS_INFORMATION,
                                   content_type=CONTENT_TYPE,
                                   payload=encode_case_message(message), case="SPONT-1"))

    context, bruno = await sign_in(browser, br, "bruno")

    async def arrived() -> bool:
        await bruno.goto(base(br) + "/spontaneous")
        return await bruno.locator(f"#spontaneous-{record.message_id}").count() == 1
    await until(arrived)
    assert await bruno.locator("form.answer").count() == 0  # a caseworker cannot answer
    await bruno.goto(f"{base(br)}/messages/{record.message_id}")
    await expect(bruno.locator("#withheld")).to_contain_text("only for the investigation")
    assert "FR76" not in await bruno.content()
    await context.close()

    context, chefe = await sign_in(browser, br, "chefe")
    await chefe.goto(base(br) + "/spontaneous")
    await shot(chefe, "spontaneous")
    await chefe.get_by_role("button", name="Accept the conditions").click()
    await expect(chefe.locator(f"#spontaneous-{record.message_id}")).to_contain_text("accepted")
    await chefe.goto(f"{base(br)}/messages/{record.message_id}")
    await expect(chefe.locator("#content")).to_contain_text("FR76 3000")
    await context.close()


async def test_audit_view_exports_a_bundle_that_verifies_and_pages_are_accessible(
        nodes: dict[str, Node], browser: Browser, tmp_path: Path) -> None:
    fr = nodes[FR]
    context, auditor = await sign_in(browser, fr, "auditeur")
    await expect(auditor).to_have_url(base(fr) + "/inbox")  # asked for; refused to an auditor
    await expect(auditor.locator(".alert")).to_contain_text("web.forbidden")
    await auditor.goto(base(fr) + "/audit")
    await expect(auditor.locator("#checkpoint")).to_contain_text(f"rogatory/log/{FR}")
    await expect(auditor.locator("#entries")).to_contain_text("user-login")
    async with auditor.expect_download() as info:
        await auditor.locator("#export-bundle").click()
    bundle = tmp_path / "bundle.json"
    await (await info.value).save_as(bundle)
    report = verify_bundle(bundle.read_bytes(), fr.config.secretariat_keys, fr.config.threshold)
    assert report.ok, report.problems

    # Keyboard first: the first Tab lands on the skip link; every form control has a label.
    await auditor.goto(base(fr) + "/directory")
    await auditor.keyboard.press("Tab")
    assert await auditor.evaluate("document.activeElement.className") == "skip"
    unlabelled = await auditor.evaluate("""() => [...document.querySelectorAll(
        'input:not([type=hidden]), select, textarea')].filter(
        el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).length""")
    assert unlabelled == 0
    # Printed, a page drops its navigation and forms but keeps its content.
    await auditor.emulate_media(media="print")
    await expect(auditor.locator("header.top nav")).to_be_hidden()
    await expect(auditor.locator("#authorities")).to_be_visible()
    await context.close()
