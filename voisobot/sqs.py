"""The SQS side: one boto3 client with timeouts, and failures classified in plain words."""

import os
from typing import NamedTuple

import boto3
import botocore.config
import botocore.exceptions

from voisobot.config import SqsConfig
from voisobot.errors import ConfigError, IntakeProblem

BATCH_SIZE = 10  # ReceiveMessage and DeleteMessageBatch both stop at 10

IAM_ACTIONS = {
    "ReceiveMessage": "sqs:ReceiveMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "GetQueueAttributes": "sqs:GetQueueAttributes",
    "SendMessage": "sqs:SendMessage",
}
_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException"}
_NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
_BAD_CREDENTIALS = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                    "InvalidAccessKeyId", "ExpiredToken", "ExpiredTokenException",
                    "MissingAuthenticationToken", "InvalidSecurity", "AuthFailure"}
_THROTTLED = {"ThrottlingException", "Throttling", "RequestThrottled", "OverLimit",
              "RequestLimitExceeded", "TooManyRequestsException", "KmsThrottled",
              "KMS.ThrottlingException"}
# An SSE-KMS queue's key, refused to the caller: SQS's JSON code, and its query-protocol code.
_KMS_DENIED = {"KmsAccessDenied", "KMS.AccessDeniedException"}
# The key itself unusable, for everyone: what is wrong with it.
_KMS_KEY_STATES = {
    "KmsDisabled": "is disabled: enable it in KMS",
    "KMS.DisabledException": "is disabled: enable it in KMS",
    "KmsNotFound": "does not exist (deleted, or the queue names a wrong key): set the queue's "
                   "encryption to a key that exists",
    "KMS.NotFoundException": "does not exist (deleted, or the queue names a wrong key): set "
                             "the queue's encryption to a key that exists",
    "KmsInvalidState": "cannot be used in its state (pending deletion or pending import): "
                       "cancel the deletion, or finish the import",
    "KMS.InvalidStateException": "cannot be used in its state (pending deletion or pending "
                                 "import): cancel the deletion, or finish the import",
}
# Who needs what on an SSE-KMS queue's key (README: Deployment, SSE-KMS queues).
KMS_RECEIVER_ACTIONS = ("kms:Decrypt",)
KMS_SENDER_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
_NO_CREDENTIALS = (botocore.exceptions.NoCredentialsError,
                   botocore.exceptions.PartialCredentialsError)
_UNREACHABLE = (botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionClosedError,
                botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ReadTimeoutError,
                botocore.exceptions.HTTPClientError)


FALLBACK_REGION = "us-east-1"


class Region(NamedTuple):
    """The region the SQS client uses, and where it came from (``bot.py check`` says both)."""

    name: str
    source: str  # "" when nothing set one and FALLBACK_REGION is used

    @property
    def why(self) -> str:
        return f"from {self.source}" if self.source else (
            "nothing set one: not in sqs.region, the queue URL, AWS_REGION, AWS_DEFAULT_REGION "
            "or the profile")


def region_of(config: SqsConfig, session: boto3.session.Session | None = None) -> Region:
    """sqs.region or the queue URL's region, else boto3's chain, else us-east-1.

    botocore 1.44 reads AWS_DEFAULT_REGION and the profile's ``region`` but not AWS_REGION,
    which the AWS CLI v2 and the other AWS SDKs read first (and Lambda and ECS set), so it
    is read here, ahead of them."""
    if config.region:
        return Region(config.region, config.region_from)
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(variable):
            return Region(os.environ[variable], variable)
    session = session or boto3.session.Session()
    if session.region_name:  # with AWS_DEFAULT_REGION unset, botocore took it from the profile
        config_file = os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")
        return Region(session.region_name, f"profile {session.profile_name} in {config_file}")
    return Region(FALLBACK_REGION, "")


def make_client(config: SqsConfig):
    """A thread-safe SQS client whose every call is bounded by a timeout."""
    session = boto3.session.Session()
    region = region_of(config, session)
    try:
        return session.client(
            "sqs",
            region_name=region.name,
            endpoint_url=config.endpoint_url or None,
            config=botocore.config.Config(
                connect_timeout=config.request_timeout_seconds,
                read_timeout=config.read_timeout_seconds,
                retries={"mode": "standard", "max_attempts": 2},
                user_agent_extra="voisobot",
                # a drain's receivers and deleters each hold a connection (drain.py)
                max_pool_connections=max(10, 2 * config.receivers),
            ),
        )
    except botocore.exceptions.InvalidRegionError as exc:  # sqs.region is checked at load
        raise ConfigError(f"{region.source}: expected an AWS region such as eu-west-1, got "
                          f"{region.name!r}") from exc


