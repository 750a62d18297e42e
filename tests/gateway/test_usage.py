"""Token usage found in SSE streams, however the upstream splits its chunks."""

from __future__ import annotations

from gateway._usage import StreamUsageScanner, usage_from_body

FINAL = b'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":5}}\n\n'


def test_usage_split_across_chunks() -> None:
    s = StreamUsageScanner()
    stream = b'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n' + FINAL
    for i in range(0, len(stream), 7):  # 7-byte chunks cut keys and lines anywhere
        s.feed(stream[i : i + 7])
    s.finish()
    assert s.usage == {"prompt_tokens": 7, "completion_tokens": 5}


def test_null_usage_is_not_usage() -> None:
    s = StreamUsageScanner()
    s.feed(b'data: {"choices":[],"usage":null}\n\ndata: [DONE]\n\n')
    s.finish()
    assert s.usage is None


def test_last_line_without_newline_is_read_at_finish() -> None:
    s = StreamUsageScanner()
    s.feed(FINAL.rstrip(b"\n"))
    assert s.usage is None
    s.finish()
    assert s.usage == {"prompt_tokens": 7, "completion_tokens": 5}


def test_usage_from_plain_body() -> None:
    assert usage_from_body(b'{"usage": {"total_tokens": 3}}') == {"total_tokens": 3}
    assert usage_from_body(b'not json, but "usage"') is None
    assert usage_from_body(b"{}") is None
