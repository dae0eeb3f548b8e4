"""A fake BlueZ on a private D-Bus, so bleak's real BlueZ backend runs end to end without a radio.

Test rig only: nothing on the device imports it. :class:`PrivateBus` starts a ``dbus-daemon``
(Debian package ``dbus``) on a socket in a temporary folder; point ``DBUS_SYSTEM_BUS_ADDRESS``
at :attr:`PrivateBus.address` and bleak (and the link's pairing agent) talk to :class:`FakeBlueZ`
as they would to bluetoothd. The fake owns ``org.bluez`` and exports, with dbus-fast service
interfaces:

* ``/org/bluez`` ``AgentManager1`` (RegisterAgent, RequestDefaultAgent, UnregisterAgent);
* ``/org/bluez/hci0`` ``Adapter1`` (discovery with filters, RemoveDevice);
* one ``Device1`` per fake phone (Connect, Disconnect, Pair via the registered agent, Trusted),
  and, while connected, the phone's GATT service with the inbox (``WriteValue``) and outbox
  (``StartNotify``/``StopNotify``, notifications as ``PropertiesChanged`` on ``Value``), then
  ``ServicesResolved``.

Each phone is backed by a *peripheral* object with ``on_connect()`` and ``on_write(bytes) ->
list[bytes]`` (the chunks to notify back), e.g. ``tools/phone_sim.py``'s ``PhoneApp``. The fake
runs on its own thread and asyncio loop; its public methods are thread-safe and wait for the
fake to have acted. BlueZ's agent calls are simplified: ``Pair`` asks the default agent's
``RequestAuthorization`` (a NoInputNoOutput "Just Works" confirmation) and fails without an agent.
"""

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from dbus_fast import BusType, DBusError, Message, MessageType, PropertyAccess
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

SERVICE_HANDLE = 0x000A


class Peripheral(Protocol):
    def on_connect(self) -> None: ...

    def on_write(self, data: bytes) -> list[bytes]: ...


