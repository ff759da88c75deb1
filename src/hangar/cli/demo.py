"""``hangar demo``: the main job on the embedded defaults."""

import click


@click.command()
@click.option("--max-tokens", default=64, show_default=True, help="Cap on new tokens per answer.")
@click.option("--question", "questions", multiple=True, help="Ask this instead of the built-in questions (repeatable).")
def demo(max_tokens, questions):
    """Package a local LLM behind a prompt as a chat chain, load it, answer questions."""
    from hangar.config import Settings
    from hangar.demo import QUESTIONS, run_demo

    run_demo(Settings.from_env(), questions=questions or QUESTIONS, max_tokens=max_tokens)
