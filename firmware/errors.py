"""The package's one exception tree, and the exit status each kind of failure gives.

Entry points catch :class:`ParallaxError` and print its message as one clear line, then exit
with the class's ``exit_status`` (the table is in README "Exit status"); anything else escaping
is a bug, reported as such.
"""

# Exit statuses of every `parallax` command (README "Exit status" repeats this table).
EXIT_OK = 0
EXIT_FAILED = 1  # the job itself failed at run time (the bridge thread died, a fleet update was refused)
# Bad arguments, input file, output path, configuration, playbook or model (missing or corrupt:
# the message says to run `parallax models build`): the input is at fault, and no output was left.
EXIT_BAD_INPUT = 2
EXIT_DEVICE_IO = 3  # a device, disk or file system failed (device gone, disk full, no permission)
EXIT_BUG = 70  # EX_SOFTWARE: an unexpected exception, i.e. a bug (traceback printed)
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2
EXIT_TERMINATED = 143  # SIGTERM: 128 + 15


class ParallaxError(Exception):
    """Root of every error the firmware raises on purpose."""

    exit_status: int = EXIT_BAD_INPUT


class ConfigError(ParallaxError):
    """The TOML configuration is missing, malformed or out of range."""


class InputError(ParallaxError):
    """A command-line argument or input file cannot be used."""


class OutputError(ParallaxError):
    """An output path cannot be written (refused before any work starts)."""


class AudioInputError(InputError):
    """An audio file or stream cannot be used (format, channels, truncation)."""


class AudioDeviceError(ParallaxError):
    """An ALSA device could not be opened or vanished."""

    exit_status = EXIT_DEVICE_IO


class ModelError(ParallaxError):
    """A model is missing, corrupt, or does not match its manifest."""


class StoreBusyError(ModelError):
    """The model store's call lock is held (a call is running); the switch must wait."""


class ProvisioningError(ModelError):
    """Fetching, verifying or converting model weights failed."""


class EventSchemaError(ParallaxError):
    """An event payload does not match the versioned schema."""


class PlaybookError(ParallaxError):
    """A coaching playbook fails schema validation."""


class CoachStateError(ParallaxError):
    """The coach's local mastery state cannot be read or written."""

    exit_status = EXIT_DEVICE_IO


class PhoneLinkError(ParallaxError):
    """The Bluetooth LE link to the rep's phone failed."""

    exit_status = EXIT_DEVICE_IO


class FleetError(ParallaxError):
    """A fleet message or update was rejected."""

    exit_status = EXIT_FAILED


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so ``with`` blocks unwind (temporary folders
    are removed, partial outputs discarded). A BaseException, like KeyboardInterrupt, so no
    ``except Exception`` swallows it."""


class StorageError(ParallaxError):
    """A file could not be written although its path was fine (disk full, I/O error)."""

    exit_status = EXIT_DEVICE_IO
