"""The package's one exception tree.

Entry points catch :class:`ParallaxError` and print its message as one clear line;
anything else escaping is a bug.
"""


class ParallaxError(Exception):
    """Root of every error the firmware raises on purpose."""


class ConfigError(ParallaxError):
    """The TOML configuration is missing, malformed or out of range."""


class AudioInputError(ParallaxError):
    """An audio file or stream cannot be used (format, channels, truncation)."""


class AudioDeviceError(ParallaxError):
    """An ALSA device could not be opened or vanished."""


class ModelError(ParallaxError):
    """A model is missing, corrupt, or does not match its manifest."""


class ProvisioningError(ModelError):
    """Fetching, verifying or converting model weights failed."""


class EventSchemaError(ParallaxError):
    """An event payload does not match the versioned schema."""


class PlaybookError(ParallaxError):
    """A coaching playbook fails schema validation."""


class CoachStateError(ParallaxError):
    """The coach's local mastery state cannot be read or written."""


class PhoneLinkError(ParallaxError):
    """The Bluetooth LE link to the rep's phone failed."""


class FleetError(ParallaxError):
    """A fleet message or update was rejected."""


class SpeechStateError(ParallaxError):
    """The speech layer's local state (the per-headset earpiece-leak estimate) cannot be written."""
