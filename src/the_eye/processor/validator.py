"""The JSON Schema validator The Eye runs on events' `data`: draft 2020-12, with bounded work.

Whatever the schema and the event, checking one event does bounded work and no I/O:

- References resolve only inside the schema (and to the drafts' own meta-schemas): the
  registry's retrieve function refuses every other URI, so no check ever reaches the
  network. `first_unresolvable` finds a reference that would need to, so that such a
  schema is refused when it is registered.
- `pattern`, `patternProperties` (also where `additionalProperties` and
  `unevaluatedProperties` consult it) and `format: regex` run on RE2, whose time is linear
  in the text; a pattern RE2 cannot compile (backreferences, lookaround) is refused.
- `uniqueItems` hashes a canonical encoding of each item: linear, not quadratic.
- `data` nested deeper than `MAX_CHECKED_DEPTH` is not checked at all (`too_deep`).
- Every keyword looks at a deadline first (`deadline`), so a check that runs out of its
  time budget stops with `CheckBudgetExceeded` instead of holding the processor.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import jsonschema._utils
import msgspec
import re2  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from jsonschema_specifications import REGISTRY as SPECIFICATIONS  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

# Deeper `data` is not checked: a recursive schema descends one Python frame per level or
# more, and the interpreter's stack is finite.
MAX_CHECKED_DEPTH = 64

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is reported to the client, not to stderr
_RE2_OPTIONS.max_mem = 8 << 20  # an enormous pattern is refused rather than compiled


class CheckBudgetExceeded(Exception):
    """Checking one event's `data` took longer than its time budget."""


@functools.lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Any:
    """`pattern` compiled by RE2 (cached), or `re2.error` when RE2 cannot run it."""
    return re2.compile(pattern, options=_RE2_OPTIONS)


def regex_problem(pattern: str) -> str | None:
    """Why RE2 cannot compile `pattern`, or None when it can."""
    try:
        compile_regex(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "unknown error"
        return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return None


class _RE2Search:
    """What jsonschema's helpers use of `re` (only `search`), answered by RE2."""

    @staticmethod
    def search(pattern: str, string: str) -> Any:
        return compile_regex(pattern).search(string)


# `additionalProperties` and `unevaluatedProperties` match `patternProperties` through
# helpers of jsonschema that call the standard library's backtracking `re.search`; they
# find `re` as a module attribute, so RE2 takes its place there.
jsonschema._utils.re = _RE2Search  # type: ignore[attr-defined]


_deadline: ContextVar[float] = ContextVar("schema_check_deadline", default=float("inf"))


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Checks in this block raise CheckBudgetExceeded once `seconds` have passed."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


Keyword = Callable[[Any, Any, Any, Any], Any]


def _on_budget(keyword: Keyword) -> Keyword:
    """`keyword`, first making sure the check still has time: every keyword of every
    subschema passes here, so no combination of them runs past the deadline for long."""

    def checked(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if time.monotonic() > _deadline.get():
            raise CheckBudgetExceeded
        errors = keyword(validator, value, instance, schema)
        if errors:
            yield from errors

    return checked


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not compile_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        regex = compile_regex(pattern)
        for key, value in instance.items():
            if regex.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _canonical(value: Any) -> Any:
    """`value` with integral floats as integers, so that items jsonschema deems equal
    (`1` and `1.0`, objects in any key order) encode alike; booleans stay apart from 1."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: dict[bytes, int] = {}
    for index, item in enumerate(instance):
        encoded = msgspec.json.encode(_canonical(item), order="sorted")
        first = seen.setdefault(encoded, index)
        if first != index:
            yield ValidationError(f"has non-unique elements (items {first} and {index} are equal)")
            return


def _regex_format(instance: object) -> bool:
    if isinstance(instance, str):
        compile_regex(instance)
    return True


FORMAT_CHECKER = FormatChecker()
FORMAT_CHECKER.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)
FORMAT_CHECKER.checks("regex", raises=re2.error)(_regex_format)

_KEYWORDS: dict[str, Keyword] = {
    **Draft202012Validator.VALIDATORS,
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "uniqueItems": _unique_items,
}

BoundedValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    validators={name: _on_budget(keyword) for name, keyword in _KEYWORDS.items()},
)


def _refuse(uri: str) -> Resource[Any]:
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


# Only the schema itself (added as the root of each validator) and the meta-schemas.
LOCAL_ONLY: Registry[Any] = SPECIFICATIONS.combine(Registry(retrieve=_refuse))  # type: ignore[call-arg]


def new_validator(schema: Any) -> Validator:
    """A validator of `schema` that resolves references locally and bounds its work."""
    validator: Validator = BoundedValidator(
        schema, format_checker=FORMAT_CHECKER, registry=LOCAL_ONLY
    )
    return validator


def first_unresolvable(schema: Any) -> str | None:
    """The first `$ref` or `$dynamicRef` of `schema` (or of what it refers to) that does
    not resolve inside the schema, or None when every one does."""
    root = DRAFT202012.create_resource(schema)
    stack = [(root, LOCAL_ONLY.resolver_with_root(root))]
    seen: set[int] = set()
    while stack:
        resource, resolver = stack.pop()
        if id(resource.contents) in seen:
            continue
        seen.add(id(resource.contents))
        contents = resource.contents
        if isinstance(contents, dict):
            for keyword in ("$ref", "$dynamicRef"):
                ref = contents.get(keyword)
                if not isinstance(ref, str):
                    continue
                try:
                    resolved = resolver.lookup(ref)
                except Unresolvable:
                    return ref
                target = DRAFT202012.create_resource(resolved.contents)
                stack.append((target, resolved.resolver))
        stack.extend((sub, resolver.in_subresource(sub)) for sub in resource.subresources())
    return None


def too_deep(value: Any, limit: int = MAX_CHECKED_DEPTH) -> bool:
    """Whether `value` nests arrays and objects more than `limit` levels deep."""
    level: list[Any] = [value]
    for _ in range(limit + 1):
        children: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                children.extend(item.values())
            elif isinstance(item, list):
                children.extend(item)
        if not children:
            return False
        level = children
    return True
