"""Template format: variable validation, sandboxed rendering, compile-time checks."""

from __future__ import annotations

import pytest

from prompts import (
    PromptTemplate,
    TemplateRenderError,
    VariableError,
    canonical_version,
    parse_template,
)

BASE = """
name: t
variables:
  q: {type: string, max_length: 50}
  n: {type: integer, default: 2}
  x: {type: number, required: false}
  flag: {type: boolean, default: false}
  items: {type: array, default: [], max_length: 3}
  obj: {type: object, required: false}
messages:
  - role: system
    content: "n={{ n }} flag={{ flag }}"
  - role: user
    content: "{{ q }}{% if x is not none %} x={{ x }}{% endif %}"
"""


def tpl(text: str = BASE) -> PromptTemplate:
    return parse_template(text, source="t.yaml", stem="t")


def one_message(content: str, variables: str = "v: {type: string}") -> PromptTemplate:
    return tpl(
        f"name: t\nvariables:\n  {variables}\nmessages:\n  - role: user\n    content: {content!r}\n"
    )


def test_render_fills_defaults_and_returns_request_fields() -> None:
    out = tpl().render({"q": "hi"})
    assert out.messages == [
        {"role": "system", "content": "n=2 flag=False"},
        {"role": "user", "content": "hi"},
    ]
    assert out.model is None and out.params == {} and out.response_format is None
    assert tpl().render({"q": "hi", "x": 1.5}).messages[1]["content"] == "hi x=1.5"


def test_variable_errors_name_every_offender() -> None:
    with pytest.raises(VariableError) as ei:
        tpl().render({"n": "3", "flag": 1, "items": [1, 2, 3, 4], "zzz": 1})
    e = ei.value
    assert e.variables == ["flag", "items", "n", "q", "zzz"]
    assert "required string missing" in e.problems["q"]
    assert "expected integer, got string" in e.problems["n"]
    assert "expected boolean, got integer" in e.problems["flag"]
    assert "max_length 3" in e.problems["items"]
    assert "not declared" in e.problems["zzz"]
    assert e.status == 400 and e.type == "invalid_request_error"
    assert e.param == "prompt.variables.flag"
    assert e.to_openai()["error"]["code"] == "invalid_prompt_variables"


@pytest.mark.parametrize(
    ("value", "ok"),
    [(True, False), (3, True), (3.0, False)],
)
def test_integer_is_strict(value: object, ok: bool) -> None:
    t = tpl()
    if ok:
        t.render({"q": "a", "n": value})
    else:
        with pytest.raises(VariableError):
            t.render({"q": "a", "n": value})


def test_variables_must_be_an_object() -> None:
    with pytest.raises(VariableError, match="must be an object"):
        tpl().render(["q"])  # type: ignore[arg-type]


def test_unicode_and_large_variables_render_verbatim() -> None:
    t = one_message("<<{{ v }}>>")
    text = "héllo 世界 🚀 \u202e rtl \x00 nul " + "ß" * 10
    assert t.render({"v": text}).messages[0]["content"] == f"<<{text}>>"
    big = "x" * 5_000_000
    assert len(t.render({"v": big}).messages[0]["content"]) == 5_000_004


def test_max_length_counts_characters_not_bytes() -> None:
    t = one_message("{{ v }}", "v: {type: string, max_length: 3}")
    assert t.render({"v": "世界🚀"}).messages[0]["content"] == "世界🚀"
    with pytest.raises(VariableError):
        t.render({"v": "世界🚀!"})


def test_variables_are_data_not_templates() -> None:
    t = one_message("{{ v }}")
    payload = "{{ ''.__class__.__mro__ }}{% for x in range(3) %}x{% endfor %}"
    assert t.render({"v": payload}).messages[0]["content"] == payload


@pytest.mark.parametrize(
    "content",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ self._TemplateReference__context }}",
        "{{ self.__init__.__globals__ }}",
        "{{ v.__class__.__base__ }}",
        "{{ range.__self__ }}",
        "{{ v.format_map }}{{ '{0.__class__}'.format(v) }}",
        "{% set d = dict() %}{{ d.update(a=1) }}",
    ],
)
def test_sandbox_escapes_are_rejected(content: str) -> None:
    try:
        t = one_message(content)
    except ValueError:
        return  # refused at load time is as good as refused at render time
    with pytest.raises(TemplateRenderError) as ei:
        t.render({"v": "x"})
    assert ei.value.status == 422
    assert any(w in ei.value.message for w in ("SecurityError", "unsafe", "UndefinedError"))


