""" Errors of the Hub tools; each message names the problem and the fix. """

__all__ = [
    'HubCardsError', 'MissingTokenError', 'RepoIdError', 'CodebookMismatchError', 'MissingWeightsError',
    'CorruptWeightsError', 'PickleRefusedError', 'CardExistsError', 'HubAuthError',
]


class HubCardsError(Exception):
    """Base class: a push or a load that cannot go on."""


class MissingTokenError(HubCardsError):
    """No Hugging Face token for an upload."""


class HubAuthError(HubCardsError):
    """The Hub refused the token (401 / 403)."""


class RepoIdError(HubCardsError, ValueError):
    """A repo id that is not 'ORG/NAME'."""


class CodebookMismatchError(HubCardsError, ValueError):
    """Weights, config.json and codebooks.json disagree on a codebook."""


class MissingWeightsError(HubCardsError, FileNotFoundError):
    """No weights file where one was expected."""


class CorruptWeightsError(HubCardsError):
    """A weights file that cannot be read (truncated, not a checkpoint, ...)."""


class PickleRefusedError(HubCardsError):
    """Pickled weights met without an explicit opt-in."""


class CardExistsError(HubCardsError):
    """The repo already has a README.md and no one asked to replace it."""
