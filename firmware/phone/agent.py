"""The box's own BlueZ pairing agent: NoInputNoOutput, and it says yes only to the phone being paired.

bleak does not register an agent, and without one BlueZ cannot complete ``Pair()``. A headless box
has no display or keyboard, so the agent declares ``NoInputNoOutput`` ("Just Works"); the real
proof that the phone belongs to this box is the HELLO exchange with the box's secret. The agent
refuses every request except for the device the link is pairing right now, so a stranger who
tries to pair with the box is turned away.

Runs on the link's asyncio loop (dbus-fast); this module avoids ``from __future__ import
annotations`` because dbus-fast reads the D-Bus signatures from the annotations.
"""

import logging
from typing import Any

from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_method

log = logging.getLogger(__name__)

AGENT_PATH = "/org/parallax/phone_agent"
CAPABILITY = "NoInputNoOutput"
_REJECTED = "org.bluez.Error.Rejected"


class _Agent1(ServiceInterface):
    def __init__(self, owner: "PairingAgent") -> None:
        super().__init__("org.bluez.Agent1")
        self.owner = owner

    def _check(self, device: str, what: str) -> None:
        if self.owner.allowed != device:
            self.owner.refused += 1
            log.info("pairing agent: refused %s for %s", what, device.rsplit("/", 1)[-1])
            raise DBusError(_REJECTED, "not in pairing mode for this device")

    @dbus_method()
    def Release(self) -> None:  # noqa: N802
        pass

    @dbus_method()
    def RequestPinCode(self, device: "o") -> "s":  # noqa: N802,F821
        raise DBusError(_REJECTED, "no input")

    @dbus_method()
    def DisplayPinCode(self, device: "o", pincode: "s") -> None:  # noqa: N802,F821
        raise DBusError(_REJECTED, "no display")

    @dbus_method()
    def RequestPasskey(self, device: "o") -> "u":  # noqa: N802,F821
        raise DBusError(_REJECTED, "no input")

    @dbus_method()
    def DisplayPasskey(self, device: "o", passkey: "u", entered: "q") -> None:  # noqa: N802,F821
        pass

    @dbus_method()
    def RequestConfirmation(self, device: "o", passkey: "u") -> None:  # noqa: N802,F821
        self._check(device, "confirmation")

    @dbus_method()
    def RequestAuthorization(self, device: "o") -> None:  # noqa: N802,F821
        self._check(device, "authorization")

    @dbus_method()
    def AuthorizeService(self, device: "o", uuid: "s") -> None:  # noqa: N802,F821
        self._check(device, "service " + uuid)

    @dbus_method()
    def Cancel(self) -> None:  # noqa: N802
        pass


class PairingAgent:
    """Owns a D-Bus connection to the system bus with the agent exported on it.

    ``allowed`` is the BlueZ device path the link is pairing now (None: refuse everything).
    ``ensure()`` (re-)registers the agent whenever BlueZ has restarted since the last time.
    """

    def __init__(self) -> None:
        self.allowed: str | None = None
        self.refused = 0
        self._bus: MessageBus | None = None
        self._registered_with: str | None = None

    async def ensure(self) -> None:
        """Register with the current bluetoothd if not done yet. Raises DBusError/OSError on failure."""
        if self._bus is None or not self._bus.connected:
            if self._bus is not None:
                self._bus.disconnect()
            self._bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
            self._bus.export(AGENT_PATH, _Agent1(self))
            self._registered_with = None
        owner = await self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                 "GetNameOwner", "s", ["org.bluez"])  # fmt: skip
        if owner[0] == self._registered_with:
            return
        await self._call("org.bluez", "/org/bluez", "org.bluez.AgentManager1", "RegisterAgent", "os",
                         [AGENT_PATH, CAPABILITY], ok_errors=("org.bluez.Error.AlreadyExists",))  # fmt: skip
        await self._call("org.bluez", "/org/bluez", "org.bluez.AgentManager1", "RequestDefaultAgent", "o", [AGENT_PATH])
        self._registered_with = owner[0]
        log.info("pairing agent registered (%s)", CAPABILITY)

    async def bluez_changed(self) -> bool:
        """True if bluetoothd is not the one the agent registered with (it restarted or crashed:
        a crash sends no signals, so a connection it held may look alive to bleak)."""
        try:
            owner = await self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                     "GetNameOwner", "s", ["org.bluez"])  # fmt: skip
        except DBusError:
            return True
        return owner[0] != self._registered_with

    async def _call(self, dest: str, path: str, iface: str, member: str, sig: str, body: list[Any],
                    ok_errors: tuple[str, ...] = ()) -> list[Any]:  # fmt: skip
        assert self._bus is not None
        reply = await self._bus.call(Message(destination=dest, path=path, interface=iface, member=member,
                                             signature=sig, body=body))  # fmt: skip
        if reply is None:
            raise DBusError("org.freedesktop.DBus.Error.NoReply", f"{member}: no reply")
        if reply.message_type == MessageType.ERROR:
            if reply.error_name in ok_errors:
                return []
            raise DBusError(reply.error_name or "org.freedesktop.DBus.Error.Failed", f"{member}: {reply.body}")
        return list(reply.body)

    def close(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None
            self._registered_with = None
