"""The strict pydantic base every recipe section derives from (unknown keys are errors, not defaults), and the one
reading of a pydantic ValidationError as medtune's problems: key path, what was given, what is allowed."""
from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import Problem, did_you_mean


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)


def model_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (unwrapping Optional, list, Union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple):
        for arg in typing.get_args(annotation):
            found = model_class(arg)
            if found is not None:
                return found
    return None


def _fields_at(root: type[BaseModel] | None, loc: tuple) -> list[str]:
    """Field names allowed at the mapping that contains loc[-1]."""
    cls = root
    for part in loc[:-1]:
        if cls is None:
            return []
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part)
        cls = model_class(field.annotation) if field else None
    return sorted(cls.model_fields) if cls else []


def key_path(loc: tuple, whole: str = "(top level)") -> str:
    """`training.lora[0].rank` from pydantic's location tuple; `whole` where the error is about the whole object."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or whole


def validation_problems(exc: ValidationError, root: type[BaseModel] | None = None, *, at: tuple = (),
                        whole: str = "(top level)") -> list[Problem]:
    """Every error of a pydantic validation as a Problem.

    root: the model validated, to list the keys allowed where an unknown one stands; at: the location of
    that model in the file (("eval",) for a recipe's eval section), put before each key path; whole: the
    path shown for an error about the whole object (a model validator's).
    """
    problems = []
    for err in exc.errors(include_url=False):
        # Validators' and literal unions' own location parts name no key the user wrote.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
        path = key_path(at + loc, whole)
        kind, given = err["type"], err.get("input")
        if kind == "extra_forbidden":
            allowed = _fields_at(root, loc)
            problems.append(Problem(path, "unknown key", allowed=tuple(allowed), suggestion=did_you_mean(loc[-1], allowed)))
        elif kind == "literal_error":
            expected = [s.strip().strip("'") for s in err["ctx"]["expected"].replace(" or ", ", ").split(",")]
            problems.append(Problem(path, "not an accepted value", given, tuple(expected), did_you_mean(given, expected)))
        elif kind == "missing":
            problems.append(Problem(path, "required key is missing"))
        else:
            problems.append(Problem(path, err["msg"], given if not isinstance(given, (dict, list)) else None))
    return problems
