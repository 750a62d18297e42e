"""The template format: one YAML file per prompt, validated by pydantic, rendered by Jinja2.

Why a sandbox: templates arrive by pull request and variables arrive from clients; neither may reach
Python internals. ``ImmutableSandboxedEnvironment`` blocks ``__class__``-style attribute walks and
mutation of passed-in objects; ``StrictUndefined`` turns a typo into an error instead of an empty
string. Templates compile once, when the file is loaded, never per request.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from jinja2 import StrictUndefined, Template, TemplateError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from ._errors import PromptError, TemplateRenderError, VariableError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
VarType = Literal["string", "integer", "number", "boolean", "array", "object"]
Role = Literal["system", "developer", "user", "assistant"]

# Body keys a template's ``params`` may not set: they belong to the request or to other fields.
_RESERVED_PARAMS = frozenset(
    {"model", "messages", "prompt", "stream", "response_format", "user", "tools"}
)
# Names every Jinja environment defines; a template may use them without declaring them.
_JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop"})


@functools.cache
def jinja_environment() -> ImmutableSandboxedEnvironment:
    """The one sandboxed environment templates compile in (created once, never per request).

    ``from_string`` does not use the environment's template cache, so sharing it holds no
    per-template state.
    """
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


@functools.cache
def _globals() -> Mapping[str, Any]:
    """The sandbox's globals (range, cycler, ...) as one flat read-only mapping."""
    return dict(jinja_environment().globals)


def canonical_version(data: Any) -> str:
    """Short hash (12 hex chars) of a template's canonical content.

    Canonical = the parsed YAML as JSON with sorted keys, so comments, key order and formatting
    do not make a new version, while any change of meaning does.
    """
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


class VariableSpec(BaseModel):
    """A declared template variable. ``required`` defaults to true unless a default is given."""

    model_config = ConfigDict(extra="forbid")

    type: VarType = "string"
    required: bool = True
    default: Any = None
    description: str = ""
    max_length: int | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _required_from_default(cls, data: Any) -> Any:
        if isinstance(data, dict) and "default" in data and "required" not in data:
            data = {**data, "required": False}
        return data

    @model_validator(mode="after")
    def _check_default(self) -> VariableSpec:
        if self.default is not None:
            problem = check_type(self.default, self)
            if problem:
                raise ValueError(f"default {problem}")
        if self.max_length is not None and self.type not in ("string", "array"):
            raise ValueError("max_length applies to string and array variables only")
        return self


