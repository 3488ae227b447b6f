"""One base class for every error the bot raises on purpose."""


class VoisoBotError(Exception):
    """Base class: the message always says what is wrong and what to change."""


class ConfigError(VoisoBotError):
    """The configuration file is missing, unreadable or invalid; the message names the key."""


class StoreInUse(VoisoBotError):
    """Another bot holds the store's lock: two would post every alert twice."""


class MalformedEvent(VoisoBotError):
    """An SQS message body that is not a valid Voiso event; the message is the reason kept."""


class RenderError(VoisoBotError):
    """A template failed, or asked for something a message may not hold."""


class IntakeProblem(VoisoBotError):
    """A failed SQS call or store write, classified so the intake can log it once and back off.

    ``kind`` is a short stable name (``unreachable``, ``throttled``, ``access_denied``,
    ``kms_key`` (the queue's KMS key is disabled, deleted or pending deletion),
    ``no_such_queue``, ``no_credentials``, ``bad_credentials``, ``wrong_region``,
    ``service_error``, ``sqs_error``, ``store_error``, ``internal_error``); the message
    says in plain words what to do.
    """

    def __init__(self, kind: str, message: str, operation: str = ""):
        super().__init__(message)
        self.kind = kind
        self.operation = operation  # the call that failed; only its success ends the problem
