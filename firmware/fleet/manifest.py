"""Update offers and commands as the box reads them: strict types, target, expiry, versions.

Everything here runs after the signature has been verified (:mod:`firmware.fleet.signing`), but is
still checked field by field: a correctly signed offer can be wrong, and a wrong one must end in a
clear ``rejected`` rather than an exception in the agent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from firmware.fleet.signing import Rejected

Kind = Literal["model", "playbook"]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9}){0,3}$")
_TOPIC = re.compile(r"^parallax/v1/(group|box)/[A-Za-z0-9][A-Za-z0-9_.-]{0,62}/artifact/[0-9a-f]{64}$")
MAX_ARTIFACT_BYTES = 4 << 30
MIN_CHUNK, MAX_CHUNK = 4096, 1 << 21


def version_key(version: str) -> tuple[int, ...]:
    """Dotted numbers compared numerically: 1.10.0 > 1.9.3."""
    return tuple(int(part) for part in version.split("."))


def is_version(value: Any) -> bool:
    return isinstance(value, str) and bool(_VERSION.match(value))


@dataclass(frozen=True)
class Artifact:
    kind: Kind
    name: str
    version: str
    size: int
    sha256: str
    chunk_bytes: int
    chunk_sha256: tuple[str, ...]
    topic: str | None
    url: str | None

    @property
    def chunks(self) -> int:
        return len(self.chunk_sha256)

    def chunk_range(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_bytes
        return start, min(self.size, start + self.chunk_bytes)


@dataclass(frozen=True)
class Target:
    group: str | None
    boxes: tuple[str, ...]

    def includes(self, box_id: str, group: str) -> bool:
        return (self.group is not None and self.group == group) or box_id in self.boxes


@dataclass(frozen=True)
class Offer:
    update_id: str
    issued_at: float
    expires_at: float
    target: Target
    artifacts: tuple[Artifact, ...]


@dataclass(frozen=True)
class Command:
    command_id: str
    issued_at: float
    expires_at: float
    target: Target
    action: Literal["rollback"]
    name: str


def _get(obj: dict[str, Any], key: str, types: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, types) or isinstance(value, bool):
        raise Rejected(f"malformed: {what}.{key} missing or of the wrong type", obj.get("update_id") if isinstance(obj.get("update_id"), str) else None)
    return value


def _target(raw: Any) -> Target:
    if not isinstance(raw, dict):
        raise Rejected("malformed: target must be an object")
    group = raw.get("group")
    boxes = raw.get("boxes", [])
    if group is not None and (not isinstance(group, str) or not _ID.match(group)):
        raise Rejected("malformed: target.group")
    if not isinstance(boxes, list) or not all(isinstance(b, str) and _ID.match(b) for b in boxes) or len(boxes) > 10000:
        raise Rejected("malformed: target.boxes")
    if group is None and not boxes:
        raise Rejected("malformed: target names no group and no box")
    return Target(group, tuple(boxes))


def _times(obj: dict[str, Any], what: str) -> tuple[float, float]:
    issued = float(_get(obj, "issued_at", (int, float), what))
    expires = float(_get(obj, "expires_at", (int, float), what))
    if not (0 < issued < 1e11 and 0 < expires < 1e11):
        raise Rejected(f"malformed: {what} times out of range")
    return issued, expires


def _artifact(raw: Any, i: int) -> Artifact:
    what = f"artifacts[{i}]"
    if not isinstance(raw, dict):
        raise Rejected(f"malformed: {what} must be an object")
    kind = _get(raw, "kind", str, what)
    if kind not in ("model", "playbook"):
        raise Rejected(f"malformed: {what}.kind must be model or playbook")
    name = _get(raw, "name", str, what)
    if not _NAME.match(name) or (kind == "playbook") != (name == "playbook"):
        raise Rejected(f"malformed: {what}.name {name[:40]!r} (a playbook is named 'playbook', a model anything else)")
    version = _get(raw, "version", str, what)
    if not _VERSION.match(version):
        raise Rejected(f"malformed: {what}.version must be dotted numbers")
    size = _get(raw, "size", int, what)
    chunk_bytes = _get(raw, "chunk_bytes", int, what)
    if not 0 < size <= MAX_ARTIFACT_BYTES or not MIN_CHUNK <= chunk_bytes <= MAX_CHUNK:
        raise Rejected(f"malformed: {what} size or chunk_bytes out of range")
    sha = _get(raw, "sha256", str, what)
    hashes = _get(raw, "chunk_sha256", list, what)
    if not _HEX64.match(sha) or not all(isinstance(h, str) and _HEX64.match(h) for h in hashes):
        raise Rejected(f"malformed: {what} hashes must be 64 lowercase hex digits")
    if len(hashes) != -(-size // chunk_bytes):
        raise Rejected(f"malformed: {what} lists {len(hashes)} chunk hashes for {-(-size // chunk_bytes)} chunks")
    topic, url = raw.get("topic"), raw.get("url")
    if topic is not None and (not isinstance(topic, str) or not _TOPIC.match(topic) or not topic.endswith(sha)):
        raise Rejected(f"malformed: {what}.topic")
    if url is not None and (not isinstance(url, str) or not url.startswith("https://") or len(url) > 2048):
        raise Rejected(f"malformed: {what}.url must be an https:// URL")
    if topic is None and url is None:
        raise Rejected(f"malformed: {what} has neither a topic nor a url")
    return Artifact(kind, name, version, size, sha, chunk_bytes, tuple(hashes), topic, url)


def parse_offer(obj: dict[str, Any]) -> Offer:
    if obj.get("type") != "update_offer":
        raise Rejected("malformed: not an update_offer")
    update_id = _get(obj, "update_id", str, "offer")
    if not _ID.match(update_id):
        raise Rejected("malformed: offer.update_id")
    issued, expires = _times(obj, "offer")
    raw_artifacts = _get(obj, "artifacts", list, "offer")
    if not 1 <= len(raw_artifacts) <= 8:
        raise Rejected("malformed: an offer carries 1 to 8 artifacts", update_id)
    artifacts = tuple(_artifact(a, i) for i, a in enumerate(raw_artifacts))
    if len({a.name for a in artifacts}) != len(artifacts):
        raise Rejected("malformed: one artifact per name", update_id)
    return Offer(update_id, issued, expires, _target(obj.get("target")), artifacts)


def parse_command(obj: dict[str, Any]) -> Command:
    if obj.get("type") != "command":
        raise Rejected("malformed: not a command")
    command_id = _get(obj, "command_id", str, "command")
    if not _ID.match(command_id):
        raise Rejected("malformed: command.command_id")
    issued, expires = _times(obj, "command")
    action = _get(obj, "action", str, "command")
    if action != "rollback":
        raise Rejected(f"malformed: unknown action {action[:40]!r}")
    name = _get(obj, "name", str, "command")
    if not _NAME.match(name):
        raise Rejected("malformed: command.name")
    return Command(command_id, issued, expires, _target(obj.get("target")), "rollback", name)


def check_fresh(issued_at: float, expires_at: float, now: float, max_life_s: float) -> None:
    if expires_at - issued_at > max_life_s:
        raise Rejected(f"expired: a life of {expires_at - issued_at:.0f} s exceeds {max_life_s:.0f} s")
    if now >= expires_at:
        raise Rejected(f"expired: {now - expires_at:.0f} s ago")
