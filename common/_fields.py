"""Request fields that carry the user's question.

Prompt variables under these names are read as the question by the evals (a dataset case's
``question``), the drift sampler and the drift reference alike, so they must agree.
"""

QUESTION_VARS: tuple[str, ...] = ("question", "query", "input", "text", "prompt")
