""" Errors of the Hub tools, one class per cause; each message names the problem and the fix. """
from timm_coded.checkpoint import CheckpointError

__all__ = ['HubError', 'HubAuthError', 'CardExistsError', 'RepoNotFoundError', 'MissingConfigError',
           'MissingWeightsError', 'CorruptWeightsError', 'ConfigMismatchError']


class HubError(Exception):
    """Base class: a push or a load that cannot go on."""


class HubAuthError(HubError, PermissionError):
    """No Hugging Face token for an upload, or the Hub refused it."""


class CardExistsError(HubError, FileExistsError):
    """The repo already has a model card and no one asked to replace it."""


class RepoNotFoundError(HubError, FileNotFoundError):
    """No such repo (or no read access to it), or no such folder."""


class MissingConfigError(HubError, FileNotFoundError):
    """The repo has no config.json: it is not a timm model repo."""


class MissingWeightsError(HubError, FileNotFoundError):
    """The repo has a config.json but no weights."""


class CorruptWeightsError(HubError, CheckpointError):
    """The weights are unreadable, or differ from the sha256 recorded in config.json."""


class ConfigMismatchError(HubError, ValueError):
    """config.json does not describe the weights (edited model_args, codebooks or ratios)."""
