"""Answer loss in bounded memory: chunked LM head at answer positions only, token-budget batches, long rows counted.

Most tests use a tiny random Llama with SmolLM2's real tokenizer and chat template (fast); the slow ones
score real SmolLM2, among them a ~4k-token row whose peak memory is measured in a fresh process.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from medtune.evaluate import perplexity
from medtune.evaluate import run as run_module
from medtune.evaluate.errors import EvalInputError
from medtune.evaluate.generate import stop_ids, token_budget_batches
from medtune.evaluate.perplexity import answer_losses, answer_span
from medtune.evaluate.spec import EvalSpec
from medtune.models.loader import ModelRef
from medtune.report.run_report import build_report

ANSWER = "Gout is a form of inflammatory arthritis caused by uric acid crystals deposited in the joints. "

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _conversation(question: str, answer: str, system: str | None = None) -> list[dict]:
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


CONVERSATIONS = [_conversation("What is gout?", ANSWER),
                 _conversation("Cause of anemia?", "Iron deficiency.", system="Be brief."),
                 _conversation("Treat asthma how?", ANSWER * 3),
                 _conversation("Insulin?", "The pancreas makes it, in the beta cells of its islets.")]


@pytest.fixture(scope="module")
def tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir)


def _tiny_llama(tokenizer, seed: int = 0):
    """A random two-layer Llama over SmolLM2's vocabulary; a wide init so its predictions are far from uniform."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         initializer_range=0.3, tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def tiny(tokenizer):
    return _tiny_llama(tokenizer)


def _full_logits_nll(model, tokenizer, messages: list[dict]) -> tuple[float, int]:
    """The plain route: the model's logits at every position of the lone row, fp64 cross-entropy of the answer."""
    tokens, start = answer_span(tokenizer, messages, stop_ids(model, tokenizer))
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([tokens])).logits[0].double()
    nll = F.cross_entropy(logits[start - 1:-1], torch.tensor(tokens[start:]), reduction="sum")
    return float(nll), len(tokens) - start


def test_token_budget_batches_take_longest_first_and_stay_within_the_budget():
    lengths = [100, 400, 250, 90, 410, 30, 1200]
    batches = token_budget_batches(lengths, 1000)
    assert batches == [[6], [4, 1], [2, 0, 3, 5]]  # 1200 alone (over the budget); 2 x 410; 4 x 250 = 1000 exactly
    assert token_budget_batches(lengths, 999) == [[6], [4, 1], [2, 0, 3], [5]]
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 1000
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert token_budget_batches([5, 5, 5, 5], 20) == [[0, 1, 2, 3]]
    assert token_budget_batches([5, 5, 5, 5], 19) == [[0, 1, 2], [3]]
    assert token_budget_batches([], 100) == []


def test_chunked_answer_loss_equals_the_full_logits_loss(tiny, tokenizer, monkeypatch):
    expected = [_full_logits_nll(tiny, tokenizer, messages) for messages in CONVERSATIONS]
    # Chunks of 7 positions, and batches of one row, of two (padded) and of all: every boundary is crossed.
    monkeypatch.setattr(perplexity, "LOGITS_CHUNK_ELEMENTS", 7 * len(tokenizer))
    lengths = [len(answer_span(tokenizer, m, stop_ids(tiny, tokenizer))[0]) for m in CONVERSATIONS]
    for budget in (max(lengths), 2 * max(lengths), 10_000):
        got = answer_losses(tiny, tokenizer, CONVERSATIONS, batch_tokens=budget, max_tokens=4096)
        for loss, (nll, tokens) in zip(got, expected):
            assert loss.tokens == tokens and loss.cut == 0
            assert loss.nll / tokens == pytest.approx(nll / tokens, abs=1e-5)


def _limit_cases(model, tokenizer) -> tuple[int, list[str]]:
    """A token limit that the longest prompt fills, and what it does to each row: whole, cut or skipped."""
    spans = [answer_span(tokenizer, messages, stop_ids(model, tokenizer)) for messages in CONVERSATIONS]
    limit = max(start for _, start in spans)
    cases = ["skipped" if start >= limit else "cut" if len(tokens) > limit else "whole" for tokens, start in spans]
    assert set(cases) == {"skipped", "cut", "whole"}, cases  # the rows above cover every case
    return limit, cases


