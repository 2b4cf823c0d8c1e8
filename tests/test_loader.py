"""The one model loader: what a run's tuned model is (adapter, full weights, a 4-bit QLoRA base), found in one
place, and eval, chat and export loading it the same way, checked on real SmolLM2 with tiny random adapters.
"""
from __future__ import annotations

import io
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from medtune.cli import main
from medtune.core.errors import MedtuneError
from medtune.core.paths import TEMPLATES_DIR
from medtune.core.rundir import RunDir
from medtune.models import loader
from medtune.recipe.methods import METHODS

SYSTEM_PROMPT = "You are a careful medical assistant. Answer clearly and briefly."
QUESTION = "What are the symptoms of asthma?"
MAX_NEW_TOKENS = 8
UNFINISHED = "has the train stage finished?"


def _run(root: Path, *, model: str = "smollm2-135m-instruct", method: str = "lora", recipe_source: Path | None = None,
         eval_section: dict | None = None) -> RunDir:
    run = RunDir(root)
    run.train.mkdir(parents=True)
    recipe = {"name": root.name, "model": model, "method": {"name": method, "rank": 4},
              "data": {"system_prompt": SYSTEM_PROMPT}, "eval": eval_section or {}}
    run.resolved.write_text(yaml.safe_dump(recipe))
    if recipe_source is not None:
        run.manifest.write_text(json.dumps({"recipe_source": str(recipe_source)}))
    return run


def _local_base(tmp_path: Path) -> tuple[Path, Path]:
    """(recipe file, base model folder beside it), as a recipe naming `model: ./base` has them."""
    recipes = tmp_path / "recipes"
    (recipes / "base").mkdir(parents=True)
    (recipes / "base" / "config.json").write_text("{}")
    return recipes / "r.yaml", recipes / "base"


# ---------------------------------------------------------------- what to load (no model runs)


def test_four_bit_methods_are_the_ones_whose_template_trains_on_a_4bit_base():
    for name in METHODS:
        template = (TEMPLATES_DIR / "methods" / f"{name}.yaml.j2").read_text()
        assert ("load_in_4bit: true" in template) == (name in loader.FOUR_BIT_METHODS), name


def test_adapter_or_full_weights_is_read_from_train(tmp_path: Path):
    recipe, base = _local_base(tmp_path)
    for method, four_bit in (("lora", False), ("qlora", True)):
        run = _run(tmp_path / method, model="./base", method=method, recipe_source=recipe)
        (run.train / "adapter_config.json").write_text("{}")
        base_model, tuned = loader.run_refs(run)
        assert base_model == loader.ModelRef("base", str(base.resolve()))  # the base is never quantized
        assert (tuned.label, tuned.adapter, tuned.full) == ("tuned", str(run.train.resolve()), None)
        assert tuned.quantized_4bit is four_bit
        assert tuned.tokenizer_source() == str(base.resolve())
        (run.train / "tokenizer_config.json").write_text("{}")  # training saved its tokenizer: that one is used
        assert loader.tuned_ref(run).tokenizer_source() == str(run.train.resolve())

    run = _run(tmp_path / "full", model="./base", method="full", recipe_source=recipe)
    (run.train / "config.json").write_text("{}")
    (run.train / "model.safetensors").write_bytes(b"")
    tuned = loader.tuned_ref(run)
    assert (tuned.adapter, tuned.full, tuned.quantized_4bit) == (None, str(run.train.resolve()), False)
    assert tuned.weights_source() == str(run.train.resolve())


def test_a_relative_model_starts_at_the_recipe_file_the_run_came_from(tmp_path: Path, monkeypatch):
    recipe, base = _local_base(tmp_path)
    elsewhere = tmp_path / "cwd"
    (elsewhere / "base").mkdir(parents=True)  # the same relative path from the working directory: not used
    monkeypatch.chdir(elsewhere)
    run = _run(tmp_path / "run", model="./base", recipe_source=recipe)
    (run.train / "adapter_config.json").write_text("{}")
    assert loader.tuned_ref(run).base == str(base.resolve())

    run.manifest.unlink()
    with pytest.raises(MedtuneError, match="recipe_source"):
        loader.tuned_ref(run)


