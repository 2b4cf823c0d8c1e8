"""Preference data: a user's file of (prompt, chosen, rejected) rows, or generated ones, checked row by row and
written as the JSONL a preference stage's Axolotl dataset type reads.

The canonical row, shared with generated data (medtune/augment):
    {"id", "messages": [system?, user], "chosen": str, "rejected": str, "kind"?, "source"?, "qtype"?}
where chosen and rejected are the assistant's texts.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import Field, model_validator

from ..core.schema import Strict
from .errors import PreprocessError
from .readers import iter_json_objects, iter_table, show
from .records import Malformed
from .registry import resolve_path
from .text import clean

TABLE_EXTENSIONS = (".csv", ".tsv", ".xlsx")
JSON_EXTENSIONS = (".jsonl", ".json")
MAX_LISTED = 10
"""Bad rows named in one error; a file with more is reported as these plus a count."""


class PreferenceColumns(Strict):
    prompt: str = "prompt"
    """The column (or JSON key) holding the question."""
    chosen: str = "chosen"
    """The column holding the better answer."""
    rejected: str = "rejected"
    """The column holding the worse answer."""
    system: str | None = None
    """A column holding a per-row system prompt; default: the recipe's data.system_prompt for every row."""


class PreferenceDataSpec(Strict):
    path: str | None = None
    """Your preference file (CSV, TSV, XLSX or JSONL), relative to the recipe file; one row per pair."""
    columns: PreferenceColumns = PreferenceColumns()
    """Which column holds prompt, chosen, rejected (and optionally system)."""
    generated: Literal["knowtuning"] | None = None
    """Instead of a file: the pairs the recipe's `knowtuning:` augmentation builds from the training data."""
    limit: int | None = Field(default=None, gt=0)
    """Use at most the first N pairs (a quick run); default: all."""

    @model_validator(mode="after")
    def _one_source(self) -> "PreferenceDataSpec":
        if (self.path is None) == (self.generated is None):
            raise ValueError("give exactly one of path (your file) or generated: knowtuning")
        return self


# ---------------------------------------------------------------- reading a user file


def _problem_text(path: Path, problems: list[tuple[int | None, str]], total: int) -> str:
    lines = [f"row {row}: {what}" if row is not None else what for row, what in problems[:MAX_LISTED]]
    if total > MAX_LISTED:
        lines.append(f"... and {total - MAX_LISTED} more")
    return "; ".join(lines) if len(lines) == 1 else "\n    " + "\n    ".join(lines)


def _table_rows(path: Path, columns: PreferenceColumns) -> Iterator[tuple[int, dict | Malformed]]:
    rows = iter_table(path)
    header_row = next(rows, None)
    if header_row is None:
        raise PreprocessError("the file has no rows", file=show(path), fix="point the stage at a file with a header and pairs")
    _, header = header_row
    names = [h.strip() for h in header]
    wanted = {role: getattr(columns, role) for role in ("prompt", "chosen", "rejected", "system") if getattr(columns, role)}
    missing = [f"{role} column '{name}'" for role, name in wanted.items() if name not in names]
    if missing:
        raise PreprocessError(f"no {', no '.join(missing)} in the header (its columns: {', '.join(names)})", file=show(path),
                              row=1, fix="rename the column in the file, or map it in the recipe: "
                              "data: {preference: {columns: {prompt: ..., chosen: ..., rejected: ...}}}")
    index = {role: names.index(name) for role, name in wanted.items()}
    for row_no, cells in rows:
        yield row_no, {role: cells[i] if i < len(cells) else "" for role, i in index.items()}


def _json_rows(path: Path, columns: PreferenceColumns) -> Iterator[tuple[int, dict | Malformed]]:
    wanted = {role: getattr(columns, role) for role in ("prompt", "chosen", "rejected", "system") if getattr(columns, role)}
    for row_no, obj in iter_json_objects(path):
        if isinstance(obj, Malformed):
            yield row_no, obj
            continue
        missing = [name for role, name in wanted.items() if name not in obj and role != "system"]
        if missing:
            yield row_no, Malformed(f"{show(path)}:{row_no}", f"no key {', '.join(repr(m) for m in missing)} "
                                    f"(its keys: {', '.join(obj)})")
            continue
        yield row_no, {role: obj.get(name) for role, name in wanted.items()}


def _pair_problem(prompt: str, chosen: str, rejected: str) -> str | None:
    if not prompt:
        return "the prompt is empty (fill it in or delete the row)"
    if not chosen:
        return "the chosen answer is empty (fill it in or delete the row)"
    if not rejected:
        return "the rejected answer is empty (write a worse answer or delete the row)"
    if " ".join(chosen.split()) == " ".join(rejected.split()):
        return "chosen and rejected are the same text, so the pair teaches nothing (write a worse rejected answer or delete the row)"
    return None