def test_rows_over_the_limit_are_cut_or_skipped_and_counted(tiny, tokenizer):
    stops = stop_ids(tiny, tokenizer)
    limit, cases = _limit_cases(tiny, tokenizer)
    got = answer_losses(tiny, tokenizer, CONVERSATIONS, batch_tokens=4096, max_tokens=limit)
    whole = answer_losses(tiny, tokenizer, CONVERSATIONS, batch_tokens=4096, max_tokens=4096)
    for messages, case, loss, full in zip(CONVERSATIONS, cases, got, whole):
        if case == "skipped":  # its prompt alone fills the limit: nothing of the answer to score
            assert loss is None
        elif case == "whole":
            assert loss.cut == 0 and loss.tokens == full.tokens and loss.nll == pytest.approx(full.nll, abs=1e-5)
        else:  # scored on the answer tokens that fit, and the rest counted
            tokens, start = answer_span(tokenizer, messages, stops)
            assert loss.tokens == limit - start and loss.cut == len(tokens) - limit
            with torch.inference_mode():
                logits = tiny(input_ids=torch.tensor([tokens[:limit]])).logits[0].double()
            nll = F.cross_entropy(logits[start - 1:-1], torch.tensor(tokens[start:limit]), reduction="sum")
            assert loss.nll / loss.tokens == pytest.approx(float(nll) / loss.tokens, abs=1e-5)


def test_peft_adapter_unmerged_on_a_4bit_base_scores_as_its_own_forward(tiny, tokenizer, tmp_path):
    pytest.importorskip("bitsandbytes")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    tiny.save_pretrained(tmp_path / "tiny")
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny", quantization_config=quantization, dtype=torch.float32)
    torch.manual_seed(1)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "lm_head"], init_lora_weights=False,
                      task_type="CAUSAL_LM")  # random B: the adapter changes every logit, the head included
    model = get_peft_model(base, lora).eval()
    assert any(type(module).__name__ == "Linear4bit" for module in model.modules())
    got = answer_losses(model, tokenizer, CONVERSATIONS, batch_tokens=4096, max_tokens=4096)
    for loss, messages in zip(got, CONVERSATIONS):
        nll, tokens = _full_logits_nll(model, tokenizer, messages)
        assert loss.tokens == tokens and loss.nll / tokens == pytest.approx(nll / tokens, abs=1e-5)
    plain = answer_losses(tiny, tokenizer, CONVERSATIONS, batch_tokens=4096, max_tokens=4096)
    assert all(abs(a.nll - b.nll) > 1e-3 for a, b in zip(got, plain))  # the adapter and 4 bits were really there


def test_a_model_that_changes_its_logits_after_the_head_is_refused(tokenizer):
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    config = Gemma2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=16, final_logit_softcapping=0.5,
                          initializer_range=0.3, eos_token_id=tokenizer.eos_token_id)
    model = Gemma2ForCausalLM(config).eval()
    with pytest.raises(EvalInputError, match="transforms its logits after the output embeddings"):
        answer_losses(model, tokenizer, CONVERSATIONS[:1], batch_tokens=4096, max_tokens=4096)


