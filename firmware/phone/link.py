"""The coach's phone sink over Bluetooth LE: bleak on its own asyncio loop thread.

Threads: :meth:`PhoneLink.send` is called on the coach's thread and returns at once (the event is
filtered through the phone allowlist and handed to the link's loop with
:class:`firmware.handoff.ThreadToAsync`, which drops and counts rather than waits).
:meth:`enter_pairing`, :meth:`status` and :meth:`stop` may be called from any thread. Everything
else runs on the link's own thread: scanning, connecting, pairing, the HELLO, writes, acks,
retries and the phone's controls, which go to ``control`` (``CoachBox.control``, thread-safe and
never blocking) with source "phone".

The link remembers one phone (``PairingStore``). Without one it waits for pairing mode; with one
it keeps trying to reach it with capped exponential backoff, through BlueZ restarts and an
adapter that comes and goes. Its state (connected, bonded phone, last error, counters) is for
``parallax status`` and the fleet's health counters; it never holds frame contents.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.errors import PhoneLinkError, StorageError
from firmware.handoff import ThreadToAsync
from firmware.phone import protocol as p
from firmware.phone.config import PhoneConfig
from firmware.phone.secret import BondedPhone, BoxSecret, PairingStore

log = logging.getLogger(__name__)

# While idle, how often a session checks that bluetoothd is still the one it connected through.
LIVENESS_S = 2.0
# In the state directory: the running link's state for `parallax pair --status`.
STATUS_FILE = "phone-status.json"

COUNTERS = (
    "sent", "acked", "retried", "connects", "disconnects", "link_errors", "pairings", "wrong_phone",
    "dropped_expired", "dropped_overflow", "dropped_handoff", "dropped_too_large", "dropped_unacked",
    "rejected_malformed", "rejected_unauthenticated", "rejected_stale", "rejected_refused",
    "controls_applied", "controls_rejected",
)  # fmt: skip

# The fleet sees the last error as one of these codes (``phone_last_error`` in :meth:`PhoneLink.health`),
# never its text, which can name the phone's address. Fixed: docs/fleet-protocol.md lists them.
ERROR_CODES = {"none": 0, "not_in_range": 1, "no_answer": 2, "protocol": 3, "bluetooth": 4, "timeout": 5, "other": 9}


class _Fault(PhoneLinkError):
    """A link failure that knows its fleet category (a key of :data:`ERROR_CODES`)."""

    def __init__(self, message: str, category: str) -> None:
        super().__init__(message)
        self.category = category


def error_category(exc: BaseException) -> str:
    """The coarse category of a link failure, for the fleet (a key of :data:`ERROR_CODES`)."""
    category = getattr(exc, "category", None)
    if isinstance(category, str) and category in ERROR_CODES:
        return category
    if isinstance(exc, p.ProtocolError):
        return "protocol"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    module = type(exc).__module__ or ""
    if module.startswith(("bleak", "dbus_fast")) or isinstance(exc, OSError):
        return "bluetooth"  # BlueZ, D-Bus or the adapter
    return "other"


@dataclass
class _Out:
    payload: bytes
    kind: str
    handed_at: float
    expires_at: float | None


@dataclass
class _Flight:
    out: _Out
    frame: bytes
    sent_at: float
    writes: int


class _SessionOver(Exception):
    """The session ended (phone gone, broken, or too many bad frames): reconnect."""

    def __init__(self, message: str = "", category: str = "other") -> None:
        super().__init__(message)
        self.category = category


class PhoneLink:
    """Implements ``PhoneSink``. ``start()`` once, ``stop()`` once (joins the thread)."""

    def __init__(
        self,
        config: PhoneConfig,
        store: PairingStore,
        *,
        control: Callable[[Any], Any] | None = None,
        on_pairing: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        status_path: Path | None = None,
    ) -> None:
        """``status_path``: where the link keeps :meth:`status` as JSON for ``parallax pair --status``
        (rewritten atomically at most once a second, when it changed)."""
        self.config = config
        self._status_path = status_path
        self.store = store
        self._control = control
        self._on_pairing = on_pairing
        self._clock = clock
        self._lock = threading.Lock()
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._connected = False
        self._pairing = False
        self._last_error: str | None = None
        self._last_error_code = 0
        self._bonded: BondedPhone | None = None
        self._latencies_ms: collections.deque[float] = collections.deque(maxlen=2000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: ThreadToAsync[tuple[float, dict[str, Any]]] | None = None
        self._thread: threading.Thread | None = None
        self._main_task: asyncio.Task[None] | None = None
        self._queue: collections.deque[_Out] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._pair_requested = False
        self._tag = 0
        self._client: Any = None

    # -- any thread ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the phone link is already started")
        self._loop = asyncio.new_event_loop()
        self._inbox = ThreadToAsync(self._loop, maxsize=64)
        self._thread = threading.Thread(target=self._thread_main, name="phone-link", daemon=True)
        self._thread.start()

    def send(self, event: Any) -> None:
        """PhoneSink: called on the coach's thread; never blocks. Events the phone may not see stay."""
        from firmware.outward import outward

        wire = outward("phone", event)
        if wire is None or self._inbox is None:
            return
        self._inbox.post((self._clock(), wire))

    def enter_pairing(self) -> None:
        """Pairing mode for ``pairing_window_s`` (the 5 s button press, ``parallax pair``)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._request_pairing)

    def status(self) -> dict[str, Any]:
        """A snapshot for ``parallax status`` and fleet health: never frame contents."""
        with self._lock:
            counters = dict(self._counters)
            if self._inbox is not None:
                counters["dropped_handoff"] = self._inbox.dropped
            return {
                "connected": self._connected,
                "pairing": self._pairing,
                "bonded_phone": self._bonded.address if self._bonded else None,
                "last_error": self._last_error,
                "last_error_code": self._last_error_code,
                "queued": len(self._queue),
                "counters": counters,
            }

    def health(self) -> dict[str, bool | int]:
        """For the fleet's health counters: numbers and flags only (no address, no error text; the
        last error as its :data:`ERROR_CODES` code, 0 when the link is up or never failed)."""
        status = self.status()
        out: dict[str, bool | int] = {
            "phone_connected": bool(status["connected"]),
            "phone_bonded": status["bonded_phone"] is not None,
            "phone_pairing": bool(status["pairing"]),
            "phone_queued": int(status["queued"]),
            "phone_last_error": int(status["last_error_code"]),
        }
        out.update({f"phone_{name}": int(value) for name, value in status["counters"].items()})
        return out

    def ack_latencies_ms(self) -> list[float]:
        """Hand-in to acknowledgement of each acknowledged frame, newest last (benchmarks)."""
        with self._lock:
            return list(self._latencies_ms)

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._cancel_main)
        thread.join(timeout)
        if thread.is_alive():
            raise PhoneLinkError("the phone link thread did not stop")
        self._thread = None

    # -- the link's thread -----------------------------------------------------------------------

    def _thread_main(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            self._main_task = loop.create_task(self._main())
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._main_task)
            loop.run_until_complete(self._cleanup())
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def _cancel_main(self) -> None:
        if self._main_task is not None:
            self._main_task.cancel()

    def _request_pairing(self) -> None:
        self._pair_requested = True
        if self._wake is not None:
            self._wake.set()

    async def _cleanup(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2.0)
        self._agent.close()
        self._set(connected=False, pairing=False)

    async def _main(self) -> None:
        from firmware.phone.agent import PairingAgent

        self._wake = asyncio.Event()
        self._agent = PairingAgent()
        pump = asyncio.get_running_loop().create_task(self._pump())
        if self._status_path is not None:
            writer = asyncio.get_running_loop().create_task(self._write_status(self._status_path))
        backoff = self.config.backoff_initial_s
        try:
            while True:
                try:
                    if self._pair_requested:
                        self._pair_requested = False
                        await self._pairing_mode()
                        backoff = self.config.backoff_initial_s
                        continue
                    bonded = await asyncio.to_thread(self.store.bonded)
                    self._set(bonded=bonded)
                    if bonded is None:
                        await self._wait_wake(None)
                        continue
                    served = await self._connect_and_serve(bonded)
                    if served:
                        backoff = self.config.backoff_initial_s
                        continue
                except (asyncio.CancelledError, KeyboardInterrupt):
                    raise
                except Exception as exc:  # noqa: BLE001 - any BLE/D-Bus/OS failure: note it, back off, retry
                    self._error(exc)
                await self._wait_wake(backoff)
                backoff = min(backoff * self.config.backoff_factor, self.config.backoff_max_s)
        finally:
            pump.cancel()
            if self._status_path is not None:
                writer.cancel()

    async def _write_status(self, path: Path) -> None:
        last: dict[str, Any] | None = None
        while True:
            now = self.status()
            if now != last:
                try:
                    await asyncio.to_thread(write_status, path, now)
                    last = now
                except (OSError, StorageError) as exc:
                    log.warning("cannot write %s: %s", path, exc)
            await asyncio.sleep(1.0)

    async def _wait_wake(self, timeout: float | None) -> None:
        """Sleep until ``timeout`` or a pairing request (new events do not cut a backoff short);
        tips that expire meanwhile leave the queue on time, so the counters tell the truth."""
        assert self._wake is not None
        deadline = None if timeout is None else self._clock() + timeout
        while not self._pair_requested:
            now = self._clock()
            self._drop_expired({}, now)
            left = None if deadline is None else deadline - now
            if left is not None and left <= 0:
                return
            expiries = [o.expires_at - now for o in self._queue if o.expires_at is not None]
            if expiries:
                left = min(expiries) if left is None else min(left, min(expiries))
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(left, 0.0) if left is not None else None)

    async def _pump(self) -> None:
        """Moves handed-in events into the bounded outgoing queue (status coalesced, oldest tip dropped)."""
        assert self._inbox is not None and self._wake is not None
        while True:
            handed_at, wire = await self._inbox.get()
            kind = str(wire.get("type"))
            try:
                payload = p.event_payload(wire)
            except (TypeError, ValueError):
                self._count("dropped_too_large")
                continue
            if len(payload) + p.HEADER.size + p.TAG_LEN > p.MAX_CHUNKS * (p.MIN_CHUNK - p.CHUNK_HEADER):
                self._count("dropped_too_large")  # could not cross a 20-byte link
                continue
            ttl = wire.get("ttl_s")
            expires = handed_at + float(ttl) if kind == "tip" and isinstance(ttl, (int, float)) else None
            if kind == "status":
                self._queue = collections.deque(o for o in self._queue if o.kind != "status")
            if len(self._queue) >= self.config.queue_max:
                victim = next((o for o in self._queue if o.kind == "tip"), self._queue[0])
                self._queue.remove(victim)
                self._count("dropped_overflow")
            self._queue.append(_Out(payload, kind, handed_at, expires))
            self._wake.set()

    # -- one connection --------------------------------------------------------------------------

    async def _scan(self, match: Callable[[Any, Any], bool], service_filter: bool) -> list[Any]:
        from bleak import BleakScanner

        found: dict[str, Any] = {}
        done = asyncio.Event()

        def seen(device: Any, adv: Any) -> None:
            if match(device, adv) and device.address not in found:
                found[device.address] = device
                if not service_filter:
                    done.set()

        kwargs: dict[str, Any] = {"service_uuids": [p.SERVICE_UUID]} if service_filter else {}
        if self.config.adapter:
            kwargs["bluez"] = {"adapter": self.config.adapter}
        scanner = BleakScanner(seen, **kwargs)
        await scanner.start()
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), self.config.scan_s)
        finally:
            with contextlib.suppress(Exception):
                await scanner.stop()
        return list(found.values())

    async def _connect(self, device: Any) -> Any:
        from bleak import BleakClient

        lost = asyncio.Event()
        client = BleakClient(device, disconnected_callback=lambda _c: self._lost(lost), timeout=self.config.connect_timeout_s)
        client._parallax_lost = lost  # noqa: SLF001 - the session waits on it
        await client.connect()
        self._client = client
        return client

    def _lost(self, lost: asyncio.Event) -> None:
        lost.set()
        if self._wake is not None:
            self._wake.set()

    async def _disconnect(self, client: Any) -> None:
        self._client = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 3.0)

    async def _connect_and_serve(self, bonded: BondedPhone) -> bool:
        """True once a session ran (so the backoff restarts); raises on failures to reach the phone."""
        secret = await asyncio.to_thread(self.store.ensure_secret)
        await self._agent.ensure()
        want = bonded.address.upper()
        devices = await self._scan(lambda d, _a: str(d.address).upper() == want, service_filter=False)
        if not devices:
            raise _Fault(f"bonded phone {bonded.address} not in range", "not_in_range")
        client = await self._connect(devices[0])
        try:
            notes: asyncio.Queue[bytes] = asyncio.Queue()
            session, payload = await self._handshake(client, secret, notes)
            self._count("connects")
            self._set(connected=True, error=None)
            try:
                await self._serve(client, session, payload, notes)
            except _SessionOver as over:
                if str(over):
                    self._error(over)
            return True
        finally:
            if self._connected:
                self._count("disconnects")
            self._set(connected=False)
            await self._disconnect(client)

    async def _handshake(self, client: Any, secret: BoxSecret, notes: asyncio.Queue[bytes]) -> tuple[p.Session, int]:
        reassembler = p.Reassembler()

        def on_note(_char: Any, data: bytearray) -> None:
            notes.put_nowait(bytes(data))
            if self._wake is not None:
                self._wake.set()

        await client.start_notify(p.OUTBOX_UUID, on_note)
        inbox = client.services.get_characteristic(p.INBOX_UUID)
        if inbox is None:
            raise _Fault("the phone offers no Parallax inbox characteristic", "protocol")
        payload = max(p.MIN_CHUNK, min(int(inbox.max_write_without_response_size), 512))
        box_nonce = p.new_nonce()
        await self._write(client, p.box_hello(secret.key_id, box_nonce), payload)

        async def reply() -> bytes:
            while True:
                data = await notes.get()
                try:
                    frame = reassembler.push(data)
                except p.ProtocolError as exc:
                    self._count("rejected_" + exc.reason)
                    continue
                if frame is not None:
                    return frame

        try:
            frame = await asyncio.wait_for(reply(), self.config.hello_timeout_s)
        except asyncio.TimeoutError:
            raise _Fault("the phone did not answer HELLO", "no_answer") from None
        try:
            session = p.Session.box_side(secret.secret, secret.key_id, box_nonce, frame)
        except p.ProtocolError as exc:
            self._count("rejected_" + exc.reason)
            raise
        client._parallax_reassembler = reassembler  # noqa: SLF001
        return session, payload

    async def _write(self, client: Any, frame: bytes, payload: int) -> None:
        self._tag = (self._tag + 1) % 256
        for piece in p.chunk(frame, payload, self._tag):
            await client.write_gatt_char(p.INBOX_UUID, piece, response=True)

    async def _serve(self, client: Any, session: p.Session, payload: int, notes: asyncio.Queue[bytes]) -> None:
        assert self._wake is not None
        cfg = self.config
        lost: asyncio.Event = client._parallax_lost  # noqa: SLF001
        reassembler: p.Reassembler = client._parallax_reassembler  # noqa: SLF001
        flights: dict[int, _Flight] = {}
        bad = 0
        checked = self._clock()
        try:
            while True:
                self._wake.clear()
                if lost.is_set() or not client.is_connected:
                    raise _SessionOver("")
                if self._pair_requested:
                    raise _SessionOver("")  # pairing mode takes the radio
                now = self._clock()
                self._drop_expired(flights, now)
                # the phone's frames first: acks free the window
                while not notes.empty():
                    data = notes.get_nowait()
                    try:
                        frame = reassembler.push(data)
                        if frame is None:
                            continue
                        opened = session.open(frame)
                    except p.ProtocolError as exc:
                        self._count("rejected_" + exc.reason)
                        if exc.reason == "unauthenticated":
                            bad += 1
                            if bad >= cfg.max_bad_frames:
                                raise _SessionOver("too many unauthenticated frames", "protocol") from None
                        continue
                    if opened.kind is p.Kind.ACK:
                        flight = flights.pop(opened.acked_seq, None)
                        if flight is not None:
                            self._count("acked")
                            with self._lock:
                                self._latencies_ms.append((self._clock() - flight.out.handed_at) * 1000.0)
                        continue
                    if opened.duplicate:
                        self._count("rejected_stale")
                    else:
                        self._apply_control(opened.plaintext)
                    await self._write(client, session.ack(opened.seq), payload)
                # new frames while the window has room
                while self._queue and len(flights) < cfg.window:
                    out = self._queue.popleft()
                    frame = session.seal(p.Kind.DATA, out.payload)
                    flights[session.next_seq - 1] = _Flight(out, frame, self._clock(), 1)
                    await self._write(client, frame, payload)
                    self._count("sent")
                    if not notes.empty():
                        break  # acks arrived meanwhile: take them first (the loop comes back here)
                # retries
                now = self._clock()
                for flight in list(flights.values()):
                    if now - flight.sent_at >= cfg.ack_timeout_s:
                        if flight.writes >= cfg.max_writes:
                            raise _SessionOver("the phone acknowledges nothing", "no_answer")
                        flight.writes += 1
                        flight.sent_at = now
                        self._count("retried")
                        await self._write(client, flight.frame, payload)
                if not notes.empty():
                    continue
                waits = [f.sent_at + cfg.ack_timeout_s - now for f in flights.values()]
                waits += [o.expires_at - now for o in self._queue if o.expires_at is not None]
                waits.append(LIVENESS_S)
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, min(waits)))
                except asyncio.TimeoutError:
                    if self._clock() - checked >= LIVENESS_S:
                        checked = self._clock()
                        if await self._agent.bluez_changed():
                            raise _SessionOver("BlueZ restarted under the connection", "bluetooth") from None
        finally:
            # unacknowledged frames go out again, re-encrypted, in the next session
            for seq in sorted(flights, reverse=True):
                self._queue.appendleft(flights[seq].out)

    def _drop_expired(self, flights: dict[int, _Flight], now: float) -> None:
        for seq, flight in list(flights.items()):
            if flight.out.expires_at is not None and now >= flight.out.expires_at:
                del flights[seq]
                self._count("dropped_expired")
        if any(o.expires_at is not None and now >= o.expires_at for o in self._queue):
            kept = collections.deque(o for o in self._queue if o.expires_at is None or now < o.expires_at)
            self._count("dropped_expired", len(self._queue) - len(kept))
            self._queue = kept

    def _apply_control(self, plaintext: bytes) -> None:
        from firmware.errors import EventSchemaError
        from firmware.events import Control, parse_event

        try:
            event = parse_event(plaintext)
        except EventSchemaError:
            self._count("controls_rejected")
            return
        if not isinstance(event, Control) or event.source != "phone":
            self._count("controls_rejected")
            return
        if self._control is None:
            self._count("controls_rejected")
            return
        try:
            self._control(event)
        except Exception:  # noqa: BLE001 - the coach's problem must not take the radio down
            log.exception("phone control failed")
            self._count("controls_rejected")
            return
        self._count("controls_applied")

    # -- pairing ---------------------------------------------------------------------------------

    async def _pairing_mode(self) -> None:
        secret = await asyncio.to_thread(self.store.ensure_secret)
        deadline = self._clock() + self.config.pairing_window_s
        refused: set[str] = set()
        self._set(pairing=True)
        if self._on_pairing:
            self._on_pairing(True)
        try:
            while self._clock() < deadline:
                try:
                    await self._agent.ensure()
                    for device in await self._scan(lambda d, _a: str(d.address) not in refused, service_filter=True):
                        if await self._try_pair(device, secret):
                            return
                        refused.add(str(device.address))
                except Exception as exc:  # noqa: BLE001
                    self._error(exc)
                    await asyncio.sleep(self.config.backoff_initial_s)
        finally:
            self._agent.allowed = None
            self._set(pairing=False)
            if self._on_pairing:
                self._on_pairing(False)

    async def _try_pair(self, device: Any, secret: BoxSecret) -> bool:
        client = await self._connect(device)
        try:
            self._agent.allowed = device.details.get("path") if isinstance(device.details, dict) else None
            await client.pair()
            self._agent.allowed = None
            try:
                await self._handshake(client, secret, asyncio.Queue())
            except (p.ProtocolError, PhoneLinkError) as exc:
                self._count("wrong_phone")
                log.info("pairing: %s is not this box's phone (%s)", device.address, getattr(exc, "reason", exc))
                with contextlib.suppress(Exception):
                    await client.unpair()
                return False
            phone = BondedPhone(str(client.address), device.name)
            await asyncio.to_thread(self.store.remember, phone)
            self._count("pairings")
            self._set(bonded=phone)
            log.info("pairing: bonded with %s", phone.address)
            return True
        finally:
            self._agent.allowed = None
            await self._disconnect(client)

    # -- state -----------------------------------------------------------------------------------

    _UNSET: Any = object()

    def _set(self, *, connected: Any = _UNSET, pairing: Any = _UNSET, bonded: Any = _UNSET, error: Any = _UNSET) -> None:
        with self._lock:
            if connected is not self._UNSET:
                self._connected = connected
            if pairing is not self._UNSET:
                self._pairing = pairing
            if bonded is not self._UNSET:
                self._bonded = bonded
            if error is not self._UNSET:
                self._last_error = error
                if error is None:
                    self._last_error_code = 0

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + n

    def _error(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"[:200]
        log.info("phone link: %s", text)
        with self._lock:
            self._counters["link_errors"] += 1
            self._last_error = text
            self._last_error_code = ERROR_CODES[error_category(exc)]


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Atomically (temp file + rename, mode 0600): the link's state for other processes.

    Raises ``OSError`` (folder) or :class:`~firmware.errors.StorageError` (the write)."""
    from firmware.atomic import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({**status, "written_at": time.time()}), perms=0o600)


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        raw = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PhoneLinkError(f"cannot read {path}: {exc}") from None
    return raw if isinstance(raw, dict) else None


def attach(link: PhoneLink, box: Any, pair_hold_s: float) -> None:
    """Wire a started-or-not link to a ``CoachBox``: the phone's controls go through
    ``box.control``, the button's long press enters pairing mode, and the LED blinks blue
    while it lasts (the box's previous state comes back after)."""
    link._control = box.control  # set once, before start()
    before: list[Any] = []

    def pairing(active: bool) -> None:
        cues = getattr(box, "cues", None)
        if cues is None:
            return
        if active:
            before[:] = [cues.state]
            cues.status("pairing")
        else:
            cues.status(before[0] if before else "idle")

    link._on_pairing = pairing
    button = getattr(box, "button", None)
    if button is not None:
        button.on_long_press(link.enter_pairing, pair_hold_s)
