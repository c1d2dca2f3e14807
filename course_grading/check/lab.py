"""The Validate button of the student's JupyterLab runs ``course check``.

nbgrader's JupyterLab extension puts a *Validate* button on every notebook's toolbar: it saves
the notebook and posts its path to ``/assignments/validate``. nbgrader's own handler for that
URL runs its validator, which prints a full traceback for every part not written yet. This
server extension (the student edition's ``jupyter_config/`` enables it and turns nbgrader's
off) answers the same URL by running ``course check <assignment> <notebook>`` in the course's
folder, the assignment being the notebook's folder name, and shows what it printed: the same
table of parts and the same last line as in a terminal.

The dialog is nbgrader's: it shows a ``failed`` entry's ``source`` as text and its ``error``
as HTML. The command goes in ``source`` and its output, escaped, in ``error``; a style in the
same HTML hides nbgrader's "The following cell failed:" line, which would name a cell.
"""
from __future__ import annotations

import asyncio
import html
import json
import sys
from pathlib import Path

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

ROUTE = "/assignments/validate"
_HIDE_NBGRADERS_LINE = "<style>#validation-message > div:not(.jp-RenderedText) > p " \
                       "{ display: none; }</style>"


def command(root: Path, notebook: Path) -> list[str]:
    """``course check`` for ``notebook`` (a path under ``root``): its assignment is its folder;
    the released file itself is checked by the assignment's name alone, as the README says."""
    assignment = notebook.parent.name
    released = root / "assignments" / assignment / f"{assignment}.ipynb"
    path = [] if notebook == released.resolve() else [str(notebook.relative_to(root))]
    return ["course", "check", assignment, *path]


def dialog(argv: list[str], printed: str) -> dict:
    """The reply nbgrader's Validate dialog shows: ``$ <argv>`` and what it printed."""
    entry = {"source": "$ " + " ".join(argv), "error": _HIDE_NBGRADERS_LINE + html.escape(printed)}
    return {"success": True, "value": json.dumps({"failed": [entry]})}


class ValidateHandler(APIHandler):
    def initialize(self, root: str) -> None:
        self.root = Path(root).resolve()

    @web.authenticated
    async def post(self) -> None:
        path = self.get_argument("path", None) or (self.get_json_body() or {}).get("path", "")
        notebook = (self.root / path).resolve()
        if not notebook.is_relative_to(self.root) or notebook.suffix != ".ipynb" \
                or not notebook.is_file():
            raise web.HTTPError(404, f"no notebook {path!r} in this course")
        argv = command(self.root, notebook)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "course_grading.cli", *argv[1:], cwd=self.root,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        printed, _ = await process.communicate()
        self.finish(json.dumps(dialog(argv, printed.decode(errors="replace"))))


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": __name__}]


def _load_jupyter_server_extension(server_app) -> None:
    web_app = server_app.web_app
    route = url_path_join(web_app.settings["base_url"], ROUTE)
    web_app.add_handlers(".*$", [(route, ValidateHandler, {"root": server_app.root_dir})])