def test_unfinished_training_is_one_error_for_eval_chat_and_export(tmp_path: Path, capsys):
    recipe, _ = _local_base(tmp_path)
    run = _run(tmp_path / "run", model="./base", recipe_source=recipe)
    with pytest.raises(MedtuneError, match=UNFINISHED):
        loader.tuned_ref(run)
    for argv in (["eval", str(run)], ["chat", str(run), "--cli"], ["export", str(run)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert UNFINISHED in err and f"--resume {run}" in err and "Traceback" not in err, (argv, err)


def test_a_4bit_base_is_a_different_model_for_resumed_generations(tmp_path: Path):
    recipe, _ = _local_base(tmp_path)
    run = _run(tmp_path / "run", model="./base", recipe_source=recipe)
    (run.train / "adapter_config.json").write_text("{}")
    tuned = loader.tuned_ref(run)
    assert tuned.identity() != replace(tuned, quantized_4bit=True).identity()


# ---------------------------------------------------------------- eval, chat and export on real SmolLM2


def _random_adapter(model, out: Path) -> None:
    """A LoRA r=4 on q_proj/v_proj with small random B (peft starts B at zero, a no-op adapter), saved by PEFT."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    model.save_pretrained(out)


def _four_bit(smollm2_dir: Path):
    """SmolLM2 quantized as Axolotl's QLoRA training quantizes it (NF4, double quantization, fp32 compute on CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.float32, bnb_4bit_quant_storage=torch.bfloat16)
    return AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32, quantization_config=quantization)


def _tuned_run(root: Path, method: str, model) -> RunDir:
    eval_section = {"metrics": ["rouge"], "baseline": False, "max_new_tokens": MAX_NEW_TOKENS, "bootstrap_samples": 100}
    run = _run(root, method=method, eval_section=eval_section)
    _random_adapter(model, run.train)
    run.data.mkdir()
    row = {"id": "q0", "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": QUESTION},
                                    {"role": "assistant", "content": "Wheezing, coughing and shortness of breath."}]}
    run.split("test").write_text(json.dumps(row) + "\n")
    return run


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, smollm2_dir: Path) -> RunDir:
    from transformers import AutoModelForCausalLM

    return _tuned_run(tmp_path_factory.mktemp("lora") / "tiny-lora", "lora", AutoModelForCausalLM.from_pretrained(smollm2_dir))


@pytest.fixture(scope="module")
def qlora_run(tmp_path_factory, smollm2_dir: Path) -> RunDir:
    return _tuned_run(tmp_path_factory.mktemp("qlora") / "tiny-qlora", "qlora", _four_bit(smollm2_dir))


def _reference_answer(model, tokenizer) -> str:
    """Greedy, straight from transformers: the recipe's system prompt and the chat template (model in the caller's mode)."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": QUESTION}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
    return tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def _spy_on_load(monkeypatch, *modules) -> list:
    """Record every model the loader hands out through these modules' `load`."""
    loaded, load = [], loader.load

    def spy(ref):
        model, tokenizer = load(ref)
        loaded.append(model)
        return model, tokenizer

    for module in modules:
        monkeypatch.setattr(module, "load", spy)
    return loaded


def _eval_answer(run: RunDir) -> str:
    assert main(["eval", str(run), "--no-progress"]) == 0
    records = [json.loads(line) for line in run.generations.read_text().splitlines()]
    assert [(r["model"], r["id"]) for r in records] == [("tuned", "q0")]
    return records[0]["output"]


def _chat_answer(run: RunDir, monkeypatch, capsys) -> str:
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{QUESTION}\n"))  # piped: one question per line
    assert main(["chat", str(run), "--cli", "--max-new-tokens", str(MAX_NEW_TOKENS)]) == 0
    return capsys.readouterr().out.strip()


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_chat_and_eval_give_a_lora_run_the_same_greedy_answer(lora_run: RunDir, smollm2_dir: Path, monkeypatch, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medtune.evaluate import run as eval_run

    loaded = _spy_on_load(monkeypatch, eval_run, loader)
    eval_answer = _eval_answer(lora_run)
    chat_answer = _chat_answer(lora_run, monkeypatch, capsys)
    assert len(loaded) == 2 and all(type(m) is type(loaded[0]) for m in loaded)
    # The adapter unmerged on the fp32 base: the answer the merged model the loader gives must reproduce.
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_dir), lora_run.train).eval()
    reference = _reference_answer(unmerged, AutoTokenizer.from_pretrained(smollm2_dir))
    assert reference and chat_answer == eval_answer == reference


