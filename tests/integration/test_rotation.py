"""Prekey rotation on a running node: the new prekey is used once published, the old one
keeps opening traffic through its grace period, and the archive outlives both."""

from __future__ import annotations

import asyncio
import base64
import time

from keys.keystore import KeyStore
from node.config import load_config
from node.federation import Federation, passphrase_for
from node.outbound import Draft
from node.provision import refresh_record
from protocol.envelope import parse_envelope
from protocol.kinds import Kind
from tests.integration.kit import BR, FR, outbound_state


async def test_rotated_prekey_is_used_after_the_directory_publishes_it(
    federation: Federation,
) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    old_prekey = fr.directory.prekey_for(BR, int(time.time()))

    # Sealed to the old prekey before the rotation is published.
    early = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"before rotation"))

    # BR's operator rotates on disk while the node runs (what `rogatory keys rotate` does).
    config = load_config(federation.home(BR))
    now = int(time.time())
    rotated = KeyStore.open(config.keystore_path, passphrase_for(BR)).rotate_prekeys(now + 1)
    federation.records[BR] = refresh_record(config, rotated, now + 1)
    file = federation.directory_file(now)
    await br.adopt_directory(file)  # the running node picks up its new private prekey
    await fr.adopt_directory(file)

    await asyncio.sleep(max(0.0, now + 1 - time.time()))  # the new prekey's not_before
    new_prekey = fr.directory.prekey_for(BR, int(time.time()))
    assert new_prekey.id != old_prekey.id
    assert br.keystore.receiver_prekey(new_prekey.id) is not None

    late = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"after rotation"))
    for queued in (early, late):
        record = await outbound_state(fr, queued.message_id, lambda r: r.state != "queued"
                                      and r.state != "retrying")
        assert record.state == "delivered", record.last_error
    assert parse_envelope(early.envelope).header.recipient_prekey == old_prekey.id
    assert parse_envelope(late.envelope).header.recipient_prekey == new_prekey.id
    for queued, payload in ((early, b"before rotation"), (late, b"after rotation")):
        message = await br.read_message(queued.message_id)
        assert base64.b64decode(message["payload_b64"]) == payload


async def test_archive_stays_readable_after_the_prekey_is_destroyed(
    federation: Federation,
) -> None:
    fr, br = federation.nodes[FR], federation.nodes[BR]
    old_prekey = fr.directory.prekey_for(BR, int(time.time()))
    sent = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"kept in the archive"))
    record = await outbound_state(fr, sent.message_id, lambda r: r.state == "delivered")
    assert record.receipt is not None

    # Far past the old prekey's grace period: the private half is destroyed on disk.
    config = load_config(federation.home(BR))
    later = old_prekey.not_after + 30 * 24 * 3600
    store = KeyStore.open(config.keystore_path, passphrase_for(BR))
    store.rotate_prekeys(later)
    br.reload_keys()
    assert br.keystore.receiver_prekey(old_prekey.id) is None

    message = await br.read_message(sent.message_id)
    assert base64.b64decode(message["payload_b64"]) == b"kept in the archive"
    # A new envelope sealed to the destroyed prekey can no longer be opened by anyone.
    fresh = await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"too late"))
    refused = await outbound_state(fr, fresh.message_id, lambda r: r.state == "refused")
    assert refused.last_error == "envelope.prekey_unknown"
