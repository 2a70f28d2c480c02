"""Schema violations told in a few hundred characters: the field, what was wrong, what is allowed.

jsonschema's own text quotes the whole offending value and the failing sub-schema; for a 4 MB string or a NIO
`oneOf` that is megabytes, or a wall of nine variants. The client gets the short form; the full detail goes to the
server log at debug level.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

log = logging.getLogger(__name__)

QUOTE_LENGTH = 80  # characters of an offending value quoted back
LIST_LENGTH = 200  # characters of an allowed-values list
MESSAGE_LENGTH = 300  # a jsonschema message longer than this is rewritten

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number",
               type(None): "null"}


def quote(value: Any, limit: int = QUOTE_LENGTH) -> str:
    """A value as JSON, cut to `limit` characters with its full size said."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return text
    size = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} characters of JSON"
    return f"{text[:limit]}... ({size})"


def field_name(error: ValidationError) -> str:
    """`nio.rhost`, `ports[0].vlan`, or `the body` for the top level."""
    name = ""
    for part in error.absolute_path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "the body"


def _join(values: Any, limit: int = LIST_LENGTH) -> str:
    text = ", ".join(quote(v, 40) for v in values)
    return text if len(text) <= limit else text[:limit] + ", ..."


def _types(schema_type: Any) -> str:
    if isinstance(schema_type, list):
        return " or ".join(f"'{t}'" for t in schema_type)
    return f"'{schema_type}'"


def _variant_errors(error: ValidationError) -> tuple[dict[Any, list[ValidationError]], dict[str, list[Any]]]:
    """Sub-errors of a oneOf/anyOf by variant, and the discriminating values (e.g. every NIO `type`) they wanted."""
    variants: dict[Any, list[ValidationError]] = defaultdict(list)
    wanted: dict[str, list[Any]] = defaultdict(list)
    for sub in error.context or ():
        variants[sub.relative_schema_path[0]].append(sub)
    for errors in variants.values():
        for sub in errors:
            if sub.validator in ("enum", "const") and len(sub.relative_path) == 1:
                allowed = sub.validator_value if sub.validator == "enum" else [sub.validator_value]
                wanted[str(sub.relative_path[0])] += [v for v in allowed if v not in wanted[str(sub.relative_path[0])]]
    return variants, wanted


def _describe_alternatives(error: ValidationError) -> str:
    variants, wanted = _variant_errors(error)
    # Variants rejected on their discriminator (a `type` that is not theirs) say nothing about what is wrong.
    matching = [errors for errors in variants.values()
                if not any(e.validator in ("enum", "const") and len(e.relative_path) == 1 for e in errors)]
    if matching:
        sub = best_match(e for errors in matching for e in errors)
        if sub is not None:
            return describe(sub)
    field = field_name(error)
    if len(wanted) == 1:
        key, allowed = next(iter(wanted.items()))
        value = error.instance.get(key) if isinstance(error.instance, dict) else None
        where = f"{field}.{key}" if field != "the body" else key
        if value is None:
            return f"{where} is required; allowed values: {_join(allowed)}"
        return f"{where}: {quote(value)} is not one of {_join(allowed)}"
    return f"{field}: {quote(error.instance)} does not match any of the accepted forms"


def describe(error: ValidationError) -> str:
    """One violation in a sentence that names the field and what is allowed."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        return _describe_alternatives(error)
    field = field_name(error)
    value, rule = error.instance, error.validator_value
    match error.validator:
        case "type":
            return f"{field}: {quote(value)} is not of type {_types(rule)}"
        case "enum":
            return f"{field}: {quote(value)} is not one of {_join(rule)}"
        case "maxLength":
            return f"{field} is too long: {len(value)} characters, at most {rule} allowed"
        case "minLength":
            return f"{field} is too short: at least {rule} character{'s' if rule != 1 else ''} required"
        case "pattern":
            return f"{field}: {quote(value)} does not match the pattern {rule}"
        case "maxItems" | "maxProperties":
            return f"{field} has too many entries: {len(value)}, at most {rule} allowed"
        case "required":
            return error.message if field == "the body" else f"{field}: {error.message}"
    message = error.message
    if len(message) > MESSAGE_LENGTH:
        message = message[:MESSAGE_LENGTH] + "..."
    return message if field == "the body" else f"{field}: {message}"


def request_problem(validator: jsonschema.protocols.Validator, body: Any) -> str | None:
    """`Invalid JSON: <field>: <problem>` for a body that breaks its schema, None when it conforms."""
    error = best_match(validator.iter_errors(body))
    if error is None:
        return None
    if log.isEnabledFor(logging.DEBUG):
        log.debug("Request refused by its schema: %s", error)
    return f"Invalid JSON: {describe(error)}"