def _assert_4bit_with_adapter_on_top(model) -> None:
    from bitsandbytes.nn import Linear4bit
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    assert isinstance(model, PeftModel)
    lora = [m for m in model.modules() if isinstance(m, LoraLayer)]
    assert len(lora) == 2 * 30 and not any(m.merged for m in lora)  # q_proj and v_proj of 30 layers, unmerged
    assert all(isinstance(m.get_base_layer(), Linear4bit) for m in lora)
    base = model.get_base_model().model.layers[0]
    assert isinstance(base.mlp.down_proj, Linear4bit) and isinstance(base.self_attn.o_proj, Linear4bit)


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_a_qlora_run_is_measured_and_chatted_with_on_its_4bit_base(qlora_run: RunDir, smollm2_dir: Path, monkeypatch,
                                                                     capsys):
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from medtune.evaluate import run as eval_run

    loaded = _spy_on_load(monkeypatch, eval_run, loader)
    eval_answer = _eval_answer(qlora_run)
    chat_answer = _chat_answer(qlora_run, monkeypatch, capsys)
    assert len(loaded) == 2
    for model in loaded:
        _assert_4bit_with_adapter_on_top(model)
    metrics = json.loads(qlora_run.metrics.read_text())
    assert metrics["config"]["models"]["tuned"]["quantized_4bit"] is True
    # Training's own arithmetic: the adapter on the 4-bit base, its layers in training mode (NF4 -> fp32, matmul).
    reference = PeftModel.from_pretrained(_four_bit(smollm2_dir), qlora_run.train)
    reference.eval().get_base_model().train()  # bitsandbytes picks its kernel by mode; dropout is 0 here
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    answer = _reference_answer(reference, tokenizer)
    assert answer and chat_answer == eval_answer == answer
    # Closer than greedy tokens show: bitsandbytes' bf16 CPU kernel for eval mode moves these logits by about 1.
    ids = tokenizer(QUESTION, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        trained = reference(ids).logits
        for model in loaded:
            assert torch.allclose(model(ids).logits, trained, atol=1e-3), (model(ids).logits - trained).abs().max()


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_export_of_a_qlora_run_merges_into_its_dequantized_4bit_base_and_says_so(qlora_run: RunDir, smollm2_dir: Path,
                                                                                   tmp_path: Path, capsys):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "export"
    assert main(["export", str(qlora_run), "--out", str(out)]) == 0
    console = " ".join(capsys.readouterr().out.split())
    assert "loaded in 4 bits (bitsandbytes NF4, as QLoRA trained it) and dequantized to float32" in console
    manifest = json.loads((out / "medtune_export.json").read_text())
    assert manifest["trained_on_4bit_base"] is True and manifest["dtype"] == "float32"
    assert "dequantized to float32" in manifest["merged_into"] and manifest["adapter"] == str(qlora_run.train.resolve())
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    assert not (out / "adapter_config.json").exists()

    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    measured, _ = loader.load(loader.tuned_ref(qlora_run))
    unquantized = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_dir), qlora_run.train).eval()
    ids = torch.tensor([[1, 4093, 314, 253, 2365, 1204, 30, 2]])
    with torch.no_grad():
        a, b, c = exported(ids).logits, measured(ids).logits, unquantized(ids).logits
    assert torch.allclose(a, b, atol=1e-3), (a - b).abs().max()  # what eval measured, in plain fp32 weights
    assert (a - c).abs().max() > 1.0  # not the adapter on the original base: the weights carry the 4-bit rounding


def test_loading_a_model_from_disk_draws_no_weight_loading_bar(tmp_path: Path, monkeypatch, capfd):
    """Eval loads four or more models; transformers' per-load "Loading weights" bar is hidden even online
    (download bars are not touched: the Hub's progress-bar setting stays as the environment has it)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "tiny")
    capfd.readouterr()
    model = loader._weights(loader.ModelRef("base", str(tmp_path / "tiny")))
    assert model.config.num_hidden_layers == 2
    assert "Loading weights" not in capfd.readouterr().err
