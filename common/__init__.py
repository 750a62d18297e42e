"""The small core every package may import: it imports nothing of ours.

One copy of each cross-cutting piece: the data directory, OpenAI base-URL normalisation, the
local sentence-transformers embedder, the read-only git reader, the ragas judge builder, the
request fields that hold a user's question, durations as typed (7d), the consoles every
command prints through, which gateway serves a data directory, and its error bodies.
"""

from common._console import cli_console, is_terminal, print_markdown, typer_settings
from common._durations import duration_s
from common._embedder import (
    DEFAULT_EMBEDDING_MODEL,
    LocalEmbedder,
    default_model_path,
    local_embedder,
)
from common._fields import QUESTION_VARS, question_in
from common._git import CommitInfo, FileChange, Git, GitError, ShallowHistoryError
from common._home import llmops_home, variant_events_file
from common._http_errors import error_of
from common._judge import ragas_embeddings, ragas_llm
from common._serving import announce_gateway, serving_gateway, withdraw_gateway
from common._urls import openai_base_url, server_root

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "QUESTION_VARS",
    "CommitInfo",
    "FileChange",
    "Git",
    "GitError",
    "LocalEmbedder",
    "ShallowHistoryError",
    "announce_gateway",
    "cli_console",
    "default_model_path",
    "duration_s",
    "error_of",
    "is_terminal",
    "llmops_home",
    "local_embedder",
    "openai_base_url",
    "print_markdown",
    "question_in",
    "ragas_embeddings",
    "ragas_llm",
    "server_root",
    "serving_gateway",
    "typer_settings",
    "variant_events_file",
    "withdraw_gateway",
]
