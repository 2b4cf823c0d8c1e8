"""`launch.py chat RUN_DIR`: talk to a run's tuned model on a local web page (Gradio), or in the terminal (--cli).

Both use the run's system prompt and the chat template training used (eval's prompts), and stream the answer.
The model is loaded by models.loader exactly as eval loads it, so greedy answers here are eval's answers.
The page listens on 127.0.0.1 only, with no share link and no analytics.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from threading import Thread
from typing import Iterator

from ..core.console import console, err_console
from ..core.errors import MedtuneError
from ..core.rundir import RunDir

DISCLAIMER = ("Research demo, not medical advice: answers come from a small fine-tuned language model and can be wrong, "
              "incomplete or out of date. Ask a healthcare professional about your own situation; in an emergency, "
              "call your local emergency number.")


@dataclass(frozen=True)
class ChatRun:
    """What the chat shows of a run besides its model: its name, its system prompt, what was loaded."""

    name: str
    system_prompt: str | None
    model: str
    format: str = "chat"
    """The recipe's data.format: a plain-text one prompts with its template (one question at a time), as eval does."""


def run_chat(args: argparse.Namespace) -> int:
    if args.max_new_tokens < 1:
        raise MedtuneError(f"--max-new-tokens must be at least 1 (given: {args.max_new_tokens})")
    if args.temperature < 0:
        raise MedtuneError(f"--temperature must be 0 (greedy) or more (given: {args.temperature})")
    from ..models.loader import load, tuned_ref

    run_dir = RunDir.open(args.run_dir, "chat")
    ref = tuned_ref(run_dir)  # checked before the slow load: a run whose train stage has not finished stops here
    recipe = run_dir.resolved_recipe()
    data = recipe.get("data") or {}
    run = ChatRun(str(recipe.get("name") or run_dir.path.name), data.get("system_prompt"), ref.describe(),
                  data.get("format") or "chat")
    err_console.print(f"loading {run.model} ...", markup=False)
    model, tokenizer = load(ref)
    if args.cli:
        return _terminal(run, model, tokenizer, args)
    return _web(run, model, tokenizer, args)


def messages_for(system_prompt: str | None, history: list[dict], question: str) -> list[dict]:
    """The conversation as training saw it: the recipe's system turn, earlier turns, then the question."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*system, *history, {"role": "user", "content": question}]


def prompt_for(run: ChatRun, tokenizer, history: list[dict], question: str) -> list[int]:
    """Eval's prompt for the question: chat turns (earlier ones included) through the chat template, or the
    run's plain-text format template around the question alone (its layouts have no earlier turns)."""
    from ..evaluate.generate import prompt_ids
    from ..preprocess.format import question_segments
    from ..preprocess.layouts import segment_ids, specials

    if run.format == "chat":
        return prompt_ids(tokenizer, messages_for(run.system_prompt, history, question))
    return segment_ids(tokenizer, question_segments(question, run.format, run.system_prompt, specials(tokenizer)))


def stream_answer(model, tokenizer, messages: list[dict], max_new_tokens: int, temperature: float = 0.0,
                  prompt: list[int] | None = None) -> Iterator[str]:
    """Yield the answer's text as it is generated, from eval's prompt (the chat template training used, which
    models.loader set on the tokenizer, or `prompt`'s token ids from prompt_for), stopping at the tokenizer's
    end-of-turn token."""
    import torch
    from transformers import TextIteratorStreamer

    from ..evaluate.generate import prompt_ids

    ids = torch.tensor([prompt if prompt is not None else prompt_ids(tokenizer, messages)],
                       device=next(model.parameters()).device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    settings = dict(max_new_tokens=max_new_tokens, streamer=streamer, eos_token_id=tokenizer.eos_token_id,
                    pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
                    do_sample=temperature > 0)
    if temperature > 0:
        settings["temperature"] = temperature
    errors: list[BaseException] = []

    def generate() -> None:
        try:
            model.generate(**inputs, **settings)
        except BaseException as exc:  # the streamer would wait forever for text; end it and re-raise below
            errors.append(exc)
            streamer.end()

    thread = Thread(target=generate, daemon=True)
    thread.start()
    yield from streamer
    thread.join()
    if errors:
        raise errors[0]


# ---------------------------------------------------------------- terminal


def _terminal(run: ChatRun, model, tokenizer, args: argparse.Namespace) -> int:
    """Interactive: one conversation (each turn sees the earlier ones). Piped: every line is a question of its own."""
    interactive = sys.stdin.isatty()
    err_console.print(DISCLAIMER, style="yellow", markup=False)
    if interactive:
        err_console.print("Type a question; Ctrl-D ends.", style="dim")
    history: list[dict] = []
    while True:
        if interactive:
            try:
                question = input("you> ").strip()
            except EOFError:
                return 0
        else:
            line = sys.stdin.readline()
            if not line:
                return 0
            question = line.strip()
        if not question:
            continue
        if interactive:
            print("model> ", end="", flush=True)
        answer = ""
        for piece in stream_answer(model, tokenizer, messages_for(run.system_prompt, history, question),
                                   args.max_new_tokens, args.temperature, prompt_for(run, tokenizer, history, question)):
            answer += piece
            print(piece, end="", flush=True)
        print("\n", flush=True)
        if interactive:
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


# ---------------------------------------------------------------- web page


def _text(content) -> str:
    """A Gradio message's content as plain text (a string, or a list of parts in newer message formats)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, (list, tuple)):
        return "".join(_text(part) for part in content)
    return ""


def _web(run: ChatRun, model, tokenizer, args: argparse.Namespace) -> int:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported: no usage pings, no version check
    import gradio as gr

    def respond(message: str, history: list[dict]):
        turns = [{"role": m["role"], "content": _text(m.get("content"))} for m in history if m.get("role") in ("user", "assistant")]
        answer = ""
        for piece in stream_answer(model, tokenizer, messages_for(run.system_prompt, turns, message),
                                   args.max_new_tokens, args.temperature, prompt_for(run, tokenizer, turns, message)):
            answer += piece
            yield answer

    with gr.Blocks(title=f"medtune chat: {run.name}", analytics_enabled=False) as page:
        gr.Markdown(f"## medtune chat: {run.name}")
        gr.Markdown(f"**{DISCLAIMER}**", elem_id="medical-disclaimer")
        # No "share" button: it would post the conversation to Hugging Face Spaces discussions.
        chatbot = gr.Chatbot(buttons=["copy", "copy_all"], label="Chat")
        gr.ChatInterface(respond, chatbot=chatbot, analytics_enabled=False, flagging_mode="never", autofocus=True)
        gr.Markdown(f"Model: `{run.model}`. System prompt: {run.system_prompt or '(the chat template default)'}",
                    elem_id="model-info")
    # System fonts only: Gradio's default theme would fetch its font from Google.
    theme = gr.themes.Default(font=("ui-sans-serif", "system-ui", "sans-serif"), font_mono=("ui-monospace", "monospace"))
    console.print(f"chat page on http://127.0.0.1:{args.port} (Ctrl-C stops it)")
    try:
        page.queue().launch(server_name="127.0.0.1", server_port=args.port, share=False, inbrowser=False, theme=theme,
                            footer_links=[], mcp_server=False, ssr_mode=False)
    except OSError as exc:  # Gradio raises OSError when the port is taken
        raise MedtuneError(f"cannot serve on 127.0.0.1:{args.port} ({exc}); pick another port with --port") from None
    return 0