def test_template_errors_become_render_errors_not_exceptions() -> None:
    t = one_message("{{ v | int // 0 }}")
    with pytest.raises(TemplateRenderError) as ei:
        t.render({"v": "1"})
    assert ei.value.status == 422 and "ZeroDivisionError" in ei.value.message
    t = one_message("{{ v.missing.deeper }}")
    with pytest.raises(TemplateRenderError, match="Undefined"):
        t.render({"v": "x"})
    t = one_message("{% for i in range(10**9) %}{% endfor %}")
    with pytest.raises(TemplateRenderError, match=r"(?i)range too big"):
        t.render({"v": "x"})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "name: t\nmessages: [{role: user, content: '{{ nope }}'}]\n",
            "undeclared variables: nope",
        ),
        ("name: t\nmessages: [{role: user, content: '{% if %}'}]\n", "TemplateSyntaxError"),
        ("name: t\nmessages: []\n", "messages"),
        ("name: t\nmessages: [{role: robot, content: hi}]\n", "role"),
        ("name: other\nmessages: [{role: user, content: hi}]\n", "must equal the file name"),
        ("name: t\nparams: {model: x}\nmessages: [{role: user, content: hi}]\n", "params may not"),
        ("name: t\nbogus: 1\nmessages: [{role: user, content: hi}]\n", "bogus"),
        (
            "name: t\nvariables: {n: {type: integer, default: x}}\n"
            "messages: [{role: user, content: hi}]\n",
            "expected integer",
        ),
        ("name: t\nresponse_format: {type: xml}\nmessages: [{role: user, content: hi}]\n", "type"),
        ("- a list\n", "YAML mapping"),
        ("name: t\nmessages: [\n", "YAML error"),
    ],
)
def test_invalid_templates_are_refused_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=r"t\.yaml") as ei:
        tpl(text)
    assert problem in str(ei.value)


def test_canonical_version_ignores_formatting_but_not_meaning() -> None:
    a = {"name": "t", "messages": [{"role": "user", "content": "hi"}]}
    b = {"messages": [{"content": "hi", "role": "user"}], "name": "t"}
    assert canonical_version(a) == canonical_version(b)
    assert len(canonical_version(a)) == 12
    c = {"name": "t", "messages": [{"role": "user", "content": "hi!"}]}
    assert canonical_version(a) != canonical_version(c)


def test_examples_are_checked() -> None:
    good = tpl(BASE + "examples:\n  - variables: {q: hi}\n    expect: {contains: [hi]}\n")
    assert good.check_examples() == []
    bad = tpl(
        BASE + "examples:\n  - variables: {q: hi}\n    expect: {contains: [bye]}\n"
        "  - variables: {}\n  - variables: {q: a}\n    expect: {error: invalid_prompt_variables}\n"
    )
    problems = bad.check_examples()
    assert len(problems) == 3
    assert "lacks 'bye'" in problems[0]
    assert "VariableError" in problems[1]
    assert "expected error" in problems[2]


def test_retrieval_block_exposes_hits_and_renders_query() -> None:
    t = tpl(
        """
name: t
variables: {question: {type: string}}
retrieval: {collection: docs, top_k: 2, query: "q: {{ question }}", variable: hits}
messages:
  - role: user
    content: "{% for h in hits %}[{{ loop.index }}] {{ h.text }} {% endfor %}{{ question }}"
"""
    )
    assert t.render_query({"question": "why"}) == "q: why"
    out = t.render({"question": "why"}, context={"hits": [{"text": "because"}]})
    assert out.messages[0]["content"] == "[1] because why"
    assert t.render({"question": "why"}).messages[0]["content"] == "why"
    with pytest.raises(VariableError):
        t.render({"question": "x", "hits": []})  # hits are not a client variable


def test_set_in_one_message_does_not_leak_into_the_next_or_the_globals() -> None:
    t = tpl(
        """
name: t
variables: {v: {type: string}}
messages:
  - role: system
    content: "{% set v = 'changed' %}{% set range = 1 %}{{ v }}"
  - role: user
    content: "{{ v }} {{ range(2) | list }}"
"""
    )
    for _ in range(2):
        out = t.render({"v": "orig"})
        assert [m["content"] for m in out.messages] == ["changed", "orig [0, 1]"]
    assert out.variables == {"v": "orig"}
