"""Prompts versioned in git: templates, versions, labels and canaries, rendered in a sandbox.

Public face of the package; everything else is private. Typical use::

    registry = PromptRegistry.from_git(Path("."), ref="HEAD")
    pv = registry.get("summarise", "canary", user="u-42")
    rendered = pv.template.render({"text": "..."})
"""

from ._errors import (
    GitError,
    HistoryUnavailable,
    InvalidTemplate,
    PromptError,
    PromptNotFound,
    TemplateRenderError,
    VariableError,
)
from ._labels import LabelsFile, LabelTarget
from ._langfuse_sync import (
    LangfuseNotConfigured,
    LangfuseSettings,
    LangfuseSyncError,
    LangfuseSyncItem,
    LangfuseSyncResult,
    LangfuseUnavailable,
    langfuse_prompt_versions,
    sync_to_langfuse,
)
from ._registry import DEFAULT_LABELS_FILE, PromptRegistry, PromptVersion
from ._reload import RegistryReloader, RegistryUnavailable, ReloadStatus
from ._template import (
    Example,
    Message,
    PromptTemplate,
    RenderedPrompt,
    RetrievalSpec,
    VariableSpec,
    canonical_version,
    parse_template,
)

__all__ = [
    "DEFAULT_LABELS_FILE",
    "Example",
    "GitError",
    "HistoryUnavailable",
    "InvalidTemplate",
    "LabelTarget",
    "LabelsFile",
    "LangfuseNotConfigured",
    "LangfuseSettings",
    "LangfuseSyncError",
    "LangfuseSyncItem",
    "LangfuseSyncResult",
    "LangfuseUnavailable",
    "Message",
    "PromptError",
    "PromptNotFound",
    "PromptRegistry",
    "PromptTemplate",
    "PromptVersion",
    "RegistryReloader",
    "RegistryUnavailable",
    "ReloadStatus",
    "RenderedPrompt",
    "RetrievalSpec",
    "TemplateRenderError",
    "VariableError",
    "VariableSpec",
    "canonical_version",
    "langfuse_prompt_versions",
    "parse_template",
    "sync_to_langfuse",
]
