"""Invocation messages signed with the cluster's secret, so that a worker acts only on messages
a front end or worker of its own cluster published.

Whoever can reach nsqd can publish to its topics: a message naming another request's data, or
an altered copy of a real one, would otherwise be run. With ``MR_MESSAGE_SECRET`` set, every
message is published as ``TAG + HMAC-SHA256(secret, payload) + payload`` and a worker drops
(and logs) any message whose MAC does not match, before it reads anything of it. The tag is
0xc1, the one byte msgpack never uses, so a signed message is never mistaken for a bare one.
"""
from __future__ import annotations

import hashlib
import hmac

TAG = b"\xc1"
_MAC_BYTES = hashlib.sha256().digest_size


class ForgedMessage(ValueError):
    """A message without a valid MAC of this cluster's secret: never to be acted on."""


class MessageSigner:
    def __init__(self, secret: str):
        self._key = secret.encode() if secret else None

    def sign(self, payload: bytes) -> bytes:
        if self._key is None:
            return payload
        return TAG + hmac.digest(self._key, payload, hashlib.sha256) + payload

    def verified(self, body: bytes) -> bytes:
        """The payload of ``body``; ForgedMessage when it is not signed with the secret.
        Without a secret, messages are taken as they come (signed ones too)."""
        signed = body[:1] == TAG and len(body) > len(TAG) + _MAC_BYTES
        payload = body[len(TAG) + _MAC_BYTES:] if signed else body
        if self._key is None:
            return payload
        if not signed:
            raise ForgedMessage("it is not signed (MR_MESSAGE_SECRET is set here)")
        mac = body[len(TAG):len(TAG) + _MAC_BYTES]
        if not hmac.compare_digest(mac, hmac.digest(self._key, payload, hashlib.sha256)):
            raise ForgedMessage("its signature does not match this cluster's MR_MESSAGE_SECRET")
        return payload
