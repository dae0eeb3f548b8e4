"""Parallax Edge firmware: inline headset bridge, on-device speech and real-time coaching.

Importing the package is deliberately cheap: subsystems import their heavy engines
(sherpa-onnx, tflite, ALSA, bleak, paho) lazily, where they are first used.
"""

from firmware.errors import ParallaxError

__all__ = ["ParallaxError", "__version__"]
__version__ = "0.1.0"
