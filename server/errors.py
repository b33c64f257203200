"""Typed errors of the deployment's policy: refusals a shared server makes and a notebook never
meets. Each derives from `core.errors.AtlasError` (or `ModelLoadError`), so the pages show their
message like any other bad input."""

from __future__ import annotations

from core.errors import AtlasError, ModelLoadError


class DeployConfigError(AtlasError):
    """A deployment setting (environment variable or secret) has a value we cannot read."""


class ModelNotAllowedError(ModelLoadError):
    """The deployment does not offer this model (allowlist, or a local path in public mode)."""


class ModelTooLargeError(ModelLoadError):
    """The model has more parameters than the deployment allows."""


class UnsafeWeightsError(ModelLoadError):
    """Only safetensors weights may be loaded, and the checkpoint has none."""


class NoWeightsError(ModelLoadError):
    """The repository or directory has a config but no weight files at all."""


class TextTooLongError(AtlasError):
    """The text is longer than the deployment accepts."""


class ResultTooLargeError(ModelLoadError):
    """The attention of one text would need more memory than the deployment allows; found from
    the config, before any weights are loaded."""


class BudgetExceededError(AtlasError):
    """A request asks for more work than the deployment allows one visitor (base class)."""


class TooManyRowsError(BudgetExceededError):
    """A request of a per-row method (attention flow) asks for more rows than allowed."""


class TimeBudgetExceededError(BudgetExceededError):
    """A per-row method's request (attention flow) ran longer than allowed and was stopped."""


class RerunTooLargeError(BudgetExceededError):
    """A method that re-runs a layer per token (value zeroing) was asked for too long a text."""


class AgreementTooLargeError(BudgetExceededError):
    """A leave-one-out agreement request is for a longer text than the deployment allows."""


class ServerBusyError(AtlasError):
    """Every slot for expensive work stayed taken for longer than a visitor is asked to wait."""
