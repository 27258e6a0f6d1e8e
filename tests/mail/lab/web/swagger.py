"""
Checking JSON answers against Mailpit's API description.

C{mailpit-swagger.json}, beside this file, is Mailpit's own swagger 2.0
file (MIT; see C{mailpit-swagger.LICENSE}).  L{check_answer} takes a path
template as the file writes it (C{/api/v1/message/{ID}}), a method and a
status, and checks an answer's properties and types against that
response's schema: C{$ref}s resolved, arrays and objects walked, every
declared property present (Mailpit always writes them all), C{required},
C{additionalProperties}, integer formats (C{uint64} is never negative),
C{date-time} strings, and C{null} only where C{x-nullable} allows it.
Every problem found is reported, each with where it is
(C{answer.messages[0].From.Address}).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

SWAGGER = Path(__file__).with_name("mailpit-swagger.json")

_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})\Z"
)
_INTEGER_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


class SchemaMismatch(AssertionError):
    """
    An answer that does not fit its schema, or a path, method or status
    the swagger file does not describe.
    """


@cache
def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def load_mailpit_swagger() -> dict[str, Any]:
    """
    Mailpit's swagger.json, parsed (once).
    """
    return _load(SWAGGER)


def resolve(swagger: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """
    C{node} with its C{$ref} (a JSON pointer into C{swagger}, followed
    again while the target is a reference) replaced by what it names.
    """
    seen = []
    while "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/") or ref in seen:
            raise SchemaMismatch(f"cannot resolve $ref {ref!r}")
        seen.append(ref)
        target: Any = swagger
        for token in ref[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or token not in target:
                raise SchemaMismatch(f"$ref {ref!r} names nothing in the file")
            target = target[token]
        node = target
    return node


def _operation(swagger: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    paths = swagger.get("paths", {})
    if path not in paths:
        raise SchemaMismatch(f"the swagger file has no path {path}")
    operations = paths[path]
    if method.lower() not in operations:
        raise SchemaMismatch(
            f"the swagger file has no {method.upper()} {path} "
            f"(it has {', '.join(m.upper() for m in operations)})"
        )
    operation: dict[str, Any] = operations[method.lower()]
    return operation


def response_schema(
    swagger: dict[str, Any], path: str, method: str, status: int | str
) -> dict[str, Any] | None:
    """
    The schema of C{method path}'s answer with C{status} (or the
    C{default} response), resolved; L{None} when that response has none.

    @raise SchemaMismatch: the file describes no such path, method or status.
    """
    responses = _operation(swagger, path, method).get("responses", {})
    response = responses.get(str(status), responses.get("default"))
    if response is None:
        raise SchemaMismatch(
            f"the swagger file has no {status} answer for {method.upper()} {path} "
            f"(it has {', '.join(responses)})"
        )
    schema = resolve(swagger, response).get("schema")
    return None if schema is None else resolve(swagger, schema)


def body_schema(swagger: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    """
    The schema of C{method path}'s request body, resolved.

    @raise SchemaMismatch: the operation takes no body.
    """
    for parameter in _operation(swagger, path, method).get("parameters", []):
        parameter = resolve(swagger, parameter)
        if parameter.get("in") == "body":
            return resolve(swagger, parameter["schema"])
    raise SchemaMismatch(f"{method.upper()} {path} takes no body")


def _type_of(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


def schema_problems(
    swagger: dict[str, Any],
    schema: dict[str, Any],
    value: Any,
    where: str = "answer",
    *,
    all_properties: bool = True,
    allow_extra: bool = True,
) -> list[str]:
    """
    What is wrong with C{value} for C{schema}, one line each, each naming
    where in the value it is (empty when nothing is).

    @param all_properties: every property the schema declares must be
        present (Mailpit writes them all); otherwise only C{required} ones.
    @param allow_extra: properties the schema does not declare are fine.
    """
    schema = resolve(swagger, schema)
    options = {"all_properties": all_properties, "allow_extra": allow_extra}
    if value is None:
        if schema.get("x-nullable") or schema.get("nullable"):
            return []
        expected = schema.get("type", "a value")
        return [f"{where}: null, expected {expected}"]
    kind = schema.get("type") or ("object" if "properties" in schema else None)
    if kind is None:
        return []  # any value
    actual = _type_of(value)
    fits = actual == kind or (kind == "number" and actual == "integer")
    if not fits:
        return [f"{where}: expected {kind}, got {actual} ({_shown(value)})"]
    problems: list[str] = []
    form = schema.get("format")
    if kind == "integer" and form in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[form]
        if not low <= value <= high:
            problems.append(f"{where}: {value} is out of range for {form}")
    elif kind == "string" and form == "date-time":
        problems += _date_time_problems(value, where)
    elif kind == "array":
        items = schema.get("items", {})
        for index, item in enumerate(value):
            problems += schema_problems(
                swagger, items, item, f"{where}[{index}]", **options
            )
    elif kind == "object":
        problems += _object_problems(swagger, schema, value, where, options)
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {_shown(value)} is not one of {schema['enum']}")
    return problems


def _date_time_problems(value: str, where: str) -> list[str]:
    match = _DATE_TIME.match(value)
    try:
        if match is None:
            raise ValueError
        datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return [f"{where}: {value!r} is not an RFC 3339 date-time"]
    return []


def _object_problems(
    swagger: dict[str, Any],
    schema: dict[str, Any],
    value: dict[str, Any],
    where: str,
    options: dict[str, bool],
) -> list[str]:
    problems = []
    declared: dict[str, Any] = schema.get("properties", {})
    needed = set(declared) if options["all_properties"] else set()
    needed |= set(schema.get("required", []))
    for name in sorted(needed - set(value)):
        problems.append(f"{where}.{name}: missing")
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        if name in declared:
            problems += schema_problems(
                swagger, declared[name], item, f"{where}.{name}", **options
            )
        elif isinstance(extra, dict):
            problems += schema_problems(
                swagger, extra, item, f"{where}[{name!r}]", **options
            )
        elif extra is False or (extra is None and not options["allow_extra"]):
            problems.append(f"{where}.{name}: not in the schema")
    return problems


def check_answer(
    swagger: dict[str, Any],
    path: str,
    method: str,
    status: int | str,
    answer: Any,
    *,
    all_properties: bool = True,
    allow_extra: bool = True,
) -> None:
    """
    Check the JSON C{answer} of C{method path} with C{status} against its
    schema in C{swagger}.

    @param path: the path template as the swagger file writes it.
    @raise SchemaMismatch: listing every problem, or saying that the file
        describes no such answer.
    """
    schema = response_schema(swagger, path, method, status)
    if schema is None:
        raise SchemaMismatch(
            f"{method.upper()} {path} {status} has no schema to check against"
        )
    problems = schema_problems(
        swagger,
        schema,
        answer,
        all_properties=all_properties,
        allow_extra=allow_extra,
    )
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        raise SchemaMismatch(
            f"{method.upper()} {path} {status} does not fit Mailpit's schema "
            f"({count}):\n  " + "\n  ".join(problems)
        )


__all__ = [
    "SWAGGER",
    "SchemaMismatch",
    "body_schema",
    "check_answer",
    "load_mailpit_swagger",
    "resolve",
    "response_schema",
    "schema_problems",
]
