"""Benchmark suites through lm-evaluation-harness: our task files read each suite's pinned Hub copy (or the
publisher's files from `suite_data`), and simple_evaluate scores them, on a seeded stratified sample when limited."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..core import hub_catalog
from ..core.hub import HubDataError, HubDataset, hub_dataset_problem, load_hub_dataset
from .errors import EvalInputError
from .suite_sample import describe, stratified_sample

TASKS_DIR = Path(__file__).parent / "tasks"

# suite name in the recipe -> the lm-eval task or group our task files define for it
SUITE_TASKS = {
    "pubmedqa": "medtune_pubmedqa",
    "medqa": "medtune_medqa_4options",
    "medmcqa": "medtune_medmcqa",
    "mmlu_medical": "medtune_mmlu_medical",
}
MMLU_SUBJECTS = hub_catalog.MMLU_MEDICAL_SUBJECTS
# The publisher's files each suite reads from an `eval.suite_data` folder.
SUITE_FILES = {
    "pubmedqa": ["pubmedqa/ori_pqal.json", "pubmedqa/test_ground_truth.json"],
    "medqa": ["medqa/us_4options_test.jsonl"],
    "medmcqa": ["medmcqa/dev.json"],
    "mmlu_medical": [f"mmlu/{subject}_test.csv" for subject in MMLU_SUBJECTS],
}


class HubSlice(NamedTuple):
    dataset: HubDataset
    configs: tuple[str | None, ...]
    splits: tuple[str, ...]


# What each suite reads from its Hub copy when `eval.suite_data` is unset (tasks/suite_docs.py).
SUITE_HUB = {
    "pubmedqa": HubSlice(hub_catalog.PUBMEDQA, ("pqa_labeled",), ("train",)),  # the official 500 ids of it
    "medqa": HubSlice(hub_catalog.MEDQA, (None,), ("test",)),
    "medmcqa": HubSlice(hub_catalog.MEDMCQA, (None,), ("validation",)),
    "mmlu_medical": HubSlice(hub_catalog.MMLU, MMLU_SUBJECTS, ("test",)),
}
# Item field whose values split a suite into separately reported parts (MedQA: USMLE Step 1 vs Step 2&3).
SUBSET_FIELDS = {"medqa": "meta_info"}
# What a limited run's sample is stratified by, besides the gold answer (named in the report).
STRATA = {"medqa": "step and label"}
SAMPLE_KEY = "medtune_sample"
"""Key of run_harness's results holding, per suite, how its questions were drawn."""

_NO_DATA_FIX = ("set eval.suite_data to a folder of the publishers' files, or let medtune download the Hub copies "
                "once (HF_HUB_OFFLINE unset)")


def _unknown(suites: list[str]) -> list[str]:
    unknown = [suite for suite in suites if suite not in SUITE_TASKS]
    return [f"unknown suite(s) {unknown}; available: {sorted(SUITE_TASKS)}"] if unknown else []


def _hub_problems(suite: str) -> list[str]:
    """Reads the suite's Hub copy (downloading it unless offline): what keeps it from being scored."""
    dataset, configs, splits = SUITE_HUB[suite]
    try:
        tables = load_hub_dataset(dataset, configs=configs, splits=splits)
    except HubDataError as exc:
        return [f"{suite}: {exc}"]
    if suite == "pubmedqa":
        have = {str(pmid) for pmid in tables["pqa_labeled"]["train"]["pubid"]}
        missing = [pmid for pmid in hub_catalog.pubmedqa_test_ids() if pmid not in have]
        if missing:
            return [f"pubmedqa: {dataset.label()} lacks {len(missing)} of the official test split's ids, e.g. {missing[:3]}"]
    return []


def check_suite_data(suite_data: str | Path | None, suites: list[str]) -> Path | None:
    """The suite data folder, or None for the Hub copies (fetched unless offline, and read here to check their
    columns and PubMedQA's test ids); an error names everything missing at once."""
    unknown = _unknown(suites)
    if unknown:
        raise EvalInputError(unknown[0])
    if suite_data is None:
        problems = [line for suite in suites for line in _hub_problems(suite)]
        if problems:
            raise EvalInputError("suite data unavailable (" + _NO_DATA_FIX + "):\n  " + "\n  ".join(problems))
        return None
    root = Path(suite_data).expanduser().resolve()
    missing = [str(root / name) for suite in suites for name in SUITE_FILES[suite] if not (root / name).is_file()]
    if missing:
        raise EvalInputError("suite data missing (set eval.suite_data to the folder holding them, or leave it unset "
                             "for the Hub copies):\n  " + "\n  ".join(missing))
    return root


