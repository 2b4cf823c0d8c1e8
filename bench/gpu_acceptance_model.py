"""The stand-in for a catalog model that bench/gpu_acceptance.py trains: random weights in the published
architecture and a byte-level BPE tokenizer written from the rows it trains on, with Llama 3's special tokens at
their real ids and a Llama 3 chat template, placed in a Hugging Face cache under the catalog's Hub id.

Why a stand-in: the lent GPU machines reach no network (no Hub, no gated Meta weights), and what the acceptance
run measures (Axolotl's path, speed, memory, the 4-bit evaluation) depends on the architecture, not the weights'
values. Why in the Hub cache: medtune's recipes then load it by their catalog key as they would the real model
(HF_HUB_OFFLINE=1 makes transformers read the cache), so the chat template, eos/pad tokens and memory plan the
catalog pins are the ones exercised.
"""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

# Llama 3's 256 special tokens (ids 128000-128255, after the 128,000 BPE tokens), as its tokenizer.json lists them.
NAMED_SPECIALS = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 4: "<|finetune_right_pad_id|>",
                  6: "<|start_header_id|>", 7: "<|end_header_id|>", 8: "<|eom_id|>", 9: "<|eot_id|>", 10: "<|python_tag|>"}
FIRST_SPECIAL = 128000
SPECIAL_COUNT = 256
BOS, EOT, PAD = "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>"
END_IDS = [128001, 128008, 128009]  # end_of_text, eom, eot: Llama 3.2's generation_config stops on all three
BPE_VOCAB = 8000  # learned merges from the training rows; the rest of the 128,000 slots are never produced

# The Llama 3 chat format with no "Cutting Knowledge Date / Today Date" system preamble: the same text for the same
# messages on any day (what Axolotl's `llama3` template renders).
CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)


def special_tokens() -> list[str]:
    """The 256 names in id order: the named ones where Llama 3 has them, reserved_special_token_N between."""
    names, reserved = [], 0
    for offset in range(SPECIAL_COUNT):
        if offset in NAMED_SPECIALS:
            names.append(NAMED_SPECIALS[offset])
        else:
            names.append(f"<|reserved_special_token_{reserved}|>")
            reserved += 1
    return names


def corpus(csv_path: Path, extra: list[str]) -> list[str]:
    """The text the tokenizer learns from: every question and answer of a MedQuAD-layout CSV, plus `extra`."""
    with csv_path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [row["Question"] for row in rows] + [row["Answer"] for row in rows] + extra


def write_tokenizer(folder: Path, texts: list[str], llama3_ids: bool = True) -> int:
    """Save a fast tokenizer with Llama 3's layout (128,256 ids, specials at 128000+) to folder; return its length.

    The BPE learns BPE_VOCAB tokens from texts; filler entries take the ids up to 128,000, so the special
    tokens land at their real ids (the tokenizers library numbers added tokens after the vocabulary). The
    fillers have no merge that produces them, so encoding never emits them. Without llama3_ids the specials
    follow the learned tokens directly: a small vocabulary for a CPU stand-in, whose LM head would otherwise
    cost most of each step.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=BPE_VOCAB, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    spec = json.loads(bpe.to_str())
    vocab = spec["model"]["vocab"]
    for index in range(len(vocab), FIRST_SPECIAL if llama3_ids else 0):
        vocab[f"<|medtune_filler_{index}|>"] = index
    first_special = len(vocab)
    tokenizer = Tokenizer.from_str(json.dumps(spec))
    tokenizer.add_special_tokens(special_tokens())
    # As Llama 3's tokenizer: plain encoding starts with <|begin_of_text|>; chat templates put it in themselves.
    tokenizer.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                             special_tokens=[(BOS, first_special)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOT, pad_token=PAD,
                                   model_max_length=131072, clean_up_tokenization_spaces=True)
    fast.chat_template = CHAT_TEMPLATE
    ids = fast.convert_tokens_to_ids([BOS, EOT, PAD])
    if ids != [first_special + 0, first_special + 9, first_special + 4] or len(fast) != first_special + SPECIAL_COUNT:
        raise RuntimeError(f"the written tokenizer's layout is off: {BOS}, {EOT}, {PAD} at {ids}, {len(fast)} ids")
    fast.save_pretrained(folder)
    return len(fast)


def hub_snapshot(hf_home: Path, repo_id: str, label: str) -> Path:
    """An empty snapshot folder for repo_id in the Hub cache under hf_home (refs/main names it), to save into.

    The cache layout is huggingface_hub's (models--ORG--NAME/refs/main, snapshots/REVISION/): with
    HF_HUB_OFFLINE=1 transformers and huggingface_hub resolve repo_id to that folder.
    """
    repo = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    revision = hashlib.sha1(f"medtune-gpu-acceptance:{label}".encode()).hexdigest()
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def llama3_token_ids(vocab_size: int) -> dict:
    """The token ids Llama 3.2's config.json carries (its bos and the three ids generation stops on), for a
    tokenizer of vocab_size ids whose last SPECIAL_COUNT are the special tokens."""
    first = vocab_size - SPECIAL_COUNT
    return {"bos_token_id": first, "eos_token_id": [first + i - FIRST_SPECIAL for i in END_IDS]}
