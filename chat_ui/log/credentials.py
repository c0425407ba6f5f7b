"""Sources of the database URL and password: the URL, the environment, or AWS SSM.

The URL comes from the SSM parameter named by ``VERACLAIM_LOG_SSM_DATABASE_URL_PARAMETER``
when that is set, and otherwise from the argument of ``ConversationLog.open(url)``. A
MySQL URL that names a user but no password takes the first of:

1. ``VERACLAIM_LOG_DATABASE_PASSWORD``,
2. the SSM parameter named by ``VERACLAIM_LOG_SSM_DATABASE_PASSWORD_PARAMETER``.

SSM parameters are read as decrypted SecureStrings. boto3 finds the region, the
credentials and the endpoint (``AWS_ENDPOINT_URL``) in its usual places, and
``VERACLAIM_LOG_AWS_REGION`` overrides the region.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from chat_ui.errors import SecretNotFoundError, SecretUnavailableError
from chat_ui.log.database import DatabaseTarget, parse_database_url
from chat_ui.log.settings import LogSettings

logger = logging.getLogger(__name__)

# botocore logs whole response bodies at DEBUG, and a GetParameter response body contains
# the decrypted secret.
_QUIET_LOGGER_PREFIXES = ("botocore", "boto3")


@contextmanager
def _botocore_debug_off() -> Iterator[None]:
    """Raise botocore's and boto3's loggers to INFO while the block runs.

    NOTE: this is process-wide, so another thread's botocore DEBUG lines are dropped too
    for the duration of one GetParameter call.
    """
    manager = logging.Logger.manager
    names = [
        name
        for name in list(manager.loggerDict)
        if name.split(".", 1)[0] in _QUIET_LOGGER_PREFIXES
    ]
    loggers = [logging.getLogger(name) for name in {*names, *_QUIET_LOGGER_PREFIXES}]
    saved = {item: item.level for item in loggers}
    for item in loggers:
        # A child at NOTSET inherits from its parent, which is raised here too.
        if item.level != logging.NOTSET or item.name in _QUIET_LOGGER_PREFIXES:
            item.setLevel(max(item.level, logging.INFO))
    try:
        yield
    finally:
        for item, level in saved.items():
            item.setLevel(level)


def read_ssm_secret(name: str, region: str | None = None) -> str:
    """Return the decrypted value of the SSM parameter ``name``.

    Raises SecretNotFoundError when it does not exist and SecretUnavailableError when
    Parameter Store cannot be reached or refuses the request. Neither message contains
    the value.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        with _botocore_debug_off():
            client = boto3.client("ssm", region_name=region)
            response = client.get_parameter(Name=name, WithDecryption=True)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ParameterNotFound":
            raise SecretNotFoundError(
                f"SSM parameter {name!r} not found. Create it as a SecureString, or fix the "
                "name in VERACLAIM_LOG_SSM_DATABASE_URL_PARAMETER or "
                "VERACLAIM_LOG_SSM_DATABASE_PASSWORD_PARAMETER."
            ) from None
        raise SecretUnavailableError(
            f"SSM rejected the request for parameter {name!r} ({code}). Grant ssm:GetParameter on "
            "it, and kms:Decrypt on its key, to this machine's AWS role."
        ) from None
    except BotoCoreError as error:
        raise SecretUnavailableError(
            f"Could not read SSM parameter {name!r}: {error}. Check the AWS credentials, the "
            "region (VERACLAIM_LOG_AWS_REGION or AWS_REGION) and the network path to SSM."
        ) from None

    value: str = response["Parameter"]["Value"]
    logger.info("Read the database secret from SSM parameter %s", name)
    return value


def resolve_target(url: str, settings: LogSettings) -> DatabaseTarget:
    """Parse the database URL and fill in its password, following the module's order."""
    if settings.ssm_database_url_parameter:
        url = read_ssm_secret(settings.ssm_database_url_parameter, settings.aws_region)
    target = parse_database_url(url)
    if not target.has_user_without_password:
        return target

    if settings.database_password is not None:
        return target.with_password(settings.database_password.get_secret_value())
    if settings.ssm_database_password_parameter:
        password = read_ssm_secret(settings.ssm_database_password_parameter, settings.aws_region)
        return target.with_password(password)
    return target