def suite_data_problems(suite_data: str | Path | None, suites: list[str]) -> list[str]:
    """What the suites would lack at eval time, one line each (empty: all there); for pre-flight, never raises.

    Folder: the publisher files missing from it. Unset: each suite's Hub copy that is neither in the
    local Hugging Face cache nor answered for by the Hub (asked only when not offline; nothing is downloaded).
    """
    if not suites:
        return []
    unknown = _unknown(suites)
    if unknown or suite_data is not None:
        try:
            check_suite_data(suite_data, suites)
        except EvalInputError as exc:
            return [str(exc)]
        return []
    problems = []
    for suite in suites:
        problem = hub_dataset_problem(*SUITE_HUB[suite])
        if problem:
            problems.append(f"{suite}: {problem}; {_NO_DATA_FIX}")
    return problems


def task_manager(suite_data: str | Path | None):
    """lm-eval's TaskManager with our task folder; a suite_data folder reaches the loaders as task metadata."""
    from lm_eval.tasks import TaskManager

    # The harness warns on every custom_dataset task that kwargs can be passed; that is what we do.
    logging.getLogger("lm_eval.api.task").setLevel(logging.ERROR)
    # include_defaults=False: indexing the harness's thousands of shipped task files costs seconds per call,
    # and our task names must not resolve to the shipped (Hub-loading) tasks anyway.
    metadata = {"suite_data": str(suite_data)} if suite_data is not None else {}
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False, metadata=metadata)


def harness_model(model, tokenizer, batch_size: int):
    """Wrap an already loaded model (base or PEFT-wrapped) for the harness, so it is not loaded twice."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def suite_tasks(manager, suites: list[str]) -> dict[str, dict[str, object]]:
    """{suite: {leaf task name: lm-eval Task}}, the documents loaded."""
    from lm_eval.tasks import get_task_dict

    found: dict[str, dict[str, object]] = {}
    for suite in suites:
        leaves: dict[str, object] = {}

        def walk(tree: dict) -> None:
            for name, task in tree.items():
                walk(task) if isinstance(task, dict) else leaves.setdefault(name, task)

        walk(get_task_dict([SUITE_TASKS[suite]], manager))
        found[suite] = leaves
    return found


def draw_samples(manager, suites: list[str], limit: int, seed: int) -> tuple[dict[str, list[int]], dict[str, str]]:
    """({leaf task: document indices to score}, {suite: how they were drawn}): `limit` questions of each
    task, stratified by gold answer (and MedQA's step), seeded by `seed` and the task's name."""
    samples, notes = {}, {}
    for suite, leaves in suite_tasks(manager, suites).items():
        subset_field = SUBSET_FIELDS.get(suite)
        drawn = {}
        for name, task in leaves.items():
            docs = list(task.eval_docs)
            strata = [(doc[subset_field] if subset_field else None, task.doc_to_target(doc)) for doc in docs]
            samples[name] = stratified_sample(strata, limit, seed=f"{seed}:{name}")
            drawn[name] = (len(samples[name]), len(docs))
        notes[suite] = describe(drawn, by=STRATA.get(suite, "label"), seed=seed,
                                per="subject" if suite == "mmlu_medical" else None)
    return samples, notes


def run_harness(lm, suites: list[str], *, suite_data: str | Path | None, limit: int | None, seed: int = 0,
                cache: Path | None = None) -> dict:
    """lm_eval.simple_evaluate on the suites' tasks, zero-shot and without a chat template, as the
    Open Medical-LLM Leaderboard runs them; per-item samples are kept for confusion matrices.

    `limit` scores a seeded sample of that many questions per task that keeps the gold answers' mix
    (draw_samples), never the first ones; results[SAMPLE_KEY] says how each suite's were drawn.
    `cache` (a path prefix) stores each log-likelihood as it is computed (the harness's own
    CachingLM), so a killed run does not score the same requests again; it must be per model.
    """
    from lm_eval import simple_evaluate

    manager = task_manager(check_suite_data(suite_data, suites))
    samples, notes = draw_samples(manager, suites, limit, seed) if limit else (None, {})
    results = simple_evaluate(model=lm, tasks=[SUITE_TASKS[suite] for suite in suites], task_manager=manager,
                              samples=samples, log_samples=True, use_cache=None if cache is None else str(cache))
    results[SAMPLE_KEY] = notes
    return results


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
    """The suite's row of simple_evaluate's results (group row for MMLU), metric names without ',none',
    plus `sample`: how the scored questions were chosen ("all 500", or the seeded stratified draw)."""
    name = SUITE_TASKS[suite]
    row = results.get("groups", {}).get(name) or results["results"][name]
    scores = {key.split(",")[0]: value for key, value in row.items() if key != "alias"}
    available = sum(results["n-samples"][task]["original"] for task in leaf_tasks(results, suite))
    scores["sample"] = results.get(SAMPLE_KEY, {}).get(suite) or f"all {available:,}"
    return scores