def receive(client, queue_url: str, wait_seconds: int) -> list[dict]:
    response = client.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=BATCH_SIZE,
        WaitTimeSeconds=wait_seconds,
        MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
    )
    return response.get("Messages", [])


def delete(client, queue_url: str, messages: list[dict]) -> list[dict]:
    """Delete a batch; return the ``Failed`` entries (a 200 answer can still hold some)."""
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
    response = client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    return response.get("Failed", [])


def classify(exc: Exception, operation: str, config: SqsConfig, region: str) -> IntakeProblem:
    """Turn a boto3 failure into an IntakeProblem whose message tells the user what to do.

    ``region`` is the one the client uses (``client.meta.region_name``)."""
    problem = _classify(exc, operation, config, region)
    problem.operation = operation
    return problem


def _classify(exc: Exception, operation: str, config: SqsConfig, region: str) -> IntakeProblem:
    queue = config.queue_url
    if isinstance(exc, _NO_CREDENTIALS):
        return IntakeProblem("no_credentials", "no AWS credentials found: set AWS_ACCESS_KEY_ID "
                            "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the bot's environment")
    if isinstance(exc, _UNREACHABLE):
        where = config.endpoint_url or f"the SQS endpoint of region {region}"
        return IntakeProblem("unreachable", f"cannot reach SQS at {where} ({exc}); check the "
                            "network, a proxy or sqs.endpoint_url")
    if not isinstance(exc, botocore.exceptions.ClientError):
        return IntakeProblem("sqs_error", f"SQS {operation} failed: {type(exc).__name__}: {exc}")
    return _classify_client_error(exc, operation, region, queue)


def _classify_client_error(exc, operation: str, region: str, queue: str) -> IntakeProblem:
    error = exc.response.get("Error", {})
    codes = {error.get("Code", ""), error.get("QueryErrorCode", "")} - {""}
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    detail = error.get("Message", "") or ", ".join(sorted(codes))
    if codes & _BAD_CREDENTIALS:
        return IntakeProblem("bad_credentials", f"AWS rejected the bot's credentials ({detail}); "
                            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if codes & _KMS_DENIED:
        return IntakeProblem("access_denied", _kms_denied(operation, detail))
    if state := next((_KMS_KEY_STATES[code] for code in sorted(codes) if code in
                      _KMS_KEY_STATES), None):
        return IntakeProblem("kms_key", f"the queue's KMS key {state} ({detail}); until then "
                            "Voiso cannot send and the bot cannot receive")
    if codes & _ACCESS_DENIED or status == 403:
        action = IAM_ACTIONS.get(operation, f"sqs:{operation}")
        return IntakeProblem("access_denied", f"AWS denied {action} on {queue}: add {action} "
                            "to the bot's IAM policy (README: AWS setup)")
    if codes & _NO_QUEUE:
        return IntakeProblem("no_such_queue", f"queue {queue} does not exist in region "
                            f"{region}: check sqs.queue_url")
    if "InvalidAddress" in codes:
        return IntakeProblem("wrong_region", f"the queue URL does not belong to region "
                            f"{region} ({detail}): set sqs.region to the queue's region")
    if codes & _THROTTLED:
        return IntakeProblem("throttled", f"SQS is throttling {operation} ({detail}); backing off")
    if status >= 500:
        return IntakeProblem("service_error", f"SQS answered {status} to {operation} ({detail}); "
                            "retrying")
    return IntakeProblem("sqs_error", f"SQS refused {operation}: {detail}")


def _kms_denied(operation: str, detail: str) -> str:
    """The actions each side needs on the queue's key: the bot receives (kms:Decrypt), the
    sender (Voiso, or whoever runs send-sample) encrypts (kms:GenerateDataKey, kms:Decrypt)."""
    sender = " and ".join(KMS_SENDER_ACTIONS)
    where = ("in its IAM policy and in the key policy (README: Deployment, SSE-KMS queues)")
    if operation == "SendMessage":
        return (f"the queue is encrypted with a KMS key the sender may not use ({detail}): "
                f"the sender (Voiso's key, or whoever runs send-sample) needs {sender} on "
                f"that key, {where}")
    receiver = " and ".join(KMS_RECEIVER_ACTIONS)
    return (f"the queue is encrypted with a KMS key the bot may not use ({detail}): allow "
            f"{receiver} on that key to the bot's identity, {where}; Voiso's sender needs "
            f"{sender} on the same key, so if its messages stop arriving, check that too")
