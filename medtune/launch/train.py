"""The train stage: start Axolotl through `accelerate launch` inside the run directory, stream and log its output.

The child runs in its own process group, so Ctrl-C or SIGTERM stops every rank it started and leaves
the checkpoints already written; re-running in the same directory resumes from the newest one.
"""
from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..core.console import console
from ..core.env import private_env
from ..core.errors import MedtuneError
from ..core.rundir import RunDir
from ..core.paths import require_importable_from
from ..recipe.schema import Recipe

_STEP = re.compile(r"(?<![\w/])(\d+)/(\d+) \[")
_LOGS = re.compile(r"^\s*(\{'(?:loss|eval_loss|train_runtime)'.*\})\s*$")


class TrainingFailed(MedtuneError):
    exit_code = 1


class Interrupted(MedtuneError):
    exit_code = 130


@dataclass
class TrainResult:
    returncode: int
    history: list[dict] = field(default_factory=list)
    """Every metrics dict the trainer logged (loss per step, eval_loss, the final summary)."""


def accelerate_command(recipe: Recipe, num_processes: int, extra: list[str] | None = None) -> list[str]:
    """`accelerate launch` for this run, from inside the run directory (sys.executable: the same venv)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "accelerate.yaml"]
    if recipe.launch.device == "cpu":
        # An OMP_NUM_THREADS the user set wins, as in accelerate's own default: one thread sums in one order on
        # any machine (the golden-loss tests rely on it); otherwise the cores are shared among the ranks.
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if not threads.isdigit() or int(threads) < 1:
            threads = str(max(1, (os.cpu_count() or 2) // num_processes))
        cmd += ["--num_cpu_threads_per_process", threads]
    cmd += extra or []
    return cmd


def train_command(recipe: Recipe, num_processes: int, module: str = "axolotl.cli.train",
                  config: str = RunDir.AXOLOTL) -> list[str]:
    """The command one training stage runs in the run directory; config: that stage's Axolotl config."""
    return [*accelerate_command(recipe, num_processes), "-m", module, config]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with telemetry off (whoever called us), unbuffered output for the live log, then extra."""
    env = dict(private_env(dict(os.environ)))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _parse_logs(text: str) -> dict | None:
    match = _LOGS.match(text)
    if not match:
        return None
    try:
        raw = ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return None
    parsed = {}
    for key, value in raw.items():
        try:
            parsed[key] = float(value)
        except (TypeError, ValueError):
            parsed[key] = value
    return parsed


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the whole process group (accelerate and every rank), then SIGKILL what is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_logged(cmd: list[str], cwd: Path, log_path: Path, env: dict[str, str], label: str = "train") -> TrainResult:
    """Run cmd in its own process group; tee output to log_path; show a progress bar from tqdm's step counts."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result = TrainResult(returncode=-1)
    previous_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # turn SIGTERM into the same path as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                        TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)
    try:
        with log_path.open("ab") as log, progress:
            task = progress.add_task(label, total=None, loss="")
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                buffer = b""
                while chunk := proc.stdout.read1(65536):
                    log.write(chunk)
                    log.flush()
                    buffer += chunk
                    *pieces, buffer = re.split(rb"[\r\n]", buffer)
                    for piece in pieces:
                        _handle_line(piece.decode("utf-8", "replace"), progress, task, result)
                proc.wait()
            except KeyboardInterrupt:
                progress.console.print("[yellow]stopping training: signalling every process...[/yellow]")
                _stop_group(proc)
                raise Interrupted(f"{label} interrupted; checkpoints so far are kept in {cwd / 'train'}") from None
    finally:
        signal.signal(signal.SIGTERM, previous_term)
    result.returncode = proc.returncode
    return result


def _handle_line(text: str, progress: Progress, task, result: TrainResult) -> None:
    logs = _parse_logs(text)
    if logs is not None:
        result.history.append(logs)
        if "loss" in logs:
            progress.update(task, loss=f"loss {logs['loss']:.4f}")
        elif "eval_loss" in logs:
            progress.console.print(f"  eval_loss {logs['eval_loss']:.4f} at epoch {logs.get('epoch', '?')}")
        return
    step = _STEP.search(text)
    if step and ("it/s]" in text or "s/it]" in text):
        done, total = int(step.group(1)), int(step.group(2))
        # Only the trainer's step bar: not datasets' row bars nor transformers' per-tensor "Loading weights" bar.
        if total > 0 and not any(other in text for other in ("Tokenizing", "examples", "shards", "Loading weights")):
            progress.update(task, completed=done, total=total)
        return
    stripped = text.strip()  # everything is in train.log; the console gets only what needs attention
    if stripped and ("[ERROR]" in stripped or stripped.startswith(("Traceback", "RuntimeError", "ValueError"))):
        progress.console.print(f"  {stripped[:300]}", markup=False, highlight=False)


def split_answer_tokens(run_dir: Path) -> int:
    """Answer tokens (the ones trained on) in Axolotl's tokenized copy of the run's training split (with packing).

    Set beside the trainer's last `tokens/trainable`, it tells whether one epoch trained every row.
    """
    from datasets import load_from_disk

    run = RunDir(run_dir)
    rows = len(run.split("train").read_text().splitlines())
    prepared = [load_from_disk(str(p)) for p in (run.train / "prepared").glob("*/") if (p / "state.json").is_file()]
    train_set = next(d for d in prepared if len(d) == rows and "length" in d.column_names)
    return sum(sum(1 for t in labels if t != -100) for labels in train_set["labels"])


def run_training(run_dir: Path, recipe: Recipe, num_processes: int, env_extra: dict[str, str] | None = None,
                 module: str = "axolotl.cli.train", config: str = RunDir.AXOLOTL, output_dir: Path | None = None,
                 label: str = "train") -> TrainResult:
    """Train one stage: `config` in the run directory, logging to train.log in its output_dir (default train/)."""
    cmd = train_command(recipe, num_processes, module, config)
    env = child_env(env_extra)
    # The ranks start in the run directory and import medtune (its Axolotl plugin, its rank modules) from the venv.
    require_importable_from(run_dir, env)
    log = (output_dir or RunDir(run_dir).train) / RunDir.TRAIN_LOG
    result = run_logged(cmd, run_dir, log, env, label)
    if result.returncode != 0:
        raise TrainingFailed(f"training exited with code {result.returncode}; the last lines of {log} say why" + _tail(log))
    return result


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return ""
    kept = [line for line in text if line.strip() and "it/s]" not in line and "s/it]" not in line][-lines:]
    return "\n" + "\n".join(f"    {line[:300]}" for line in kept)
