"""The rep's phone over Bluetooth LE (docs/phone-protocol.md).

- :mod:`~firmware.phone.protocol` - frames, session keys (HKDF + ChaCha20-Poly1305), chunks; pure.
- :mod:`~firmware.phone.secret` - the per-box secret and the one bonded phone (state dir, 0600).
- :mod:`~firmware.phone.link` - :class:`~firmware.phone.link.PhoneLink`, the coach's ``PhoneSink``
  on bleak, on its own asyncio thread; :func:`~firmware.phone.link.attach` wires it to a box.
- :mod:`~firmware.phone.agent` - the box's NoInputNoOutput BlueZ pairing agent.
- :mod:`~firmware.phone.config` - ``[phone]`` settings.
"""
