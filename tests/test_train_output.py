"""Training's console: the trainer's step bar and real errors reach it; other libraries' progress bars do not."""
from __future__ import annotations

import io

from rich.console import Console
from rich.progress import Progress

from medtune.launch.train import TrainResult, _handle_line


def _feed(lines: list[str]) -> tuple[Progress, int, TrainResult, str]:
    out = io.StringIO()
    progress = Progress(console=Console(file=out, width=200))
    task = progress.add_task("train", total=None, loss="")
    result = TrainResult(returncode=-1)
    for line in lines:
        _handle_line(line, progress, task, result)
    return progress, task, result, out.getvalue()


def test_only_the_trainers_step_bar_moves_the_progress():
    progress, task, result, _ = _feed([
        " 14%|█▎        | 3/22 [00:31<03:20, 10.55s/it]",
        # e.g. a model loaded again inside the trainer: it must not turn the step bar into 272/272
        "Loading weights: 100%|██████████| 272/272 [00:00<00:00, 11875.08it/s]",
        "Tokenizing Prompts (num_proc=2): 100%|██████████| 272/272 [00:01<00:00, 200.1 examples/s]",
    ])
    state = progress.tasks[task]
    assert (state.completed, state.total) == (3, 22)


def test_losses_are_kept_and_errors_are_printed():
    _, _, result, printed = _feed(["{'loss': 2.25, 'grad_norm': 1.0, 'learning_rate': 0.0003, 'epoch': 0.05}",
                                   "[2026-11-30 07:12:46,680] [WARNING] [torchao] Failed to load x.so",
                                   "Traceback (most recent call last):"])
    assert result.history == [{"loss": 2.25, "grad_norm": 1.0, "learning_rate": 0.0003, "epoch": 0.05}]
    assert "Traceback" in printed and "torchao" not in printed
