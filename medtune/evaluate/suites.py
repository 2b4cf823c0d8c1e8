"""Benchmark suites through lm-evaluation-harness: our task files for local publisher data, run via simple_evaluate."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EvalInputError

TASKS_DIR = Path(__file__).parent / "tasks"

# suite name in the recipe -> the lm-eval task or group our task files define for it
SUITE_TASKS = {
    "pubmedqa": "medtune_pubmedqa",
    "medqa": "medtune_medqa_4options",
    "medmcqa": "medtune_medmcqa",
    "mmlu_medical": "medtune_mmlu_medical",
}
MMLU_SUBJECTS = ("anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
                 "professional_medicine")
SUITE_FILES = {
    "pubmedqa": ["pubmedqa/ori_pqal.json", "pubmedqa/test_ground_truth.json"],
    "medqa": ["medqa/us_4options_test.jsonl"],
    "medmcqa": ["medmcqa/dev.json"],
    "mmlu_medical": [f"mmlu/{subject}_test.csv" for subject in MMLU_SUBJECTS],
}
# Item field whose values split a suite into separately reported parts (MedQA: USMLE Step 1 vs Step 2&3).
SUBSET_FIELDS = {"medqa": "meta_info"}


def check_suite_data(suite_data: str | Path, suites: list[str]) -> Path:
    """The suite data folder, or an error naming every missing publisher file at once."""
    unknown = [suite for suite in suites if suite not in SUITE_TASKS]
    if unknown:
        raise EvalInputError(f"unknown suite(s) {unknown}; available: {sorted(SUITE_TASKS)}")
    root = Path(suite_data).expanduser().resolve()
    missing = [str(root / name) for suite in suites for name in SUITE_FILES[suite] if not (root / name).is_file()]
    if missing:
        raise EvalInputError("suite data missing (set eval.suite_data to the folder holding them):\n  " + "\n  ".join(missing))
    return root


def suite_data_problems(suite_data: str | Path | None, suites: list[str]) -> list[str]:
    """What the suites would lack at eval time, one line each (empty: all there); for pre-flight, never raises."""
    if not suites:
        return []
    try:
        check_suite_data(suite_data, suites)
    except EvalInputError as exc:
        return [str(exc)]
    return []


def task_manager(suite_data: str | Path):
    """lm-eval's TaskManager with our task folder; suite_data reaches the loaders as task metadata."""
    from lm_eval.tasks import TaskManager

    # The harness warns on every custom_dataset task that kwargs can be passed; that is what we do.
    logging.getLogger("lm_eval.api.task").setLevel(logging.ERROR)
    # include_defaults=False: indexing the harness's thousands of shipped task files costs seconds per call,
    # and our task names must not resolve to the shipped (Hub-loading) tasks anyway.
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata={"suite_data": str(suite_data)})


def harness_model(model, tokenizer, batch_size: int):
    """Wrap an already loaded model (base or PEFT-wrapped) for the harness, so it is not loaded twice."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def run_harness(lm, suites: list[str], *, suite_data: str | Path, limit: int | None, cache: Path | None = None) -> dict:
    """lm_eval.simple_evaluate on the suites' tasks, zero-shot and without a chat template, as the
    Open Medical-LLM Leaderboard runs them; per-item samples are kept for confusion matrices.

    `cache` (a path prefix) stores each log-likelihood as it is computed (the harness's own
    CachingLM), so a killed run does not score the same requests again; it must be per model.
    """
    from lm_eval import simple_evaluate

    root = check_suite_data(suite_data, suites)
    return simple_evaluate(model=lm, tasks=[SUITE_TASKS[suite] for suite in suites], task_manager=task_manager(root),
                           limit=limit, log_samples=True, use_cache=None if cache is None else str(cache))


@dataclass
class SuiteItem:
    """One scored question of a suite, as the harness saw it."""

    task: str
    doc_id: int
    prompt: str
    choices: list[str]
    gold: int
    loglik_pred: int
    correct: bool
    subset: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.task}:{self.doc_id}"


def leaf_tasks(results: dict, suite: str) -> list[str]:
    name = SUITE_TASKS[suite]
    subtasks = results.get("group_subtasks", {}).get(name)
    return list(subtasks) if subtasks else [name]


def suite_items(results: dict, suite: str) -> list[SuiteItem]:
    """Per-question records of one suite from simple_evaluate's logged samples."""
    subset_field = SUBSET_FIELDS.get(suite)
    items = []
    for task in leaf_tasks(results, suite):
        for sample in sorted(results["samples"][task], key=lambda s: int(s["doc_id"])):
            contexts = [arg[0] for arg in sample["arguments"]]
            choices = [arg[1].strip() for arg in sample["arguments"]]  # continuation = target delimiter + choice
            target = sample["target"]
            gold = choices.index(target) if isinstance(target, str) else int(target)
            lls = [resp[0] for resp in sample["filtered_resps"]]
            items.append(SuiteItem(
                task=task, doc_id=int(sample["doc_id"]), prompt=contexts[0], choices=choices, gold=gold,
                loglik_pred=max(range(len(lls)), key=lls.__getitem__), correct=bool(sample["acc"]),
                subset=str(sample["doc"].get(subset_field)) if subset_field else None,
            ))
    return items


def harness_scores(results: dict, suite: str) -> dict:
    """The suite's row of simple_evaluate's results (group row for MMLU), metric names without ',none'."""
    name = SUITE_TASKS[suite]
    row = results.get("groups", {}).get(name) or results["results"][name]
    return {key.split(",")[0]: value for key, value in row.items() if key != "alias"}
