"""The verbs of the command line and the front ends' own flags (not Options fields: those are
options.SPECS), each with its help and default, in one place for the CLI, batch, video and the
web page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

from painterly.options import DEFAULTS, PAPER_CONTENT_LAYERS, PAPER_STYLE_LAYERS

# --- the verbs, and the flags of the front ends that are not Options ---------------------
VERBS: Dict[str, str] = {
    "transfer": "paint CONTENT in the manner of STYLE (several styles are blended)",
    "content": "reconstruct CONTENT from white noise using one layer (the paper's Fig. 1, top)",
    "texture": "synthesise STYLE's texture from white noise (the paper's Fig. 1, bottom)",
    "rerun": "regenerate an output from the recipe embedded in it; its inputs must be next to it or in the "
    "current folder (by the names the recipe records), with the same pixels",
    "figure": "regenerate a figure of the paper from your images (a labelled grid)",
    "weights": "list the VGG-19 weights sets and where each lives; with a name, fetch (if needed) "
    "and verify it "
    "and print its path",
    "demo": "stylise the bundled Tuebingen photograph with Starry Night (offline), into the current "
    "directory",
    "serve": "start the web page on this machine (needs the [web] extra)",
}


@dataclass(frozen=True)
class Flag:
    """A front end's own flag (not an Options field): its help and default."""

    help: str
    default: object = None


FLAGS: Dict[str, Flag] = {
    "output": Flag("output image (.png or .jpg)"),
    "quiet": Flag("no progress bar (errors, notes and the last line remain)"),
    "report": Flag("write options, timing and final losses as JSON"),
    "save_every": Flag(
        "write OUT_0100.png etc. every N iterations (the output itself is untouched; 0: never)", 0
    ),
    "preset": Flag(
        "fast: the defaults; quality: 120+80 steps, max pooling (~2x the time); paper: the paper's "
        "procedure (500 steps from noise, fp32, absolute losses); neighbour: neural neighbours (NNST, "
        "experimental)",
        "fast",
    ),
    "layer": Flag("the content layer", PAPER_CONTENT_LAYERS[0]),
    "layers": Flag("comma-separated style layers", ",".join(PAPER_STYLE_LAYERS)),
    "demo_size": Flag("long side of the demo's output in pixels", DEFAULTS.size),
    "host": Flag(
        "interface to bind (loopback only; 0.0.0.0 exposes the page, without authentication)", "127.0.0.1"
    ),
    "port": Flag("the port to serve the page on (1..65535)", 7860),
    "concurrency": Flag("jobs optimising at once (default: one per GPU, else one per CPU)"),
    "queue_size": Flag("jobs that may wait for a free worker; more are refused", 8),
}


def flag_help(name: str) -> str:
    """FLAGS[name]'s help with its default, as --help shows it."""
    f = FLAGS[name]
    return f.help + (f" (default: {f.default})" if f.default not in (None, "") else "")