def read_preference_file(spec: PreferenceDataSpec, base_dir: Path | None, system_prompt: str | None) -> list[dict]:
    """The file's pairs as canonical rows; PreprocessError naming the file, every bad row and the fix otherwise."""
    path = resolve_path(spec.path, base_dir)
    suffix = path.suffix.lower()
    if suffix in TABLE_EXTENSIONS:
        source = _table_rows(path, spec.columns)
    elif suffix in JSON_EXTENSIONS:
        source = _json_rows(path, spec.columns)
    else:
        raise PreprocessError(f"preference files are {', '.join(TABLE_EXTENSIONS + JSON_EXTENSIONS)}, not '{suffix}'",
                              file=show(path), fix="export the pairs as CSV, XLSX or JSONL")
    rows: list[dict] = []
    problems: list[tuple[int | None, str]] = []
    for row_no, item in source:
        if isinstance(item, Malformed):
            problems.append((row_no, item.why))
            continue
        prompt, chosen, rejected = (clean(item.get(role)) for role in ("prompt", "chosen", "rejected"))
        problem = _pair_problem(prompt, chosen, rejected)
        if problem:
            problems.append((row_no, problem))
            continue
        system = clean(item.get("system")) if spec.columns.system else system_prompt
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        rows.append({"id": f"{path.stem}-{row_no}", "messages": messages, "chosen": chosen, "rejected": rejected,
                     "source": show(path)})
    if problems:
        raise PreprocessError(f"{len(problems)} unusable preference row{'s' if len(problems) != 1 else ''}: "
                              + _problem_text(path, problems, len(problems)), file=show(path),
                              fix="correct or delete the rows named (rows are numbered as a spreadsheet shows them, "
                                  "lines for JSONL)")
    if not rows:
        raise PreprocessError("no preference pairs in the file", file=show(path), fix="add rows under the header")
    return rows[: spec.limit] if spec.limit else rows


def check_canonical(rows: list[dict], label: str) -> None:
    """Generated rows obey the same rules as a user's file; a generator that breaks them is named here."""
    problems = []
    for i, row in enumerate(rows, start=1):
        messages = row.get("messages") or []
        prompt = messages[-1].get("content", "") if messages and messages[-1].get("role") == "user" else ""
        problem = _pair_problem(clean(prompt), clean(row.get("chosen")), clean(row.get("rejected")))
        if problem:
            problems.append((i, problem))
    if problems:
        raise PreprocessError(f"{len(problems)} unusable generated preference rows: "
                              + "; ".join(f"row {r}: {w}" for r, w in problems[:MAX_LISTED]), file=label,
                              fix="the generator made these; report them, or change its settings")
    if not rows:
        raise PreprocessError("the generator made no preference pairs", file=label,
                              fix="give it more training rows, or check its settings")


# ---------------------------------------------------------------- what Axolotl reads


def axolotl_rows(rows: list[dict], method: str, tokenizer: Any = None) -> list[dict]:
    """Canonical rows as the stage's Axolotl dataset type reads them (templates/stages/<method>.yaml.j2):

    - dpo, simpo (`chat_template.default`): messages + chosen/rejected texts; Axolotl renders them with the
      config's chat template.
    - orpo (`chat_template.argilla`): chosen/rejected as the user turn and the answer, system beside them.
    - kto (user-defined type): one row per distinct answer, chosen ones labelled true and rejected ones false,
      prompt and completion rendered here with the chat template the model trains with (tokenizer), since
      Axolotl's KTO types for chat templates are ChatML- or Llama-3-only.
    """
    if method in ("dpo", "simpo"):
        return [{"id": r["id"], "messages": r["messages"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    if method == "orpo":
        out = []
        for r in rows:
            system = [m["content"] for m in r["messages"] if m["role"] == "system"]
            user = {"role": "user", "content": r["messages"][-1]["content"]}
            out.append({"id": r["id"], **({"system": system[0]} if system else {}),
                        "chosen": [user, {"role": "assistant", "content": r["chosen"]}],
                        "rejected": [user, {"role": "assistant", "content": r["rejected"]}]})
        return out
    if method == "kto":
        if tokenizer is None:
            raise ValueError("KTO rows are rendered with the model's tokenizer; pass it")
        out, seen = [], set()
        for r in rows:
            prompt = tokenizer.apply_chat_template(r["messages"], add_generation_prompt=True, tokenize=False)
            for answer, label in ((r["chosen"], True), (r["rejected"], False)):
                if (prompt, answer) in seen:  # one reference answer may head several pairs
                    continue
                seen.add((prompt, answer))
                full = tokenizer.apply_chat_template(r["messages"] + [{"role": "assistant", "content": answer}], tokenize=False)
                out.append({"id": f"{r['id']}-{'good' if label else 'bad'}", "prompt": prompt,
                            "completion": full[len(prompt):], "label": label})
        return out
    raise ValueError(f"unknown preference method {method!r}")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_stage_data(path: Path, rows: list[dict], method: str, tokenizer: Any = None) -> int:
    """Write a stage's pairs as its Axolotl dataset type reads them; tokenizer (a model folder or Hub id) only for
    KTO, whose prompts are rendered here with the chat template the model trains with. Returns the rows written."""
    if method == "kto":
        from .tokens import load_tokenizer

        tokenizer = load_tokenizer(tokenizer)
    out = axolotl_rows(rows, method, tokenizer)
    write_jsonl(path, out)
    return len(out)
