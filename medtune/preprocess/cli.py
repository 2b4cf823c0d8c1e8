"""`launch.py preprocess SOURCE ...`: one source -> train/val/test JSONL + manifest, with a short summary."""
from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import ValidationError

from ..core.schema import validation_problems
from .errors import PreprocessError
from .layouts import FORMATS, TEMPLATED
from .spec import DataSpec, DisclaimerSpec, SourceSpec, SplitSpec

DEFAULT_OUT = Path("runs") / "preprocess"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .registry import source_names

    parser.add_argument("source", metavar="SOURCE",
                        help=f"a dataset name ({', '.join(source_names())}) or the path of your own .csv/.xlsx/.jsonl file")
    parser.add_argument("--path", metavar="P", help="where the named dataset's publisher files are (default: its Hub copy)")
    parser.add_argument("--out", type=Path, metavar="DIR", help=f"output folder (default: {DEFAULT_OUT}/<source>)")
    parser.add_argument("--split", metavar="VAL,TEST", help="held-out shares, e.g. 0.1,0.1 (the default)")
    parser.add_argument("--seed", type=int, metavar="N", help="seed of the split and of --limit sampling (default 42)")
    parser.add_argument("--no-official-split", action="store_true",
                        help="ignore the publisher's own test split (PubMedQA's 500) and use the shares")
    parser.add_argument("--disclaimer", action="store_true", help="append the safety disclaimer to every answer (never twice)")
    parser.add_argument("--disclaimer-text", metavar="TEXT", help="your own disclaimer wording (implies --disclaimer)")
    parser.add_argument("--format", choices=FORMATS, default="chat",
                        help="row layout (default chat); instruction and completion need --tokenizer (its BOS/EOS)")
    parser.add_argument("--full-text", action="store_true", help="cord19: add each paper's body text from its full-text JSON")
    parser.add_argument("--system-prompt", metavar="S", help="system turn put before every question")
    parser.add_argument("--limit", type=int, metavar="N", help="keep at most N records (seeded sample)")
    parser.add_argument("--qtype", action="extend", nargs="+", metavar="Q", help="keep only these question types")
    parser.add_argument("--columns", metavar="question=Q,answer=A", help="for your own file: which column holds what")
    parser.add_argument("--tokenizer", metavar="MODEL",
                        help="model (catalog key, folder or Hub id) whose tokenizer counts tokens (--sequence-len) or frames rows (--format instruction/completion)")
    parser.add_argument("--sequence-len", type=int, metavar="N", help="drop training rows longer than N tokens (needs --tokenizer)")


def _columns(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    mapping = {}
    for part in text.split(","):
        field, sep, column = part.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise PreprocessError(f"--columns: '{part}' is not FIELD=COLUMN", fix="e.g. --columns question=Question,answer=Answer")
        mapping[field.strip()] = column.strip()
    return mapping


def _split(args: argparse.Namespace) -> SplitSpec:
    values = {}
    if args.split:
        try:
            values["val"], values["test"] = (float(x) for x in args.split.split(","))
        except ValueError as exc:
            raise PreprocessError(f"--split: '{args.split}' is not VAL,TEST", fix="e.g. --split 0.1,0.1") from exc
    if args.seed is not None:
        values["seed"] = args.seed
    if args.no_official_split:
        values["official"] = False
    return SplitSpec(**values)


def spec_from_args(args: argparse.Namespace) -> DataSpec:
    source = SourceSpec(source=args.source, path=args.path, columns=_columns(args.columns), qtypes=args.qtype, limit=args.limit,
                        full_text=args.full_text)
    disclaimer = DisclaimerSpec(enabled=bool(args.disclaimer or args.disclaimer_text),
                                **({"text": args.disclaimer_text} if args.disclaimer_text else {}))
    return DataSpec(format=args.format, train=[source], split=_split(args), system_prompt=args.system_prompt,
                    disclaimer=disclaimer)


def _tokenizer(ref: str | None, sequence_len: int | None, fmt: str = "chat") -> str | None:
    if sequence_len is None and fmt not in TEMPLATED:
        if ref:
            raise PreprocessError("--tokenizer is only used to count tokens for --sequence-len N (give both) or to "
                                  "frame --format instruction/completion rows")
        return None
    if not ref:
        need = "--sequence-len" if sequence_len is not None else f"--format {fmt}"
        raise PreprocessError(f"{need} needs --tokenizer MODEL (the model you will train)")
    from ..models.catalog import ensure_local

    return ensure_local(ref)


def _validation_message(exc: ValidationError) -> str:
    where = {"SplitSpec": "--split", "SourceSpec": "SOURCE options", "DisclaimerSpec": "--disclaimer-text"}.get(exc.title, "options")
    lines = [f"  - {problem.render()}" for problem in validation_problems(exc, whole=where)]
    return "invalid options:\n" + "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..core.console import err_console
    from .pipeline import prepare
    from .summary import print_summary

    try:
        spec = spec_from_args(args)
        out = args.out or DEFAULT_OUT / Path(args.source).stem
        manifest = prepare(spec, out, tokenizer=_tokenizer(args.tokenizer, args.sequence_len, args.format),
                           sequence_len=args.sequence_len, base_dir=Path.cwd())
    except ValidationError as exc:
        err_console.print(_validation_message(exc), style="red", markup=False, soft_wrap=True)
        return 2
    except PreprocessError as exc:
        err_console.print(f"error: {exc}", style="red", markup=False, soft_wrap=True)
        return 2
    print_summary(manifest, out)
    return 0
