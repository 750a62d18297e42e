"""Errors of the prompts package.

Each error carries the fields of OpenAI's error object (``type``, ``code``, ``param``) and the
HTTP ``status`` a gateway should answer with, so callers map them to a response without a lookup
table of their own. No template problem is ever a 500: template bugs are 422, bad input is 400.
"""

from __future__ import annotations

from typing import Any


class PromptError(Exception):
    """Base of every error raised by this package."""

    status: int = 400
    type: str = "invalid_request_error"
    code: str = "prompt_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class PromptNotFound(PromptError):
    """Unknown prompt name, version or label (HTTP 404)."""

    status = 404
    code = "prompt_not_found"


class HistoryUnavailable(PromptNotFound):
    """The version may exist, but the history to find it is missing (shallow clone, directory).

    A subclass of :class:`PromptNotFound` (HTTP 404) whose message says how to get the history.
    """

    code = "prompt_history_unavailable"


class VariableError(PromptError):
    """Missing, undeclared or mistyped template variables (HTTP 400).

    ``variables`` names every offending variable; ``problems`` maps each to what is wrong.
    """

    code = "invalid_prompt_variables"

    def __init__(self, problems: dict[str, str], *, param: str | None = None) -> None:
        self.problems = dict(problems)
        self.variables = sorted(self.problems)
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(self.problems.items()))
        first = self.variables[0] if self.variables else None
        super().__init__(
            f"invalid prompt variables: {detail}",
            param=param or (f"prompt.variables.{first}" if first else "prompt.variables"),
        )


class TemplateRenderError(PromptError):
    """The template itself failed to compile or render (HTTP 422, never 500)."""

    status = 422
    code = "prompt_render_error"


class InvalidTemplate(PromptError):
    """A template file (or the labels file) does not parse or validate.

    Raised when loading a registry; ``errors`` maps each file to its problem so ``validate``
    and the reloader can report all of them at once.
    """

    status = 500
    type = "server_error"
    code = "invalid_prompt_template"

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        detail = "; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items()))
        super().__init__(f"invalid prompt files: {detail}")


class GitError(PromptError):
    """A git command failed (not a repository, unknown ref, git missing)."""

    status = 500
    type = "server_error"
    code = "prompt_git_error"
