"""Chat (terminal and web page) and export on a fake run holding a real LoRA adapter for the real SmolLM2.

The adapter is made here with peft (small random B matrices, so it changes the model), and every answer
is checked against the same generation done directly with transformers + peft.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from cdp import Browser, chromium_path
from medtune.cli import main

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PROMPT = "You are a careful medical assistant. Answer clearly and briefly."
QUESTION = "What are the symptoms of asthma?"
MAX_NEW_TOKENS = 8

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, smollm2_dir: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path_factory.mktemp("chat") / "runs" / "tiny-lora" / "20260101-000000"
    (run_dir / "train").mkdir(parents=True)
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(smollm2_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():  # peft starts B at zero (a no-op adapter); make it matter, mildly
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    model.save_pretrained(run_dir / "train")
    recipe = {"name": "tiny-lora", "model": "smollm2-135m-instruct", "method": {"name": "lora", "rank": 4},
              "data": {"train": [{"source": "medquad"}], "system_prompt": SYSTEM_PROMPT}}
    (run_dir / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    return run_dir


@pytest.fixture(scope="module")
def expected_answer(lora_run: Path, smollm2_dir: Path) -> str:
    """The answer straight from transformers + peft: recipe system prompt, chat template, greedy."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_dir), lora_run / "train").eval()
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": QUESTION}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
    answer = tokenizer.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert answer, "the reference generation is empty"
    return answer


def test_cli_chat_answers_piped_questions(lora_run: Path, expected_answer: str):
    proc = subprocess.run([sys.executable, "launch.py", "chat", str(lora_run), "--cli", "--max-new-tokens", str(MAX_NEW_TOKENS)],
                          cwd=REPO, input=f"{QUESTION}\n\n{QUESTION}\n", capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = [block.strip() for block in proc.stdout.split("\n\n") if block.strip()]
    assert answers == [expected_answer, expected_answer], proc.stdout  # the blank line is skipped; EOF ends it
    assert "not medical advice" in proc.stderr


# The refusals call launch.py's own `main` in this process (no second interpreter to start and import into);
# the piped chat above and the export below run the real command line.
def test_chat_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys):
    assert main(["chat", str(tmp_path), "--cli"]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the chat server exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"{url} did not answer within {timeout:.0f}s")


# Gradio 6 marks chat bubbles with data-testid="bot"; the text is read when it stops changing.
BOT_TEXT = "Array.from(document.querySelectorAll('[data-testid=\"bot\"]')).map(e => e.innerText.trim()).join('\\n')"


def test_web_chat_in_headless_chromium(lora_run: Path, expected_answer: str, tmp_path: Path):
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium is not installed and could not be (`apt-get install -y chromium`; .ci/run installs it)")
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "launch.py", "chat", str(lora_run), "--port", str(port),
                               "--max-new-tokens", str(MAX_NEW_TOKENS)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    browser = None
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_http(url, server, timeout=300)
        browser = Browser(executable, tmp_path / "profile")
        page = browser.page()
        page.send("Page.enable")
        page.send("Page.navigate", url=url)
        page.wait_for("!!document.querySelector('textarea')", 120, "the chat box")
        disclaimer = page.wait_for("(document.querySelector('#medical-disclaimer') || {}).innerText", 30, "the disclaimer")
        assert "not medical advice" in disclaimer
        assert page.evaluate("document.querySelector('#medical-disclaimer').getBoundingClientRect().height") > 0
        page.evaluate("document.querySelector('textarea').focus()")
        page.type_text(QUESTION)
        page.press_enter()
        page.wait_for(f"{BOT_TEXT} === {expected_answer!r}", 240, f"the answer {expected_answer!r}")
        assert QUESTION in page.evaluate("document.body.innerText")
        # Gradio's share button (it posts the chat to Hugging Face) is an unlabelled icon before "Clear"; it must be off.
        assert page.evaluate("document.querySelector('.icon-button').getAttribute('aria-label')") == "Clear"
        shot = page.screenshot(tmp_path / "chat.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        page.close()
    finally:
        if browser is not None:
            browser.close()
        server.terminate()
        server.wait(timeout=60)
        log.close()
    print(f"screenshot: {shot}")


def test_export_merges_the_adapter_with_the_right_eos(lora_run: Path, smollm2_dir: Path, tmp_path: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    proc = subprocess.run([sys.executable, "launch.py", "export", str(lora_run), "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (out / "config.json").is_file() and any(out.glob("*.safetensors"))
    assert not (out / "adapter_config.json").exists()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.eos_token == "<|im_end|>"
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert merged.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_dir), lora_run / "train").eval()
    ids = tokenizer(QUESTION, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a, b = merged(ids).logits, unmerged(ids).logits
        base = unmerged.get_base_model()
        with unmerged.disable_adapter():
            plain = base(ids).logits
    assert torch.allclose(a, b, atol=1e-3), (a - b).abs().max()
    assert (a - plain).abs().max() > 1e-3  # the adapter is in the weights, not lost in the merge


def test_export_refuses_a_tokenizer_with_the_wrong_eos(lora_run: Path, smollm2_dir: Path, tmp_path: Path, capsys):
    import shutil

    from transformers import AutoTokenizer

    run_dir = tmp_path / "run"
    shutil.copytree(lora_run, run_dir)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    tokenizer.eos_token = "<|im_start|>"  # what the GGUF's own metadata says: generation would never stop
    tokenizer.save_pretrained(run_dir / "train")
    capsys.readouterr()
    assert main(["export", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "<|im_end|>" in err and "Traceback" not in err
    assert not (run_dir / "export").exists()
