"""The box's phone secret and the one phone it remembers, kept in the state directory (mode 0600).

The secret is 32 random bytes with a 16-bit key id; the rep's app learns both from a QR code
(``parallax pair --show-qr``). Rotating it makes a new secret under the next key id: a phone
holding the old one is refused until it scans the new code. Files are written atomically
(temp file in the same folder, then rename) and created 0600 from the start, so the secret is
never readable by others even for a moment.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.atomic import storage_reason, write_text_atomic
from firmware.errors import PhoneLinkError, StorageError
from firmware.phone.protocol import SECRET_LEN, VERSION

SECRET_FILE = "phone-secret.json"
BOND_FILE = "phone-bond.json"
QR_SCHEME = "parallax-pair"


@dataclass(frozen=True)
class BoxSecret:
    key_id: int
    secret: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.key_id <= 0xFFFF:
            raise ValueError("key_id must be within 1..65535")
        if len(self.secret) != SECRET_LEN:
            raise ValueError(f"secret must be {SECRET_LEN} bytes")

    def qr_payload(self, box_name: str) -> str:
        """What the QR code holds; the app parses it as described in docs/phone-protocol.md."""
        s = base64.urlsafe_b64encode(self.secret).rstrip(b"=").decode("ascii")
        return f"{QR_SCHEME}:v{VERSION}?k={self.key_id}&s={s}&n={_url_safe(box_name)}"

    def fingerprint(self) -> str:
        """A short, non-secret name for the key (status output): SHA-256 of the secret, 8 hex."""
        import hashlib

        return hashlib.sha256(b"parallax-phone key id\0" + self.secret).hexdigest()[:8]


@dataclass(frozen=True)
class BondedPhone:
    address: str
    name: str | None = None


def _url_safe(text: str) -> str:
    from urllib.parse import quote

    return quote(text[:32], safe="")


def parse_qr_payload(payload: str) -> tuple[BoxSecret, str]:
    """Phone side (and tests): the secret and box name from a QR payload."""
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(payload)
    if parts.scheme != QR_SCHEME or parts.path != f"v{VERSION}":
        raise PhoneLinkError(f"not a v{VERSION} pairing code")
    q = parse_qs(parts.query)
    try:
        key_id = int(q["k"][0])
        raw = q["s"][0]
        secret = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        return BoxSecret(key_id, secret), unquote(q.get("n", [""])[0])
    except (KeyError, ValueError, IndexError) as exc:
        raise PhoneLinkError(f"pairing code is damaged: {exc}") from None


class PairingStore:
    """The two small files under ``state_dir``. Methods may block on disk: call off the audio path."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir

    def secret(self) -> BoxSecret | None:
        raw = self._read(SECRET_FILE)
        if raw is None:
            return None
        try:
            return BoxSecret(int(raw["key_id"]), bytes.fromhex(raw["secret"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise PhoneLinkError(f"{self.dir / SECRET_FILE} is damaged ({exc}); run `parallax pair --rotate`") from None

    def ensure_secret(self) -> BoxSecret:
        """The current secret, made on first use."""
        current = self.secret()
        return current if current is not None else self._store_secret(1)

    def rotate(self) -> BoxSecret:
        """A new secret under the next key id; the old one stops working at once."""
        current = self.secret()
        key_id = 1 if current is None or current.key_id >= 0xFFFF else current.key_id + 1
        return self._store_secret(key_id)

    def bonded(self) -> BondedPhone | None:
        raw = self._read(BOND_FILE)
        if raw is None:
            return None
        address = raw.get("address")
        if not isinstance(address, str) or not address:
            raise PhoneLinkError(f"{self.dir / BOND_FILE} is damaged; pair the phone again")
        name = raw.get("name")
        return BondedPhone(address, name if isinstance(name, str) else None)

    def remember(self, phone: BondedPhone) -> None:
        self._write(BOND_FILE, {"address": phone.address, "name": phone.name})

    def forget(self) -> None:
        try:
            (self.dir / BOND_FILE).unlink()
        except FileNotFoundError:
            pass

    def _store_secret(self, key_id: int) -> BoxSecret:
        secret = BoxSecret(key_id, os.urandom(SECRET_LEN))
        self._write(SECRET_FILE, {"key_id": secret.key_id, "secret": secret.secret.hex()})
        return secret

    def _read(self, name: str) -> dict[str, Any] | None:
        path = self.dir / name
        try:
            raw = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise PhoneLinkError(f"cannot read {path}: {exc}") from None
        if not isinstance(raw, dict):
            raise PhoneLinkError(f"{path} is damaged: expected an object")
        return raw

    def _write(self, name: str, data: dict[str, Any]) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.dir / name, json.dumps(data), perms=0o600)
        except OSError as exc:
            raise PhoneLinkError(f"cannot write {self.dir / name}: {exc}") from None
        except StorageError as exc:
            raise PhoneLinkError(f"cannot write {self.dir / name}: {storage_reason(exc)}") from None