class PrivateBus:
    """A throwaway ``dbus-daemon`` (session policy: everything allowed for this user)."""

    def __init__(self) -> None:
        exe = shutil.which("dbus-daemon")
        if exe is None:
            raise RuntimeError("dbus-daemon is not installed (Debian package 'dbus'; tools/bootstrap installs it)")
        self._dir = tempfile.mkdtemp(prefix="fakebus-")
        self._proc = subprocess.Popen(
            [exe, "--session", "--nofork", "--nopidfile", "--print-address=1", f"--address=unix:dir={self._dir}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert self._proc.stdout is not None
        self.address = self._proc.stdout.readline().strip()
        if not self.address:
            self.close()
            raise RuntimeError("dbus-daemon did not start")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout:
            self._proc.stdout.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "PrivateBus":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _props(**spec: str) -> Callable[[type], type]:
    """Class decorator: a read-only D-Bus property per ``name=signature``, read from ``self.props``."""

    def wrap(cls: type) -> type:
        for name, sig in spec.items():
            writable = sig.startswith("rw:")
            setattr(cls, name, _make_prop(name, sig.removeprefix("rw:"), writable))
        return cls

    return wrap


def _make_prop(name: str, sig: str, writable: bool) -> Any:
    def getter(self: Any) -> Any:
        return self.props[name]

    getter.__annotations__ = {"return": sig}
    getter.__name__ = name
    prop = dbus_property(access=PropertyAccess.READWRITE if writable else PropertyAccess.READ, name=name)(getter)
    if writable:

        def setter(self: Any, value: Any) -> None:
            self.props[name] = value
            self.emit_properties_changed({name: value})

        setter.__annotations__ = {"value": sig}
        prop = prop.setter(setter)
    return prop


class _Base(ServiceInterface):
    def __init__(self, name: str, props: dict[str, Any]) -> None:
        super().__init__(name)
        self.props = props

    def update(self, **changed: Any) -> None:
        self.props.update(changed)
        self.emit_properties_changed(changed)


class AgentManager(ServiceInterface):
    def __init__(self, fake: "FakeBlueZ") -> None:
        super().__init__("org.bluez.AgentManager1")
        self.fake = fake

    @dbus_method()
    def RegisterAgent(self, agent: "o", capability: "s") -> None:  # noqa: N802,F821
        self.fake.agents[agent] = capability

    @dbus_method()
    def UnregisterAgent(self, agent: "o") -> None:  # noqa: N802,F821
        self.fake.agents.pop(agent, None)
        if self.fake.default_agent and self.fake.default_agent[1] == agent:
            self.fake.default_agent = None

    @dbus_method()
    def RequestDefaultAgent(self, agent: "o") -> None:  # noqa: N802,F821
        if agent not in self.fake.agents:
            raise DBusError("org.bluez.Error.DoesNotExist", "No agent registered")
        sender = self.fake.current_sender
        self.fake.default_agent = (sender, agent)


@_props(Address="s", AddressType="s", Name="s", Alias="s", Powered="b", Discoverable="b", Pairable="b",
        Discovering="b", UUIDs="as", Roles="as", Class="u", Modalias="s")  # fmt: skip
class Adapter(_Base):
    def __init__(self, fake: "FakeBlueZ", path: str, address: str) -> None:
        super().__init__("org.bluez.Adapter1", {
            "Address": address, "AddressType": "public", "Name": "parallax", "Alias": "parallax", "Powered": True,
            "Discoverable": False, "Pairable": True, "Discovering": False, "UUIDs": [],
            "Roles": ["central", "peripheral"], "Class": 0, "Modalias": "usb:fake",
        })  # fmt: skip
        self.fake, self.path = fake, path
        self.filters: dict[str, Any] = {}

    @dbus_method()
    def SetDiscoveryFilter(self, filters: "a{sv}") -> None:  # noqa: N802,F821
        self.filters = {k: v.value for k, v in filters.items()}

    @dbus_method()
    def StartDiscovery(self) -> None:  # noqa: N802
        self.update(Discovering=True)
        self.fake.scans += 1
        for phone in self.fake.phones.values():
            if phone.in_range:
                self.fake._advertise(phone)

    @dbus_method()
    def StopDiscovery(self) -> None:  # noqa: N802
        self.update(Discovering=False)

    @dbus_method()
    def RemoveDevice(self, device: "o") -> None:  # noqa: N802,F821
        for phone in self.fake.phones.values():
            if phone.path == device and phone.device is not None:
                self.fake._disconnect(phone, "removed")
                phone.paired = False
                self.fake.bus.unexport(phone.path)
                phone.device = None
                self.fake.removed.append(phone.address)
                return
        raise DBusError("org.bluez.Error.DoesNotExist", "Does Not Exist")

    @dbus_method()
    def GetDiscoveryFilters(self) -> "as":  # noqa: N802,F821
        return ["UUIDs", "RSSI", "Transport", "DuplicateData", "Discoverable", "Pattern"]


@_props(Address="s", AddressType="s", Name="s", Alias="s", Adapter="o", Paired="b", Bonded="b",
        Trusted="rw:b", Blocked="b", Connected="b", ServicesResolved="b", UUIDs="as", RSSI="n",
        LegacyPairing="b")  # fmt: skip
class Device(_Base):
    def __init__(self, fake: "FakeBlueZ", phone: "FakePhone") -> None:
        super().__init__("org.bluez.Device1", {
            "Address": phone.address, "AddressType": "random", "Name": phone.name, "Alias": phone.name,
            "Adapter": fake.adapter_path, "Paired": phone.paired, "Bonded": phone.paired, "Trusted": phone.paired,
            "Blocked": False, "Connected": False, "ServicesResolved": False, "UUIDs": [phone.service_uuid],
            "RSSI": -50, "LegacyPairing": False,
        })  # fmt: skip
        self.fake, self.phone = fake, phone

    @dbus_method()
    async def Connect(self) -> None:  # noqa: N802
        await self.fake._connect(self.phone)

    @dbus_method()
    def Disconnect(self) -> None:  # noqa: N802
        self.fake._disconnect(self.phone, "local")

    @dbus_method()
    async def Pair(self) -> None:  # noqa: N802
        await self.fake._pair(self.phone)

    @dbus_method()
    def CancelPairing(self) -> None:  # noqa: N802
        pass


@_props(UUID="s", Primary="b", Device="o", Handle="q", Includes="ao")
class GattService(_Base):
    def __init__(self, device_path: str, uuid: str) -> None:
        super().__init__("org.bluez.GattService1", {
            "UUID": uuid, "Primary": True, "Device": device_path, "Handle": SERVICE_HANDLE, "Includes": [],
        })  # fmt: skip


@_props(UUID="s", Service="o", Value="ay", Notifying="b", Flags="as", MTU="q", Handle="q")
class GattCharacteristic(_Base):
    def __init__(self, fake: "FakeBlueZ", phone: "FakePhone", service: str, uuid: str, flags: list[str], handle: int) -> None:
        super().__init__("org.bluez.GattCharacteristic1", {
            "UUID": uuid, "Service": service, "Value": b"", "Notifying": False, "Flags": flags,
            "MTU": phone.mtu, "Handle": handle,
        })  # fmt: skip
        self.fake, self.phone = fake, phone

    @dbus_method()
    async def WriteValue(self, value: "ay", options: "a{sv}") -> None:  # noqa: N802,F821
        if "write" not in self.props["Flags"] and "write-without-response" not in self.props["Flags"]:
            raise DBusError("org.bluez.Error.NotPermitted", "Write not permitted")
        if not self.phone.connected:
            raise DBusError("org.bluez.Error.Failed", "Not connected")
        if len(value) > self.phone.mtu - 3:
            raise DBusError("org.bluez.Error.InvalidValueLength", "Invalid Length")
        if self.fake.latency_s:
            await asyncio.sleep(self.fake.latency_s)
        self.phone.writes.append(bytes(value))
        replies = self.phone.peripheral.on_write(bytes(value))
        if replies:
            asyncio.get_running_loop().call_soon(self.fake._notify_now, self.phone, replies)

    @dbus_method()
    def ReadValue(self, options: "a{sv}") -> "ay":  # noqa: N802,F821
        raise DBusError("org.bluez.Error.NotPermitted", "Read not permitted")

    @dbus_method()
    def StartNotify(self) -> None:  # noqa: N802
        if "notify" not in self.props["Flags"]:
            raise DBusError("org.bluez.Error.NotSupported", "Operation is not supported")
        self.update(Notifying=True)

    @dbus_method()
    def StopNotify(self) -> None:  # noqa: N802
        self.update(Notifying=False)


@dataclass
class FakePhone:
    address: str
    name: str
    peripheral: Peripheral
    service_uuid: str
    inbox_uuid: str
    outbox_uuid: str
    mtu: int = 23
    in_range: bool = True
    paired: bool = False
    connected: bool = False
    accepts_pairing: bool = True
    device: Device | None = None
    inbox: GattCharacteristic | None = None
    outbox: GattCharacteristic | None = None
    writes: list[bytes] = field(default_factory=list)
    notified: list[bytes] = field(default_factory=list)
    connects: int = 0

    @property
    def path(self) -> str:
        return "/org/bluez/hci0/dev_" + self.address.replace(":", "_")


class FakeBlueZ:
    """``org.bluez`` on the private bus at ``address``, run on its own thread."""

    def __init__(self, address: str, *, adapter_address: str = "B8:27:EB:00:00:01", latency_s: float = 0.0) -> None:
        self.address = address
        self.adapter_address = adapter_address
        self.adapter_path = "/org/bluez/hci0"
        self.latency_s = latency_s
        self.phones: dict[str, FakePhone] = {}
        self.agents: dict[str, str] = {}
        self.default_agent: tuple[str, str] | None = None
        self.current_sender = ""
        self.removed: list[str] = []
        self.pair_requests: list[tuple[str, bool]] = []
        self.scans = 0
        self.restarts = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-bluez", daemon=True)
        self._thread.start()
        self.bus: MessageBus
        self.adapter: Adapter | None = None
        self._call(self._start())

    # -- control from the test (any thread) ------------------------------------------------------

    def add_phone(self, address: str, peripheral: Peripheral, *, name: str = "Rep phone", mtu: int = 23,
                  in_range: bool = True, service_uuid: str | None = None) -> FakePhone:  # fmt: skip
        from firmware.phone.protocol import INBOX_UUID, OUTBOX_UUID, SERVICE_UUID

        phone = FakePhone(address, name, peripheral, service_uuid or SERVICE_UUID, INBOX_UUID, OUTBOX_UUID, mtu, in_range)
        self.phones[address] = phone

        async def add() -> None:
            if in_range and self.adapter is not None and self.adapter.props["Discovering"]:
                self._advertise(phone)

        self._call(add())
        return phone

    def set_in_range(self, address: str, in_range: bool) -> None:
        phone = self.phones[address]

        async def change() -> None:
            phone.in_range = in_range
            if not in_range:
                self._disconnect(phone, "remote")
            elif self.adapter is not None and self.adapter.props["Discovering"]:
                self._advertise(phone)

        self._call(change())

    def notify(self, address: str, chunks: list[bytes]) -> None:
        """The phone notifies chunks on its outbox (a control, say)."""
        phone = self.phones[address]

        async def send() -> None:
            self._notify_now(phone, chunks)

        self._call(send())

    def phone_does(self, address: str, act: Callable[[Any], tuple[Any, list[bytes]]]) -> Any:
        """Run ``act(peripheral)`` on the fake's thread (where writes reach the peripheral too, so
        the peripheral needs no lock), notify the chunks it returns, and return its value."""
        phone = self.phones[address]

        async def run() -> Any:
            value, chunks = act(phone.peripheral)
            self._notify_now(phone, chunks)
            return value

        return self._call(run())

    def restart(self) -> None:
        """Like ``systemctl restart bluetooth``: every object goes, connections drop, agents are
        forgotten; bonded devices come back (from BlueZ's storage), disconnected."""

        async def go() -> None:
            for phone in self.phones.values():
                self._disconnect(phone, "restart")
                if phone.device is not None:
                    self.bus.unexport(phone.path)
                    phone.device = None
            self.bus.unexport(self.adapter_path)
            self.bus.unexport("/org/bluez")
            self.adapter = None
            self.agents.clear()
            self.default_agent = None
            await asyncio.sleep(0.05)
            self.bus.disconnect()
            await self.bus.wait_for_disconnect()
            self.restarts += 1
            await self._start()

        self._call(go())

    def crash(self) -> None:
        """bluetoothd dies without a word (no InterfacesRemoved, no PropertiesChanged) and is
        started again: connections are gone, bonded devices come back disconnected."""

        async def go() -> None:
            self.bus.disconnect()
            await self.bus.wait_for_disconnect()
            for phone in self.phones.values():
                phone.connected = False
                phone.device = None
                phone.inbox = phone.outbox = None
            self.adapter = None
            self.agents.clear()
            self.default_agent = None
            self.restarts += 1
            await self._start()

        self._call(go())

    def remove_adapter(self) -> None:
        """The USB/UART adapter vanishes (its devices with it)."""

        async def go() -> None:
            for phone in self.phones.values():
                self._disconnect(phone, "adapter gone")
                if phone.device is not None:
                    self.bus.unexport(phone.path)
                    phone.device = None
            self.bus.unexport(self.adapter_path)
            self.adapter = None

        self._call(go())

    def add_adapter(self) -> None:
        async def go() -> None:
            self._export_adapter()

        self._call(go())

    def close(self) -> None:
        async def stop() -> None:
            self.bus.disconnect()

        try:
            self._call(stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def __enter__(self) -> "FakeBlueZ":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside the fake's loop ------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _start(self) -> None:
        self.bus = MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM)
        await self.bus.connect()

        def remember_sender(msg: Message) -> None:
            if msg.message_type == MessageType.METHOD_CALL:
                self.current_sender = msg.sender or ""

        self.bus.add_message_handler(remember_sender)
        self.bus.export("/org/bluez", AgentManager(self))
        self._export_adapter()
        await self.bus.request_name("org.bluez")

    def _export_adapter(self) -> None:
        self.adapter = Adapter(self, self.adapter_path, self.adapter_address)
        self.bus.export(self.adapter_path, self.adapter)
        for phone in self.phones.values():
            if phone.paired:  # bonded devices are restored from storage
                self._export_device(phone)

    def _export_device(self, phone: FakePhone) -> None:
        phone.device = Device(self, phone)
        self.bus.export(phone.path, phone.device)

    def _advertise(self, phone: FakePhone) -> None:
        if self.adapter is None:
            return
        if phone.device is None:
            self._export_device(phone)
        else:
            phone.device.update(RSSI=-48 if phone.device.props["RSSI"] != -48 else -49)

    async def _connect(self, phone: FakePhone) -> None:
        if self.adapter is None:
            raise DBusError("org.freedesktop.DBus.Error.UnknownObject", "adapter gone")
        if not phone.in_range:
            await asyncio.sleep(0.05)
            raise DBusError("org.bluez.Error.Failed", "le-connection-timeout")
        if phone.connected:
            return
        assert phone.device is not None
        phone.connected = True
        phone.connects += 1
        phone.peripheral.on_connect()
        phone.device.update(Connected=True)
        service = f"{phone.path}/service{SERVICE_HANDLE:04x}"
        self.bus.export(service, GattService(phone.path, phone.service_uuid))
        phone.inbox = GattCharacteristic(self, phone, service, phone.inbox_uuid, ["write"], SERVICE_HANDLE + 1)
        phone.outbox = GattCharacteristic(self, phone, service, phone.outbox_uuid, ["notify"], SERVICE_HANDLE + 3)
        self.bus.export(f"{service}/char{SERVICE_HANDLE + 1:04x}", phone.inbox)
        self.bus.export(f"{service}/char{SERVICE_HANDLE + 3:04x}", phone.outbox)
        phone.device.update(ServicesResolved=True)

    def _disconnect(self, phone: FakePhone, why: str) -> None:
        if not phone.connected or phone.device is None:
            phone.connected = False
            return
        phone.connected = False
        service = f"{phone.path}/service{SERVICE_HANDLE:04x}"
        phone.device.update(ServicesResolved=False)
        for char in (SERVICE_HANDLE + 1, SERVICE_HANDLE + 3):
            self.bus.unexport(f"{service}/char{char:04x}")
        self.bus.unexport(service)
        phone.inbox = phone.outbox = None
        phone.device.update(Connected=False)

    async def _pair(self, phone: FakePhone) -> None:
        assert phone.device is not None
        if phone.paired:
            raise DBusError("org.bluez.Error.AlreadyExists", "Already Exists")
        if not phone.in_range:
            raise DBusError("org.bluez.Error.ConnectionAttemptFailed", "Page Timeout")
        if self.default_agent is None:
            raise DBusError("org.bluez.Error.AuthenticationFailed", "no agent to confirm pairing")
        sender, path = self.default_agent
        reply = await self.bus.call(Message(
            destination=sender, path=path, interface="org.bluez.Agent1", member="RequestAuthorization",
            signature="o", body=[phone.path],
        ))  # fmt: skip
        accepted = reply is not None and reply.message_type == MessageType.METHOD_RETURN and phone.accepts_pairing
        self.pair_requests.append((phone.address, accepted))
        if not accepted:
            raise DBusError("org.bluez.Error.AuthenticationRejected", "Authentication Rejected")
        if not phone.connected:
            await self._connect(phone)
        phone.paired = True
        phone.device.update(Paired=True, Bonded=True)

    def _notify_now(self, phone: FakePhone, chunks: list[bytes]) -> None:
        if not phone.connected or phone.outbox is None or not phone.outbox.props["Notifying"]:
            return
        for c in chunks:
            phone.notified.append(c)
            phone.outbox.update(Value=bytes(c))


def bus_env(address: str) -> dict[str, str]:
    """The environment a process needs to find the fake as its system bus."""
    return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address}



def _serve_stdin() -> int:
    """``python -m firmware.testing.fakebluez``: the fake in a process of its own (as bluetoothd is on
    the box, so benchmarks do not share the link's interpreter with it), one bonded app-side phone.

    Commands on stdin, one per line, each answered ``ok``: ``away``, ``back``, ``restart``, ``quit``.
    """
    import argparse
    import json
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.join(repo, "tools"))
    import phone_sim  # the reference app (tools/phone_sim.py)

    ap = argparse.ArgumentParser()
    ap.add_argument("--bus", required=True)
    ap.add_argument("--phone", required=True)
    ap.add_argument("--secret-hex", required=True)
    ap.add_argument("--key-id", type=int, required=True)
    ap.add_argument("--mtu", type=int, default=23)
    ap.add_argument("--latency-s", type=float, default=0.0)
    args = ap.parse_args()
    fake = FakeBlueZ(args.bus, latency_s=args.latency_s)
    app = phone_sim.PhoneApp(bytes.fromhex(args.secret_hex), args.key_id, mtu_payload=args.mtu - 3)
    fake.add_phone(args.phone, app, mtu=args.mtu)
    fake.phones[args.phone].paired = True
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "away":
                fake.set_in_range(args.phone, False)
            elif cmd == "back":
                fake.set_in_range(args.phone, True)
            elif cmd == "restart":
                fake.restart()
            elif cmd == "stats":
                print(json.dumps({"writes": len(fake.phones[args.phone].writes), "tips": len(app.screen.tips)}), flush=True)
                continue
            elif cmd == "quit":
                break
            print("ok", flush=True)
    finally:
        fake.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(_serve_stdin())
