"""Full-weight training in bf16 keeps fp32 master weights (medtune/launch/mixed_precision.py): why, and that it does."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from medtune.core.paths import DATA_DIR

PLUGIN = "medtune.launch.mixed_precision.Fp32MasterWeights"  # the name the templates render


def _tiny_llama(dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).to(dtype)


def _one_adamw_step(model) -> float:
    """One AdamW step at a full fine-tune's learning rate under bf16 autocast; the share of the weights with a
    gradient (embedding rows of unseen tokens have none) that it moved."""
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    pairs = [(p.detach(), b, p.grad != 0) for p, b in zip(model.parameters(), before)]
    return sum(int(((p != b) & g).sum()) for p, b, g in pairs) / sum(int(g.sum()) for _, _, g in pairs)


def test_a_pure_bf16_step_at_1e_5_leaves_most_weights_unchanged():
    """The reason for the plugin: bf16 keeps 8 significant bits, so an update under 1/256 of a weight rounds away."""
    assert _one_adamw_step(_tiny_llama(torch.bfloat16)) < 0.5
    assert _one_adamw_step(_tiny_llama(torch.float32)) > 0.99


def test_plugin_upcasts_for_training_and_restores_the_loading_dtype():
    from axolotl.integrations.base import load_plugin
    from axolotl.utils.dict import DictDefault

    plugin = load_plugin(PLUGIN)  # as Axolotl's plugin manager loads it from the rendered `plugins:` list
    cfg = DictDefault({"torch_dtype": torch.bfloat16})
    model = _tiny_llama(torch.bfloat16)  # as Axolotl loads it under `bf16: true`
    plugin.post_model_load(cfg, model)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    outputs = []
    model.model.layers[0].mlp.down_proj.register_forward_hook(lambda mod, args, out: outputs.append(out.dtype))
    assert _one_adamw_step(model) > 0.99  # every weight moved: fp32 master weights ...
    assert outputs == [torch.bfloat16]  # ... while the matrix multiplies ran in bf16
    plugin.post_train(cfg, model)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}  # train/ holds the base's precision


@pytest.mark.slow
def test_axolotl_trains_full_weights_in_fp32_under_bf16(tmp_path: Path):
    """The real Axolotl path with `bf16: true` and the plugin, as a CUDA full fine-tune renders it, run on CPU: the
    checkpoint holds fp32 weights and fp32 AdamW moments (the optimizer was built on the upcast model) and the
    final weights are bf16 (cast back before Axolotl saved them)."""
    from medtune.launch.train import child_env

    recipe = tmp_path / "bf16-full.yaml"
    recipe.write_text(f"""# python launch.py {recipe}
name: bf16-full
model: smollm2-135m-instruct
method:
  name: full
data:
  train:
    - source: medquad
      path: {DATA_DIR / "medquad_demo.csv"}
      limit: 12
  split: {{val: 0.0, test: 0.1, seed: 3}}
training:
  max_steps: 2
  learning_rate: 1e-5
  micro_batch_size: 2
  sequence_len: 256
  save_steps: 2
launch:
  device: cpu
axolotl:   # a CPU recipe trains in fp32; these render what a CUDA full fine-tune gets
  bf16: true
  plugins: [medtune.launch.axolotl_plugin.SeededInit, {PLUGIN}, medtune.launch.axolotl_plugin.EveryRowPacking]
""")
    runs = tmp_path / "runs"
    from medtune.cli import main

    # The run directory (data, rendered axolotl.yaml) from launch.py's own main, in this process: no second
    # interpreter's imports for a stage that only prepares; the training below is a real Axolotl process.
    assert main([str(recipe), "--stages", "preprocess", "--runs-dir", str(runs)]) == 0
    (run_dir,) = runs.glob("bf16-full/*/")
    # The trainer refuses bf16 off-GPU unless TrainingArguments.use_cpu, which Axolotl 0.19 has no key for: let it
    # through, so torch's CPU autocast stands in for CUDA's. Everything else is `python -m axolotl.cli.train`.
    code = ("import runpy, sys; import transformers.training_args as args; args.is_torch_bf16_gpu_available = lambda: True; "
            "sys.argv = ['axolotl.cli.train', 'axolotl.yaml']; runpy.run_module('axolotl.cli.train', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=run_dir, capture_output=True, text=True, timeout=1200,
                          env=child_env({"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    train = run_dir / "train"
    checkpoint = train / "checkpoint-2"
    with safe_open(checkpoint / "model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32"}
    state = torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True)["state"]
    assert {t.dtype for s in state.values() for k, t in s.items() if k in ("exp_avg", "exp_avg_sq")} == {torch.float32}
    with safe_open(train / "model.safetensors", "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}
    losses = [h["loss"] for h in json.loads((checkpoint / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses)
