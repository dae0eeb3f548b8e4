"""The fleet agent: the box's MQTT link for health, versions and signed updates.

Threads, and who calls what:
- paho's network thread runs the callbacks: they only route messages into queues and (re)subscribe;
  they never block.
- the worker thread (:meth:`Agent._work`) does everything slow, one thing at a time: verifying
  offers, fetching, self-tests, staging, waiting for idle, switching, watching, rolling back.
- the telemetry thread publishes health every ``telemetry_s``.
``stop()`` sets a flag, publishes ``offline``, disconnects, and joins both threads.

The whole protocol is in docs/fleet-protocol.md.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from firmware import __version__
from firmware.errors import ConfigError, ModelError, StoreBusyError
from firmware.events import Event
from firmware.fleet.config import FleetConfig
from firmware.fleet.counters import BRIDGE_FILE, COACH_FILE, counters_dir, phone_figures, read_counters
from firmware.fleet.crashpoint import crashpoint
from firmware.fleet.journal import FleetState, Journal
from firmware.fleet.manifest import Artifact, Offer, Target, check_fresh, parse_command, parse_offer, version_key
from firmware.fleet.messages import BoxStatus, Telemetry, UpdateProgress, to_wire
from firmware.fleet.signing import PinnedKeys, Rejected
from firmware.fleet.storeadapter import Store, current_version
from firmware.fleet.sysinfo import CpuMeter, system_health
from firmware.fleet import selftest, transfer
from firmware.fleet.unpack import unpack

log = logging.getLogger(__name__)

PREFIX = "parallax/v1"
PROGRESS_EVERY_S = 0.5


def box_id_from_cert(cert_file: Path) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the box certificate {cert_file}: {exc}") from None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ConfigError(f"the box certificate {cert_file} has no CN")
    return str(names[0].value)


class Agent:
    def __init__(self, config: FleetConfig, state_dir: Path, store: Store, *, clock: Callable[[], float] = time.time, config_path: Path | None = None) -> None:
        if not config.admin_keys:
            raise ConfigError("no admin keys pinned ([fleet] admin_keys): the box could trust no update")
        self.cfg = config
        self.config_path = config_path  # the box's TOML, for the self-test's loaders
        self.state_dir = Path(state_dir)
        self.box_id = config.box_id or box_id_from_cert(config.cert_file)
        self.group = config.group
        self.keys = PinnedKeys(config.admin_keys)
        self.store: Store = store  # the coach's store (paths.models_dir): the agent switches what the coach loads
        self.folder = self.state_dir / "fleet"
        self.state = FleetState(self.folder)
        self.journal = Journal(self.folder)
        self.clock = clock
        box = f"{PREFIX}/box/{self.box_id}"
        self.t_status, self.t_telemetry, self.t_progress = f"{box}/status", f"{box}/telemetry", f"{box}/progress"
        self.offer_topics = [f"{box}/offer"] + ([f"{PREFIX}/group/{self.group}/offer"] if self.group else [])
        self.cmd_topics = [f"{box}/cmd"] + ([f"{PREFIX}/group/{self.group}/cmd"] if self.group else [])
        self._jobs: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=10000)
        self._fetch_prefix: str | None = None
        self._fetch_inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watch: dict[str, Any] | None = None
        self._cpu = CpuMeter()
        self._last_progress = 0.0
        self.connects = 0
        self.jobs_dropped = 0
        self._client: Any = None  # made by start(): constructing an agent touches no file or socket

    # -- MQTT ------------------------------------------------------------------------------
    def _make_client(self) -> Any:
        import paho.mqtt.client as mqtt

        for path in (self.cfg.ca_file, self.cfg.cert_file, self.cfg.key_file):
            if not Path(path).is_file():
                raise ConfigError(f"TLS file not found: {path} (see [fleet] ca_file, cert_file, key_file)")
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.box_id, protocol=mqtt.MQTTv5)
        try:
            c.tls_set(ca_certs=str(self.cfg.ca_file), certfile=str(self.cfg.cert_file), keyfile=str(self.cfg.key_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"the box's TLS files cannot be used: {exc}") from None
        will = to_wire(BoxStatus(t=self.clock(), state="offline"))
        c.will_set(self.t_status, will, qos=1, retain=True)
        c.reconnect_delay_set(min_delay=max(1, int(self.cfg.reconnect_min_s)), max_delay=max(1, int(round(self.cfg.reconnect_max_s))))
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_disconnect = self._on_disconnect
        return c

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused the connection: %s", reason)
            return
        self.connects += 1
        for topic in self.offer_topics + self.cmd_topics:
            client.subscribe(topic, qos=1)
        self._publish(self.t_status, BoxStatus(t=self.clock(), state="online", agent=__version__, group=self.group or None), qos=1)
        self._connected.set()
        if self._fetch_prefix is not None:
            self._fetch_inbox.put(transfer.RECONNECTED)
        log.info("connected to %s:%d as %s", self.cfg.broker_host, self.cfg.broker_port, self.box_id)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            log.info("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        topic, payload = msg.topic, bytes(msg.payload)
        prefix = self._fetch_prefix
        if prefix is not None and topic.startswith(prefix):
            self._fetch_inbox.put((topic, payload))
        elif topic in self.offer_topics:
            self._enqueue("offer", payload)
        elif topic in self.cmd_topics:
            self._enqueue("cmd", payload)

    def _enqueue(self, kind: str, payload: bytes) -> None:
        try:
            self._jobs.put_nowait((kind, payload))
        except queue.Full:
            self.jobs_dropped += 1  # a flood: drop and count, never block the network thread

    def _publish(self, topic: str, event: Event, qos: int = 1, retain: bool = True) -> None:
        payload = to_wire(event)
        if payload is not None:
            self._client.publish(topic, payload, qos=qos, retain=retain)

    def subscribe(self, topic: str) -> None:
        self._client.subscribe(topic, qos=1)

    def unsubscribe(self, topic: str) -> None:
        self._client.unsubscribe(topic)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._client = self._make_client()
        self._recover()
        self._client.connect_async(self.cfg.broker_host, self.cfg.broker_port, keepalive=self.cfg.keepalive_s, clean_start=True)
        self._client.loop_start()
        for target, name in ((self._work, "fleet-worker"), (self._telemetry_loop, "fleet-telemetry")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def alive(self) -> bool:
        """True while every thread the agent started still runs (the process's watchdog feeds on it)."""
        return all(t.is_alive() for t in self._threads)

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        if self._client is None:
            return
        self._stopping.set()
        for t in self._threads:
            t.join(timeout=30)
        if self._connected.is_set():
            info = self._client.publish(self.t_status, to_wire(BoxStatus(t=self.clock(), state="offline")), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2)
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()

    # -- telemetry -------------------------------------------------------------------------
    def telemetry(self) -> Telemetry:
        coach = read_counters(counters_dir(self.state_dir) / COACH_FILE) or {}
        bridge = read_counters(counters_dir(self.state_dir) / BRIDGE_FILE) or {}
        versions: dict[str, str] = {}
        try:
            names = self.store.names()
        except OSError:
            names = []
        for name in names:
            try:
                v = current_version(self.store, name)
            except (ModelError, OSError):
                v = None
            if v:
                versions[name] = v

        def num(src: dict[str, Any], key: str, kind: type) -> Any:
            value = src.get(key)
            return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        tips = coach.get("tips_by_moment")
        phone = coach.get("phone_link")
        return Telemetry(
            t=self.clock(),
            **system_health(self._cpu, self.state_dir),
            bridge_xruns=num(bridge, "xruns", int),
            tap_drops=num(bridge, "tap_drops", int),
            recognizer_rtf=num(coach, "recognizer_rtf", float),
            phone_link=phone if phone in ("connected", "disconnected", "absent") else None,
            phone=phone_figures(coach["phone"]) if isinstance(coach.get("phone"), dict) else {},
            calls=num(coach, "calls", int),
            calls_failed=num(coach, "calls_failed", int),
            tips_by_moment={str(k)[:40]: int(v) for k, v in tips.items() if isinstance(v, int)} if isinstance(tips, dict) else {},
            versions=versions,
        )

    def _telemetry_loop(self) -> None:
        next_at = 0.0
        while not self._stopping.is_set():
            if self._connected.is_set() and time.monotonic() >= next_at:
                try:
                    self._publish(self.t_telemetry, self.telemetry(), qos=0)
                except Exception:  # a health reading must never take the agent down
                    log.exception("telemetry failed")
                next_at = time.monotonic() + self.cfg.telemetry_s
            self._stopping.wait(0.5)

    # -- progress --------------------------------------------------------------------------
    def _progress(self, update_id: str, state: str, **fields: Any) -> None:
        self._publish(self.t_progress, UpdateProgress(t=self.clock(), update_id=update_id, state=state, **fields))  # type: ignore[arg-type]
        log.info("update %s: %s %s", update_id, state, fields.get("reason", ""))

    # -- the worker ------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            if self._watch is not None:
                try:
                    self._check_watch()
                except Rejected:
                    pass  # stopping mid-rollback: the journal says "rolling_back", the next start finishes it
                except Exception:
                    log.exception("health watch failed")
            try:
                kind, payload = self._jobs.get(timeout=0.25)
            except queue.Empty:
                continue
            try:
                if kind == "offer":
                    self._handle_offer(payload)
                else:
                    self._handle_command(payload)
            except Exception:  # a bug must cost one message, not the box's fleet link
                log.exception("fleet worker: a %s message failed", kind)

    def _now(self) -> float:
        return max(self.clock(), self.state.clock_floor)

    def _check_target(self, target: Target) -> None:
        if not target.includes(self.box_id, self.group):
            raise Rejected("not for this box")

    def _handle_offer(self, payload: bytes) -> None:
        if not payload:
            return  # a retained offer cleared by the admin
        try:
            offer = parse_offer(self.keys.open(payload))
        except Rejected as exc:
            self._progress(exc.update_id or "unverified", "rejected", reason=exc.reason)
            return
        active = self.journal.read()
        if self.state.is_done(offer.update_id) or (active and active.get("update_id") == offer.update_id):
            return
        try:
            self._check_target(offer.target)
            check_fresh(offer.issued_at, offer.expires_at, self._now(), self.cfg.max_offer_life_s)
            for art in offer.artifacts:
                self._check_forward(art.name, art.version)
        except Rejected as exc:
            self._progress(offer.update_id, "rejected", reason=exc.reason)
            self.state.mark_done(offer.update_id)
            return
        self.state.accept_time(offer.issued_at)
        self.state.save()
        self._progress(offer.update_id, "offered")
        crashpoint("accepted")
        try:
            self._apply(offer)
        except Rejected as exc:
            self.journal.clear()  # nothing was switched: Rejected is raised before the switch only
            if self._stopping.is_set():
                return
            self._progress(offer.update_id, "rejected", reason=exc.reason)
            if not exc.reason.startswith("transfer"):
                self.state.mark_done(offer.update_id)  # a transfer failure is retried on the next delivery

    def _check_forward(self, name: str, version: str) -> None:
        floor = [v for v in (self.state.floor.get(name), current_version(self.store, name)) if v]
        for v in floor:
            try:
                newer = version_key(version) > version_key(v)
            except ValueError:
                newer = True  # an installed version not in dotted numbers (a hand-built model) is no floor
            if not newer:
                raise Rejected(f"downgrade: {name} {version} is not newer than {v}")

    def _apply(self, offer: Offer) -> None:
        uid = offer.update_id
        self.journal.write({"update_id": uid, "phase": "fetching"})
        crashpoint("journal-fetching")
        staged: list[Artifact] = []
        for art in offer.artifacts:
            path = self._fetch(uid, art)
            self._progress(uid, "verifying", artifact=art.name, version=art.version)
            crashpoint("verified")
            folder = unpack(art, path, self.folder / "unpack" / art.sha256)
            crashpoint("unpacked")
            selftest.run(folder, self.cfg.selftest_timeout_s, self.config_path)
            crashpoint("selftested")
            self._stage(art, folder)
            crashpoint("staged")
            staged.append(art)
        self.journal.write({"update_id": uid, "phase": "staged"})
        for art in staged:
            self._progress(uid, "staged", artifact=art.name, version=art.version)
        crashpoint("journal-staged")
        self._progress(uid, "waiting_for_idle")
        if self._watch is not None:  # a newer update while the last one was watched: that watch ends
            self._finish_watch(f"superseded by update {uid}")
        switch = [{"name": a.name, "previous": current_version(self.store, a.name), "new": a.version} for a in staged]
        # The coach's counters before the switch: whatever happens to it from the switch on counts.
        baseline = read_counters(counters_dir(self.state_dir) / COACH_FILE) or {}
        with self._idle():
            crashpoint("idle")
            self.journal.write({"update_id": uid, "phase": "switching", "switch": switch})
            crashpoint("journal-switching")
            for entry in switch:
                self._activate(entry["name"], entry["new"])
                crashpoint(f"activated-{entry['name']}")
        self._switched(uid, switch, baseline)
        for art in offer.artifacts:
            self._cleanup(art.sha256)

    def _fetch(self, uid: str, art: Artifact) -> Path:
        part = transfer.PartFile(self.folder / "downloads", art)
        try:
            if part.missing:
                self._progress(uid, "downloading", artifact=art.name, version=art.version, bytes_done=part.bytes_done, bytes_total=art.size)

                reported = [part.bytes_done]

                def progress(done: int, total: int) -> None:
                    # At most twice a second, and only news; the fetchers call again when idle, so
                    # the last figure before a stall is published too.
                    now = time.monotonic()
                    if done != reported[0] and (now - self._last_progress >= PROGRESS_EVERY_S or done == total):
                        self._last_progress, reported[0] = now, done
                        self._progress(uid, "downloading", artifact=art.name, version=art.version, bytes_done=done, bytes_total=total)

                stop = self._stopping.is_set
                if art.url is not None:
                    try:
                        transfer.fetch_https(part, ca_file=self.cfg.https_ca_file, stall_s=self.cfg.transfer_stall_s, jitter_s=self.cfg.fetch_jitter_s, progress=progress, stop=stop)
                    except Rejected as exc:
                        if art.topic is None or not exc.reason.startswith("transfer"):
                            raise
                        log.warning("HTTPS fetch failed (%s); falling back to MQTT chunks", exc.reason)
                if part.missing:
                    self._fetch_inbox = queue.Queue()
                    self._fetch_prefix = f"{art.topic}/"
                    try:
                        transfer.fetch_mqtt(part, self, self._fetch_inbox, window=self.cfg.chunk_window, chunk_timeout_s=self.cfg.chunk_timeout_s, stall_s=self.cfg.transfer_stall_s, progress=progress, stop=stop)
                    finally:
                        self._fetch_prefix = None
            crashpoint("downloaded")
            return part.finish()
        except Rejected as exc:
            if exc.reason.startswith("corrupt"):
                part.close()
                self._cleanup(art.sha256)
            raise
        finally:
            part.close()

    def _stage(self, art: Artifact, folder: Path) -> None:
        crashpoint("staging")
        try:
            self.store.stage(art.name, art.version, folder)  # the same content staged before a crash: a no-op
        except (ModelError, OSError) as exc:
            raise Rejected(f"store: {exc}") from None

    def _activate(self, name: str, version: str) -> None:
        try:
            self.store.activate(name, version)
        except (ModelError, OSError) as exc:
            raise Rejected(f"store: {exc}") from None

    def _switched(self, uid: str, switch: list[dict[str, Any]], coach: dict[str, Any]) -> None:
        for entry in switch:
            self.state.raise_floor(entry["name"], entry["new"])
        self.state.save()
        crashpoint("floor-saved")
        watch = {
            "update_id": uid,
            "phase": "watching",
            "switch": switch,
            "since": self.clock(),
            "calls": coach.get("calls", 0),
            "calls_failed": coach.get("calls_failed", 0),
            "started_at": coach.get("started_at"),
            "restarts": 0,
        }
        self.journal.write(watch)
        crashpoint("journal-watching")
        for entry in switch:
            self._progress(uid, "applied", artifact=entry["name"], version=entry["new"])
        self._watch = watch
        if self.cfg.watch_calls == 0:
            self._finish_watch("no watch configured")

    def _cleanup(self, sha: str) -> None:
        for path in (self.folder / "downloads" / f"{sha}.part", self.folder / "unpack" / sha):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()

    @contextlib.contextmanager
    def _idle(self) -> Iterator[None]:
        """``store.when_idle()``, given up when the agent stops (a call may last an hour)."""
        while True:
            if self._stopping.is_set():
                raise Rejected("stopping: the agent is stopping")
            try:
                with self.store.when_idle(timeout_s=1.0):
                    yield
                    return
            except StoreBusyError:
                continue

    # -- after the switch: watch the coach, roll back on failure ---------------------------
    def _check_watch(self) -> None:
        w = self._watch
        assert w is not None
        if self.cfg.watch_calls == 0:
            return self._finish_watch("no watch configured")
        coach = read_counters(counters_dir(self.state_dir) / COACH_FILE)
        if coach is not None:
            started = coach.get("started_at")
            if started != w["started_at"]:
                if w["started_at"] is not None:
                    w["restarts"] += 1
                w["started_at"] = started
                self.journal.write(w)
            names = ", ".join(f"{e['name']} {e['new']}" for e in w["switch"])
            if w["restarts"] > self.cfg.max_coach_restarts:
                return self._roll_back(f"the coach restarted {w['restarts']} times on {names}")
            if isinstance(coach.get("calls_failed"), int) and coach["calls_failed"] > w["calls_failed"]:
                return self._roll_back(f"a call failed on {names}")
            fallbacks = coach.get("fallbacks") if isinstance(coach.get("fallbacks"), dict) else {}
            for e in w["switch"]:
                if fallbacks.get(e["name"]) == e["new"]:
                    return self._roll_back(f"the coach could not load {e['name']} {e['new']} and fell back")
            if isinstance(coach.get("calls"), int) and coach["calls"] - w["calls"] >= self.cfg.watch_calls:
                return self._finish_watch(f"{coach['calls'] - w['calls']} calls went well")
        if self.clock() - w["since"] > self.cfg.watch_s:
            self._finish_watch("watch time over")

    def _finish_watch(self, why: str) -> None:
        w = self._watch
        assert w is not None
        log.info("update %s healthy: %s", w["update_id"], why)
        self.state.mark_done(w["update_id"])
        self.journal.clear()
        self._watch = None

    def _roll_back(self, reason: str) -> None:
        w = self._watch
        assert w is not None
        w["phase"] = "rolling_back"
        w["reason"] = reason
        self.journal.write(w)
        crashpoint("journal-rolling-back")
        with self._idle():
            for e in w["switch"]:
                if current_version(self.store, e["name"]) == e["new"] and e["previous"] is not None:
                    self.store.rollback(e["name"])
                    crashpoint(f"rolled-back-{e['name']}")
        for e in w["switch"]:
            self._progress(w["update_id"], "rolled_back", artifact=e["name"], version=current_version(self.store, e["name"]), reason=reason)
        self.state.mark_done(w["update_id"])
        self.journal.clear()
        self._watch = None

    # -- commands --------------------------------------------------------------------------
    def _handle_command(self, payload: bytes) -> None:
        if not payload:
            return
        try:
            cmd = parse_command(self.keys.open(payload))
        except Rejected as exc:
            self._progress(exc.update_id or "unverified", "rejected", reason=exc.reason)
            return
        if self.state.is_done(cmd.command_id):
            return
        try:
            self._check_target(cmd.target)
            check_fresh(cmd.issued_at, cmd.expires_at, self._now(), self.cfg.max_offer_life_s)
            with self._idle():
                try:
                    self.store.rollback(cmd.name)
                except (ModelError, OSError) as exc:
                    raise Rejected(f"store: {exc}") from None
        except Rejected as exc:
            if self._stopping.is_set():
                return  # done again on the next start (the command is retained)
            self._progress(cmd.command_id, "rejected", reason=exc.reason)
        else:
            self._progress(cmd.command_id, "rolled_back", artifact=cmd.name, version=current_version(self.store, cmd.name), reason="admin command")
        self.state.accept_time(cmd.issued_at)
        self.state.mark_done(cmd.command_id)

    # -- after a crash ---------------------------------------------------------------------
    def _recover(self) -> None:
        """Make the journal true again before connecting (docs/fleet-protocol.md, "Crash safety")."""
        shutil.rmtree(self.folder / "unpack", ignore_errors=True)
        entry = self.journal.read()
        if entry is None:
            return
        phase = entry.get("phase")
        switch = entry.get("switch") if isinstance(entry.get("switch"), list) else []
        if phase in ("fetching", "staged") or (phase == "switching" and not any(current_version(self.store, e["name"]) == e["new"] for e in switch)):
            # Nothing switched: the store's current versions are the old ones. The retained offer
            # comes again on connect and resumes from the chunks on disk.
            self.journal.clear()
            return
        if phase == "switching":
            # The counters from before the switch are gone with the crash: the watch starts from now.
            baseline = read_counters(counters_dir(self.state_dir) / COACH_FILE) or {}
            with self.store.when_idle():  # before start: no stop can be pending yet
                for e in switch:
                    if current_version(self.store, e["name"]) != e["new"]:
                        self._activate(e["name"], e["new"])
            self._switched(str(entry["update_id"]), switch, baseline)
            return
        if phase in ("watching", "rolling_back"):
            self._watch = entry
            if phase == "rolling_back":
                self._roll_back(str(entry.get("reason", "rollback resumed after a restart")))
            return
        self.journal.clear()
