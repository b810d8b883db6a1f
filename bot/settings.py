"""Process settings, read once from the environment at start-up.

Every token is a ``SecretStr`` so it never prints by accident; ``secret_values()`` hands the
real values to the redactor so that they can be scrubbed from anything the bot emits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import HokusaiError

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_LINEAR_API_URL = "https://api.linear.app/graphql"


class SettingsError(HokusaiError):
    """A setting is missing or malformed; the message is one line naming the variable."""


class Settings(BaseSettings):
    """The bot's environment. Field names map to upper-case variables (``SLACK_BOT_TOKEN``)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    slack_bot_token: SecretStr | None = Field(None, description="Bot token (xoxb-...).")
    slack_signing_secret: SecretStr | None = Field(
        None, description="Signing secret used to verify requests from Slack."
    )
    slack_app_token: SecretStr | None = Field(
        None, description="App-level token (xapp-...) for Socket Mode."
    )
    slack_api_url: str = Field(DEFAULT_SLACK_API_URL, description="Slack Web API base URL.")
    hokusai_config: Path = Field(Path("hokusai.yml"), description="Path of hokusai.yml.")
    hokusai_db: Path | str = Field(
        Path("hokusai.db"),
        description="The incident log: a SQLite file, or a postgresql:// URL for several replicas.",
    )
    hokusai_env: str | None = Field(None, description="Environment diagnosed by default.")
    hokusai_log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text, or one JSON object a line."
    )
    hokusai_max_diagnoses: int = Field(
        3,
        ge=1,
        le=50,
        description="Diagnoses run at once by one bot process; later ones queue, in order.",
    )
    linear_api_key: SecretStr | None = Field(None, description="Linear API key.")
    linear_api_url: str = Field(DEFAULT_LINEAR_API_URL, description="Linear GraphQL endpoint.")
    jira_base_url: str | None = Field(None, description="Jira Cloud site, https://x.atlassian.net")
    jira_email: str | None = Field(None, description="Jira account e-mail for API tokens.")
    jira_api_token: SecretStr | None = Field(None, description="Jira API token.")

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # empty is unset; require() names it where a mode needs it
        if not value.get_secret_value().startswith(("xoxb-", "xoxe.")):
            raise ValueError("must be a bot token (xoxb-...), from OAuth & Permissions")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token (xapp-...), from Basic Information")
        return value

    @field_validator("slack_api_url", "linear_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") or "graphql" in value else value + "/"

    @field_validator("jira_base_url")
    @classmethod
    def _jira_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("hokusai_db", mode="before")
    @classmethod
    def _database(cls, value: object) -> Path | str:
        text = str(value)
        if text.startswith(("postgresql://", "postgres://")):
            parts = urlsplit(text)
            if not parts.hostname or not parts.path.strip("/"):
                raise ValueError("a postgresql:// URL needs a host and a database name")
            return text
        if "://" in text:
            raise ValueError("must be a file path (SQLite) or a postgresql:// URL")
        return Path(text)

    def secret_values(self) -> list[str]:
        """The raw values of every secret this process holds, for the redactor."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        password = (
            urlsplit(str(self.hokusai_db)).password if "://" in str(self.hokusai_db) else None
        )
        if password:
            values.append(password)  # the database URL's password never leaves the process
        return values

    def require(self, *names: str) -> None:
        """Fail with one line naming the first of ``names`` that is not set.

        Example: ``settings.require("slack_bot_token", "slack_signing_secret")`` before serving.
        """
        for name in names:
            value = getattr(self, name)
            if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
                raise SettingsError(f"{name.upper()} is not set")


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning validation errors into one line.

    Raises:
        SettingsError: naming the variable and what is wrong with it.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{name} is invalid: {reason}") from None