class Message(BaseModel):
    """One chat message; ``content`` is a Jinja2 template."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str


class RetrievalSpec(BaseModel):
    """Retrieval done before rendering: hits are exposed to the template as ``variable``."""

    model_config = ConfigDict(extra="forbid")

    collection: str = Field(min_length=1)
    top_k: int = Field(default=4, ge=1, le=100)
    query: str = Field(min_length=1, description="Jinja2 template rendered with the variables")
    filters: dict[str, Any] | None = None
    variable: str = "documents"

    @field_validator("variable")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not v.isidentifier():
            raise ValueError("must be an identifier")
        return v


class ExampleExpect(BaseModel):
    """What a smoke-test example expects from rendering (extra keys are kept for evals)."""

    model_config = ConfigDict(extra="allow")

    contains: list[str] = Field(default_factory=list)
    error: str | None = Field(default=None, description="expected error code, e.g. invalid_...")


class Example(BaseModel):
    """Variables to render the template with, run by ``validate``."""

    model_config = ConfigDict(extra="forbid")

    variables: dict[str, Any] = Field(default_factory=dict)
    documents: list[dict[str, Any]] | None = Field(
        default=None, description="hits to expose when the template has a retrieval block"
    )
    expect: ExampleExpect | None = None


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """The result of rendering: messages plus what the template says about the request."""

    messages: list[dict[str, str]]
    model: str | None
    params: dict[str, Any]
    response_format: dict[str, Any] | None
    variables: dict[str, Any] = field(default_factory=dict)


def check_type(value: Any, spec: VariableSpec) -> str | None:
    """Why ``value`` does not fit ``spec``, or None if it does."""
    t = spec.type
    ok: bool
    if t == "string":
        ok = isinstance(value, str)
    elif t == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif t == "boolean":
        ok = isinstance(value, bool)
    elif t == "array":
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, dict)
    if not ok:
        return f"expected {t}, got {_json_type(value)}"
    if spec.max_length is not None and len(value) > spec.max_length:
        unit = "characters" if t == "string" else "items"
        return f"longer than max_length {spec.max_length} {unit} ({len(value)})"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class PromptTemplate(BaseModel):
    """One prompt template file. Compiles its Jinja2 sources once, at construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict, description="sampling parameters")
    variables: dict[str, VariableSpec] = Field(default_factory=dict)
    messages: list[Message] = Field(min_length=1)
    response_format: dict[str, Any] | None = None
    retrieval: RetrievalSpec | None = None
    examples: list[Example] = Field(default_factory=list)

    _asts: tuple[nodes.Template, ...] = PrivateAttr(default=())
    _compiled: tuple[Template, ...] | None = PrivateAttr(default=None)
    _defaults: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("must match [A-Za-z0-9][A-Za-z0-9_.-]* (no '@', no '/')")
        return v

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(_RESERVED_PARAMS & v.keys())
        if bad:
            raise ValueError(f"params may not set {', '.join(bad)}")
        return v

    @field_validator("variables")
    @classmethod
    def _variable_names(cls, v: dict[str, VariableSpec]) -> dict[str, VariableSpec]:
        bad = [k for k in v if not k.isidentifier()]
        if bad:
            raise ValueError(f"variable names must be identifiers: {', '.join(bad)}")
        return v

    @field_validator("response_format")
    @classmethod
    def _response_format(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and v.get("type") not in ("text", "json_object", "json_schema"):
            raise ValueError("type must be text, json_object or json_schema")
        return v

    @model_validator(mode="after")
    def _retrieval_var(self) -> PromptTemplate:
        if self.retrieval is not None and self.retrieval.variable in self.variables:
            raise ValueError(
                f"retrieval variable {self.retrieval.variable!r} clashes with a declared variable"
            )
        return self

    def model_post_init(self, __context: Any) -> None:
        """Parse and check every Jinja source now; compile to Python lazily (see compile)."""
        env = jinja_environment()
        known = set(self.variables) | _JINJA_GLOBALS
        if self.retrieval is not None:
            known.add(self.retrieval.variable)
        asts: list[nodes.Template] = []
        sources = [(f"messages[{i}].content", m.content) for i, m in enumerate(self.messages)]
        if self.retrieval is not None:
            sources.append(("retrieval.query", self.retrieval.query))
        for where, src in sources:
            try:
                ast = env.parse(src)
                used = meta.find_undeclared_variables(ast)
            except TemplateError as e:
                raise ValueError(f"{where}: {type(e).__name__}: {e}") from None
            allowed = known if where != "retrieval.query" else known - {self._doc_var}
            undeclared = sorted(used - allowed)
            if undeclared:
                raise ValueError(f"{where} uses undeclared variables: {', '.join(undeclared)}")
            asts.append(ast)
        self._asts = tuple(asts)
        self._defaults = {k: s.default for k, s in self.variables.items() if not s.required}

    def compile(self) -> tuple[Template, ...]:
        """Compile the parsed sources once (about 1 ms per message).

        Lazy so that loading a long history stays cheap; the registry compiles the versions it
        serves when it loads, so requests never pay for it. Two threads racing here both build
        the same result, so no lock is needed.
        """
        compiled = self._compiled
        if compiled is None:
            env = jinja_environment()
            try:
                compiled = tuple(env.from_string(ast) for ast in self._asts)
            except TemplateError as e:  # pragma: no cover - parse already succeeded
                raise TemplateRenderError(f"template error: {type(e).__name__}: {e}") from None
            self._compiled = compiled
        return compiled

    @property
    def _doc_var(self) -> str:
        return self.retrieval.variable if self.retrieval is not None else ""

    def validate_variables(self, variables: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check values against the declarations; return them with defaults filled in."""
        if variables is None:
            variables = {}
        if not isinstance(variables, Mapping):
            raise VariableError(
                {"variables": f"must be an object, got {_json_type(variables)}"},
                param="prompt.variables",
            )
        problems: dict[str, str] = {}
        out = dict(self._defaults)
        for key, value in variables.items():
            spec = self.variables.get(key)
            if spec is None:
                problems[str(key)] = "not declared by the template"
                continue
            if value is None and not spec.required:
                continue
            problem = check_type(value, spec)
            if problem:
                problems[key] = problem
            else:
                out[key] = value
        for key, spec in self.variables.items():
            if spec.required and key not in variables:
                problems[key] = f"required {spec.type} missing"
        if problems:
            raise VariableError(problems)
        return out

    def render(
        self,
        variables: Mapping[str, Any] | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        _validated: bool = False,
    ) -> RenderedPrompt:
        """Validate ``variables`` and render the messages.

        ``context`` adds values that are not declared variables (the retrieval hits). Raises
        :class:`VariableError` or :class:`TemplateRenderError`, never anything else.
        """
        validated = dict(variables or {}) if _validated else self.validate_variables(variables)
        values = {**_globals(), **validated}
        if context:
            values.update(context)
        if self.retrieval is not None and self._doc_var not in values:
            values[self._doc_var] = []
        messages: list[dict[str, str]] = []
        compiled = self._compiled or self.compile()
        for msg, tpl in zip(self.messages, compiled, strict=False):
            messages.append({"role": msg.role, "content": _render(tpl, values).strip()})
        return RenderedPrompt(
            messages=messages,
            model=self.model,
            params=dict(self.params),
            response_format=dict(self.response_format) if self.response_format else None,
            variables=validated,
        )

    def render_query(self, variables: Mapping[str, Any]) -> str:
        """Render the retrieval query from already validated variables."""
        if self.retrieval is None:
            raise TemplateRenderError(f"prompt {self.name!r} has no retrieval block")
        compiled = self._compiled or self.compile()
        return _render(compiled[-1], {**_globals(), **variables}).strip()

    def check_examples(self) -> list[str]:
        """Render every example; return the problems found (empty when all pass)."""
        problems: list[str] = []
        for i, ex in enumerate(self.examples):
            expect = ex.expect or ExampleExpect()
            try:
                ctx = None
                if self.retrieval is not None:
                    ctx = {self._doc_var: ex.documents or []}
                rendered = self.render(ex.variables, context=ctx)
                if self.retrieval is not None:
                    self.render_query(self.validate_variables(ex.variables))
            except PromptError as e:
                if expect.error and expect.error in (e.code, type(e).__name__):
                    continue
                problems.append(f"examples[{i}]: {type(e).__name__}: {e.message}")
                continue
            if expect.error:
                problems.append(f"examples[{i}]: expected error {expect.error}, rendered fine")
                continue
            text = "\n".join(m["content"] for m in rendered.messages)
            for needle in expect.contains:
                if needle not in text:
                    problems.append(f"examples[{i}]: rendered text lacks {needle!r}")
        return problems


def _render(tpl: Template, values: dict[str, Any]) -> str:
    """Render like ``Template.render`` without its per-call copy of the globals.

    ``values`` already holds the environment's globals (see ``_with_globals``), so the context
    can share it instead of building a ChainMap copy each call: this halves the cost of a render.
    The sandbox is unaffected: its checks live in the compiled code.
    """
    try:
        ctx = tpl.new_context(values, shared=True)  # parent dict is read, never written
        return "".join(tpl.root_render_func(ctx))
    except PromptError:
        raise
    except Exception as e:  # any template failure is the template's fault, never a 500
        raise TemplateRenderError(f"template error: {type(e).__name__}: {e}") from None


def parse_template(text: str | bytes, *, source: str, stem: str | None = None) -> PromptTemplate:
    """Parse one YAML file into a template; raise ``ValueError`` with a readable message."""
    data = load_yaml(text, source=source)
    return template_from_data(data, source=source, stem=stem)


def load_yaml(text: str | bytes, *, source: str) -> Any:
    """Safe-load YAML (C loader when available); ``ValueError`` on syntax errors."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as e:
        raise ValueError(f"{source}: YAML error: {e}") from None


def template_from_data(data: Any, *, source: str, stem: str | None = None) -> PromptTemplate:
    """Validate parsed YAML; the ``name`` must equal the file's stem when one is given."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a template is a YAML mapping, got {_json_type(data)}")
    if stem is not None:
        data = {"name": stem, **data} if "name" not in data else data
        if data["name"] != stem:
            raise ValueError(f"{source}: name {data['name']!r} must equal the file name {stem!r}")
    try:
        return PromptTemplate.model_validate(data)
    except ValidationError as e:
        parts = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"]) or "template"
            parts.append(f"{loc}: {err['msg']}")
        raise ValueError(f"{source}: " + "; ".join(parts)) from None
    except ValueError as e:  # raised by model_post_init (Jinja syntax, undeclared names)
        raise ValueError(f"{source}: {e}") from None
