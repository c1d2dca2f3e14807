"""Check your understanding: short questions at the end of a lecture notebook, with instant
feedback (ipywidgets), answerable from the notebook's own figures.

``question(prompt, options, answer, why)`` shows the prompt, one radio button per option and,
once the reader picks one, whether it is right and why. A question may be built from the
notebook's numbers (``options`` and ``answer`` computed from them), so it stays true at every
budget. Without a widget front end (nbval, the static book) the options are listed as text.
"""
from __future__ import annotations

RIGHT, WRONG = "✓ Right. ", "✗ Not quite; try again. "


def feedback(options: list[str], answer: int, chosen: str | None, why: str) -> str:
    """The line shown under a question once ``chosen`` is picked ('' before any choice)."""
    if chosen is None:
        return ""
    if chosen not in options:
        raise ValueError(f"{chosen!r} is not one of the options {options}")
    return RIGHT + why if options.index(chosen) == answer else WRONG


def question(prompt: str, options: list[str], answer: int, why: str):
    """A multiple-choice question with instant feedback; ``answer`` indexes ``options``."""
    import ipywidgets as widgets

    if not 0 <= answer < len(options) or len(set(options)) != len(options):
        raise ValueError(f"answer {answer} should index {len(options)} distinct options")
    choice = widgets.RadioButtons(options=options, value=None, layout={"width": "max-content"})
    verdict = widgets.HTML()

    def show(change):
        verdict.value = feedback(options, answer, change["new"], why)

    choice.observe(show, names="value")
    return widgets.VBox([widgets.HTML(f"<b>{prompt}</b>"), choice, verdict])