def test_evaluation_counts_long_rows_in_metrics_and_report(tiny, tokenizer, smollm2_dir, tmp_path, monkeypatch):
    run = tmp_path / "runs" / "toy" / "20260101-000000"
    (run / "data").mkdir(parents=True)
    rows = [{"id": f"q{i}", "messages": messages} for i, messages in enumerate(CONVERSATIONS)]
    (run / "data" / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    monkeypatch.setattr(run_module, "load", lambda ref: (tiny, tokenizer))
    limit, cases = _limit_cases(tiny, tokenizer)
    spec = EvalSpec(metrics=["perplexity"], max_new_tokens=2, bootstrap_samples=100, max_test_tokens=limit,
                    perplexity_batch_tokens=512)
    metrics = run_module.evaluate_run(run, spec, base=ModelRef("base", str(smollm2_dir)), tuned=None,
                                      system_prompt=None, disclaimer_text=None, show_progress=False)
    cut, skipped = cases.count("cut"), cases.count("skipped")
    assert metrics["long_rows"] == {"max_test_tokens": limit, "base": {"truncated": cut, "skipped": skipped}}
    assert metrics["models"]["base"]["perplexity"]["n"] == len(rows) - skipped
    per_item = [json.loads(line) for line in (run / "eval" / "per_item.jsonl").read_text().splitlines()]
    for item, case in zip(per_item, cases):
        assert (item["loss"] is None) == (case == "skipped") and bool(item["answer_tokens_cut"]) == (case == "cut")

    build_report(run, show=False)
    report = (run / "report" / "report.md").read_text()
    assert f"eval.max_test_tokens = {limit} tokens" in report and f"base: {cut} cut to fit, {skipped} skipped" in report


@pytest.mark.slow
def test_smollm2_chunked_loss_equals_its_full_logits_loss_on_a_short_row(smollm2_dir):
    from medtune.models.loader import load

    model, tokenizer = load(ModelRef("base", str(smollm2_dir)))
    messages = _conversation("What is gout?", ANSWER, system="Be brief.")
    got = answer_losses(model, tokenizer, [messages], batch_tokens=4096, max_tokens=4096)[0]
    nll, tokens = _full_logits_nll(model, tokenizer, messages)
    assert got.tokens == tokens and got.nll / tokens == pytest.approx(nll / tokens, abs=1e-5)


# Runs in a fresh process so its peak resident memory is the scoring's alone. The peak (VmHWM) is reset
# right before scoring (Linux: "5" into /proc/self/clear_refs); torch's CPU tensors are not seen by tracemalloc.
_MEMORY_PROBE = """
import json, sys, torch
torch.set_num_threads(1)
from medtune.evaluate.perplexity import answer_losses
from medtune.evaluate.spec import EvalSpec
from medtune.models.loader import ModelRef, load

def status(key):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(key))

model, tokenizer = load(ModelRef("base", sys.argv[1]))
answer = sys.argv[2] * int(sys.argv[3])
row = [{"role": "user", "content": "What is gout?"}, {"role": "assistant", "content": answer}]
spec = EvalSpec()
warm = answer_losses(model, tokenizer, [[row[0], {"role": "assistant", "content": sys.argv[2]}]],
                     batch_tokens=spec.perplexity_batch_tokens, max_tokens=spec.max_test_tokens)
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
loss = answer_losses(model, tokenizer, [row], batch_tokens=spec.perplexity_batch_tokens, max_tokens=spec.max_test_tokens)[0]
print(json.dumps({"peak_growth": status("VmHWM") - before, "tokens": loss.tokens, "cut": loss.cut,
                  "row_tokens": len(tokenizer.apply_chat_template(row, return_dict=False)),
                  "vocab": model.get_output_embeddings().out_features, "loss": loss.nll / loss.tokens}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak memory is read from Linux's /proc")
def test_a_4k_token_row_scores_within_a_fraction_of_its_full_logits(smollm2_dir):
    """Bound: the peak memory growth while scoring stays below ONE fp32 full-vocabulary logits tensor of the row.

    The full-logits route necessarily exceeds it: on this row (3,997 tokens; one such tensor is 749 MiB) it grew
    2,281 MiB (logits, their log-softmax, the cross-entropy's copies); the chunked route grew 288 MiB.
    """
    done = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(smollm2_dir), ANSWER, "220"],
                          capture_output=True, text=True, timeout=900, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert 3800 <= probe["row_tokens"] <= 4096 and probe["cut"] == 0  # a ~4k-token row, within the default limit
    assert probe["loss"] < 0.5  # a real score: the sentence repeats 220 times; uniform guessing would be 10.8
    full_logits = probe["row_tokens"] * probe["vocab"] * 4
    assert probe["peak_growth"] < full_logits, (probe["peak_growth"] / 2**20, full_logits / 2**20)
