"""Signed envelopes: Ed25519 over the exact payload bytes (docs/fleet-protocol.md, "Signed envelope").

The box verifies before it parses, against the admin keys pinned in its configuration; the admin
side signs. ``cryptography`` does the cryptography; this module only frames it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from firmware.atomic import atomic_write
from firmware.errors import FleetError, InputError

MAX_ENVELOPE_BYTES = 1 << 20


class Rejected(FleetError):
    """An offer or command was refused; ``reason`` is what the box publishes."""

    def __init__(self, reason: str, update_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.update_id = update_id


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_line(public_raw: bytes) -> str:
    """How a key is written in ``[fleet] admin_keys``."""
    return "ed25519:" + public_raw.hex()


class PinnedKeys:
    """The admin public keys a box trusts, by key id."""

    def __init__(self, lines: Iterable[str]) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        self._keys: dict[str, Any] = {}
        for line in lines:
            raw = bytes.fromhex(line.split(":", 1)[1])
            self._keys[key_id(raw)] = Ed25519PublicKey.from_public_bytes(raw)

    def __len__(self) -> int:
        return len(self._keys)

    def open(self, envelope: bytes) -> dict[str, Any]:
        """Verify ``envelope`` and return its payload object; raise :class:`Rejected` otherwise."""
        from cryptography.exceptions import InvalidSignature

        if len(envelope) > MAX_ENVELOPE_BYTES:
            raise Rejected("malformed: envelope larger than 1 MiB")
        try:
            outer = json.loads(envelope)
        except (ValueError, UnicodeDecodeError):
            raise Rejected("malformed: not JSON") from None
        if not isinstance(outer, dict) or outer.get("type") != "signed" or outer.get("alg") != "ed25519":
            raise Rejected("malformed: not a signed ed25519 envelope")
        kid, payload_b64, sig_b64 = outer.get("key_id"), outer.get("payload"), outer.get("sig")
        if not all(isinstance(x, str) for x in (kid, payload_b64, sig_b64)):
            raise Rejected("malformed: key_id, payload and sig must be strings")
        try:
            payload = base64.b64decode(payload_b64, validate=True)
            sig = base64.b64decode(sig_b64, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected("malformed: payload or sig is not base64") from None
        claimed = _claimed_id(payload)
        key = self._keys.get(kid)
        if key is None:
            raise Rejected(f"unknown key: {str(kid)[:16]}", claimed)
        try:
            key.verify(sig, payload)
        except InvalidSignature:
            raise Rejected("bad signature", claimed) from None
        try:
            obj = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise Rejected("malformed: signed payload is not JSON") from None
        if not isinstance(obj, dict):
            raise Rejected("malformed: signed payload is not an object")
        return obj


def _claimed_id(payload: bytes) -> str | None:
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(obj, dict):
        value = obj.get("update_id", obj.get("command_id"))
        if isinstance(value, str) and len(value) <= 64:
            return value
    return None


class SigningKey:
    """An admin's private key (PEM, PKCS#8, unencrypted, mode 0600)."""

    def __init__(self, private: Any) -> None:
        from cryptography.hazmat.primitives import serialization

        self._private = private
        self.public_raw: bytes = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id(self.public_raw)

    @classmethod
    def generate(cls) -> SigningKey:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except FileNotFoundError:
            raise InputError(f"signing key not found: {path}") from None
        except (ValueError, TypeError, OSError) as exc:
            raise InputError(f"signing key {path} is unreadable: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InputError(f"signing key {path} is not an Ed25519 key")
        return cls(key)

    def save(self, path: Path) -> None:
        from cryptography.hazmat.primitives import serialization

        data = self._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        with atomic_write(Path(path), "wb", perms=0o600) as f:  # a private key: 0600 from the first byte
            f.write(data)

    @property
    def public_line(self) -> str:
        return public_line(self.public_raw)

    def seal(self, obj: dict[str, Any]) -> bytes:
        payload = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
        return self.seal_bytes(payload)

    def seal_bytes(self, payload: bytes) -> bytes:
        envelope = {
            "type": "signed",
            "v": 1,
            "alg": "ed25519",
            "key_id": self.key_id,
            "payload": base64.b64encode(payload).decode(),
            "sig": base64.b64encode(self._private.sign(payload)).decode(),
        }
        return json.dumps(envelope, separators=(",", ":")).encode()
