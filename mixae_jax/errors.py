"""Errors that describe a user's mistake, not a bug in mixae_jax.

Every error here is shown to the user as one line (``launch.py`` prints
``error: <message>`` and exits non-zero); a traceback is only printed with
``--verbose``. Messages name what is wrong and what would be right.
"""


class MixaeError(Exception):
  """Base class: a problem the user can fix from its one-line message."""


class DataError(MixaeError):
  """The dataset files are missing, truncated or malformed."""


class ConfigError(MixaeError):
  """A config value is out of range or inconsistent with another."""


class CheckpointError(MixaeError):
  """A checkpoint or workdir is missing, corrupt or from another model."""


class InputError(MixaeError):
  """An image or array handed to the separator is not what it accepts."""


class NonFiniteLossError(MixaeError):
  """Training produced a NaN or infinite loss."""
