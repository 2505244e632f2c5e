"""The `painterly` command: parse, call the engine, save, and word every error as one line.

The option flags derive from SPECS (terminal.add_option_flags); the progress bar and
the signal handling live in cli/terminal.py, shared with the batch and video verbs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

from painterly import __version__, methods, testhooks
from painterly.cli import verbs
from painterly.cli.terminal import (
    Interrupt,
    Parser,
    Progress,
    add_option_flags,
    input_notes,
    memory_note,
    options_from_args,
    split_list,
    time_note,
)
from painterly.errors import InvalidOption, OutputError, PainterlyError, Stop, choice, user_message
from painterly.imaging import check_output, load_image, numbered_path, read_recipe, save_image, write_json
from painterly.options import DEFAULTS, INITS, JOBS, PRESETS, SPECS, Options


# --- the parser ------------------------------------------------------------------------
def _output_flags(sp) -> None:
    sp.add_argument(
        "--overwrite", action="store_true", help="replace an existing output even if it is read-only"
    )
    sp.add_argument(
        "--overwrite-input",
        action="store_true",
        help="allow the output to replace an input file (refused otherwise)",
    )


def _verb(sub, name: str, description: str = ""):
    """A verb's parser: its one-line help and description from verbs.VERBS."""
    return sub.add_parser(name, help=verbs.VERBS[name], description=description or verbs.VERBS[name])


def _flag(sp, *names, key: str, **kw):
    """A front end's own flag, its help and default from verbs.FLAGS."""
    f = verbs.FLAGS[key]
    if kw.get("action") != "store_true":
        kw.setdefault("default", f.default)
    sp.add_argument(*names, help=verbs.flag_help(key), **kw)


def _figure_number(text: str) -> int:
    from painterly.cli.figures import FIGURES, TITLES

    if text.strip().isdigit() and int(text) in FIGURES:
        return int(text)
    made = "; ".join(f"{n}: {TITLES[n]}" for n in FIGURES)
    raise argparse.ArgumentTypeError(f"there is no figure {text}; the figures are {made}")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="painterly", description="painterly: neural style transfer (Gatys, Ecker & Bethge, CVPR 2016)."
    )
    p.add_argument("--version", action="version", version=f"painterly {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    def job(name, inputs):
        sp = _verb(sub, name)
        for arg, kw in inputs:
            sp.add_argument(arg, **kw)
        _flag(sp, "-o", "--output", key="output", required=True)
        _flag(sp, "--preset", key="preset", choices=PRESETS)
        _flag(sp, "--quiet", key="quiet", action="store_true")
        _flag(sp, "--save-every", key="save_every", type=int, metavar="N")
        _flag(sp, "--report", key="report", metavar="FILE.json")
        _output_flags(sp)
        add_option_flags(sp, name)
        return sp

    job(
        "transfer",
        [("content", dict(help="content photograph")), ("styles", dict(nargs="+", help="style image(s)"))],
    )
    sp = job("content", [("content", dict(help="content photograph"))])
    _flag(sp, "--layer", key="layer")
    sp = job("texture", [("style", dict(help="style image"))])
    _flag(sp, "--layers", key="layers")

    sp = _verb(sub, "rerun")
    sp.add_argument(
        "recipe_from", metavar="IMAGE", help="an image written by painterly (or downloaded from its page)"
    )
    _flag(sp, "-o", "--output", key="output", required=True)
    _flag(sp, "--quiet", key="quiet", action="store_true")
    _flag(sp, "--report", key="report", metavar="FILE.json")
    _output_flags(sp)
    sp.set_defaults(save_every=0)

    from painterly.cli.figures import FIGURES, TITLES

    sp = _verb(sub, "figure", "; ".join(f"{n}: {TITLES[n]}" for n in FIGURES))
    sp.add_argument(
        "number",
        type=_figure_number,
        metavar="NUMBER",
        help=f"the figure: {', '.join(map(str, FIGURES))} (the paper's Fig. 2 is `transfer`)",
    )
    _flag(sp, "-o", "--output", key="output", required=True)
    sp.add_argument("--content", help="content photograph (default: the demo's Tuebingen)")
    sp.add_argument("--style", help="style image (default: the demo's Starry Night)")
    sp.add_argument(
        "--ratios",
        type=split_list(float, "ratios"),
        help="figure 3's alpha/beta columns (default: 1e-5,1e-4,1e-3,1e-2)",
    )
    sp.add_argument("--seeds", type=split_list(int, "seeds"), help="figure 5's noise seeds (default: 0,1,2)")
    _flag(sp, "--preset", key="preset", choices=PRESETS)
    _flag(sp, "--quiet", key="quiet", action="store_true")
    _output_flags(sp)
    add_option_flags(sp, "transfer")
    sp = _verb(sub, "weights")
    sp.add_argument("name", nargs="?", default=None, help="a set: " + ", ".join(_weight_names()))
    sp = _verb(sub, "demo")
    from painterly.assets import DEMO_OUTPUT

    sp.add_argument(
        "-o", "--output", default=None, help=f"where to write the result (default: ./{DEMO_OUTPUT})"
    )
    _flag(sp, "--size", key="demo_size", type=int, default=None, metavar="N")
    sp.add_argument("--weights", default=None, help=SPECS["weights"].help)
    _flag(sp, "--quiet", key="quiet", action="store_true")
    sp = _verb(sub, "serve")
    _flag(sp, "--host", key="host")
    _flag(sp, "--port", key="port", type=int)
    sp.add_argument("--weights", default=None, help=SPECS["weights"].help)
    sp.add_argument(
        "--device",
        default="auto",
        help=SPECS["device"].help + "; several GPUs: the jobs are spread over them (default: auto)",
    )
    _flag(sp, "--concurrency", key="concurrency", type=int, metavar="N")
    _flag(sp, "--queue-size", key="queue_size", type=int, metavar="N")
    from painterly.video import verb as video  # the `video` verb lives in video/verb.py

    video.add_parser(sub)
    from painterly.batch import stylize as batch  # the `batch` verb lives in batch/stylize.py

    batch.add_parser(sub)
    return p


# --- running a job -----------------------------------------------------------------------
def run_job(job: str, content, styles, options: Options, args) -> int:
    from painterly import engine

    inputs = [content, *styles, *_option_files(options)]
    guard = dict(
        inputs=inputs,
        overwrite_input=getattr(args, "overwrite_input", False),
        overwrite_readonly=getattr(args, "overwrite", False),
    )
    out = check_output(args.output, **guard)
    if args.report:
        check_output(args.report, kinds=None, **guard)
    if args.save_every < 0:
        raise InvalidOption(f"--save-every must be >= 0 (0: never), got {args.save_every}")
    progress = Progress(not args.quiet)
    notes: list = []  # said once the run is under way (its options checked): bad input still gets one line

    def say_notes():
        if notes:
            return
        notes.append("")  # computed and said once
        notes.extend(n for n in [memory_note(options, job, content, styles)] if n)
        notes.extend(f"painterly: note: {n}" for n in input_notes(options, job, content, styles))
        for n in notes[1:]:
            progress.note(n)

    noted = []
    with Interrupt() as interrupt:

        def callback(it):
            say_notes()
            note = "" if noted else time_note(it)  # once, at the step that measures the run
            if note:
                progress.note(note)
                noted.append(note)
            progress(it)
            if args.save_every and it.step % args.save_every == 0 and it.step < it.total:
                save_image(it.image(), numbered_path(out, it.step))
            if interrupt.hit:
                raise Stop

        def on_stage(what, i, n):
            if what.startswith("step "):  # the images, options and targets are good: the run starts
                say_notes()
            progress.stage(what, i, n)
            testhooks.hold(f"stage {what} {i}/{n}")
            if interrupt.hit:
                raise Stop

        try:
            result = engine.Stylizer(options).run(
                content, styles, job=job, callback=callback, on_stage=on_stage
            )
        except Stop:  # before the first step completed: there is no picture yet
            progress.close()
            print(
                "painterly: interrupted before the first step completed; nothing was written", file=sys.stderr
            )
            return 130
    progress.close()
    result.save(out)
    if args.report:  # the notes too: what the run changed of its inputs
        write_json(args.report, dict(result.report(), notes=[n.split("note: ", 1)[-1] for n in notes[1:]]))
    if result.stopped:
        print(f"painterly: interrupted at step {result.iterations}; saved {out}", file=sys.stderr)
        return 130
    if not args.quiet:
        what = (
            f"{result.iterations} iterations"
            if result.iterations
            else f"0 iterations: the starting image (--init {result.options.init}), not optimised"
        )
        print(
            f"wrote {out} ({what}, {result.seconds:.1f} s, loss {result.losses['total']:.4g})",
            file=sys.stderr,
        )
    return 0


def _option_files(o: Options) -> list:
    """The input files named by options: --init PATH, the masks."""
    files = [] if o.init in INITS else [o.init]
    files += [p for p in (o.content_mask or "").split(",") if p]
    files += [p for p in o.style_masks if p and p != "all" and not p.replace("+", "").isdigit()]
    return files


def cmd_rerun(args) -> int:

    recipe = read_recipe(args.recipe_from)
    where = f"the recipe in '{args.recipe_from}'"
    if not recipe or not isinstance(recipe.get("options"), dict):
        raise InvalidOption(f"'{args.recipe_from}' carries no painterly recipe")
    if not isinstance(recipe.get("styles") or [], list):
        raise InvalidOption(f"{where} is not usable: its styles are malformed")
    try:
        options = Options.from_dict(recipe["options"])
        methods.validate(options, recipe.get("job", "transfer"), max(len(recipe.get("styles") or []), 1))
    except (TypeError, ValueError) as e:
        if isinstance(e, PainterlyError):
            raise InvalidOption(f"{where} is not usable: {e}") from None
        raise InvalidOption(f"{where} is not usable: its options are malformed") from None
    job = recipe.get("job")
    if job not in JOBS:
        raise InvalidOption(f"{where} names no job painterly knows ({job!r})")
    content = _recipe_input(recipe.get("content"), args.recipe_from, where) if recipe.get("content") else None
    styles = [_recipe_input(s, args.recipe_from, where) for s in recipe.get("styles") or []]
    return run_job(job, content, styles, options, args)


def _recipe_input(item, image_path: str, where: str) -> str:
    """The file a recipe names, found by its path or, for a name alone, next to the image or
    in the current folder; its pixels must still have the recorded SHA-256."""
    import hashlib

    if not isinstance(item, dict) or not isinstance(item.get("pixels_sha256"), str):
        raise InvalidOption(f"{where} is not usable: an input entry is malformed")
    if not item.get("path"):
        raise InvalidOption(f"{where} names an input given in memory, not a file")
    name = str(item["path"])
    candidates = [Path(name)] if Path(name).is_absolute() else [Path(image_path).parent / name, Path(name)]
    for path in candidates:
        if path.is_file():
            img = load_image(path)
            if hashlib.sha256(img.tobytes()).hexdigest() != item["pixels_sha256"]:
                raise InvalidOption(f"input '{path}' has changed since the recipe was written")
            return str(path)
    raise InvalidOption(
        f"input '{name}' of {where} was not found (looked next to the image and in the "
        "current folder); copy it there, or regenerate with the original command"
    )


def cmd_weights(args) -> int:
    from painterly.net import weights

    if args.name is None:
        for name, title, where, present in weights.describe_sets():
            mark = "default" if name == weights.DEFAULT.name else ("present" if present else "not downloaded")
            print(f"{name:12} {mark:15} {title}\n{'':12} {where}")
        return 0
    if args.name == "random":
        print("random: a seeded random network, built in memory")
        return 0
    choice("weights set", args.name, _weight_names())
    print(weights.download(weights.WEIGHT_SETS[args.name]))
    return 0


def _weight_names() -> tuple:
    from painterly.net import weights

    return tuple(weights.WEIGHT_SETS) + ("random",)


def cmd_demo(args) -> int:
    from painterly import assets

    content, style = assets.demo_images()
    out = os.path.abspath(args.output) if args.output else str(Path.cwd() / assets.DEMO_OUTPUT)
    try:
        check_output(out, overwrite_readonly=getattr(args, "overwrite", False))
    except OutputError as e:  # the demo must not end in a dead end: say where else to write
        raise OutputError(f"{e}; run the demo from a folder you can write to, or give -o PATH") from None
    args.output, args.save_every, args.report = out, 0, None
    o = DEFAULTS.replace(
        **({"size": args.size} if args.size is not None else {}),
        **({"weights": args.weights} if args.weights else {}),
    )
    code = run_job("transfer", str(content), [str(style)], o, args)
    if code == 0:
        print(f"the demo result is {out}")
    return code


def cmd_figure(args) -> int:
    from painterly.cli import figures

    inputs = [args.content, args.style]
    out = check_output(
        args.output, inputs=inputs, overwrite_input=args.overwrite_input, overwrite_readonly=args.overwrite
    )
    extra = {k: v for k, v in (("ratios", args.ratios), ("seeds", args.seeds)) if v}
    say = (
        None
        if args.quiet
        else (
            lambda i, n, label: print(
                f"figure {args.number}: run {i}/{n}: {label}", file=sys.stderr, flush=True
            )
        )
    )
    o = methods.validate(options_from_args(args))  # before figure() builds a network with them
    fig = figures.figure(args.number, args.content, args.style, o, progress=say, **extra)
    save_image(fig.image, out)
    if not args.quiet:
        print(f"wrote {out} ({fig.shape[0]}x{fig.shape[1]} cells)", file=sys.stderr)
    return 0


def cmd_serve(args) -> int:
    if not 1 <= args.port <= 65535:
        raise InvalidOption(f"--port must be within 1..65535, got {args.port}")
    if args.concurrency is not None and args.concurrency < 1:
        raise InvalidOption(f"--concurrency must be >= 1, got {args.concurrency}")
    if args.queue_size < 0:
        raise InvalidOption(f"--queue-size must be >= 0, got {args.queue_size}")
    from painterly import web  # imports Gradio lazily; without the [web] extra web.main says so in one line

    warning = web.host_warning(args.host)
    if warning:
        print(f"painterly: warning: {warning}", file=sys.stderr)
    web.main(
        host=args.host,
        port=args.port,
        weights=args.weights,
        device=args.device,
        concurrency=args.concurrency,
        queue_size=args.queue_size,
    )
    return 0


def _interrupted(args, began: float) -> str:
    """The line for a Ctrl-C that ended a verb early: whether its output was written."""
    out = getattr(args, "output", None)
    try:
        wrote = bool(out) and os.stat(out).st_mtime >= began - 0.05  # (file times lag the clock by a tick)
    except (OSError, TypeError, ValueError):
        wrote = False
    return f"painterly: interrupted; wrote {out}" if wrote else "painterly: interrupted; nothing was written"


def main(argv: Optional[List[str]] = None) -> int:
    import time

    began = time.time()
    from painterly.runtime.allocator import keep_freed_memory

    keep_freed_memory()  # this process is ours: freed tensors stay for the next step (runtime/allocator.py)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # bad flags: one line, status 2 (Parser.error)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        if args.verb in ("transfer", "content", "texture"):
            if args.verb != "transfer" and args.init in ("content", "palette"):
                raise InvalidOption(
                    f"--init {args.init}: the {args.verb} job starts from noise, style or an image "
                    "file (a reconstruction starting from its target would be no test)"
                )
            o = options_from_args(args)
            if args.verb == "transfer":
                return run_job("transfer", args.content, args.styles, o, args)
            if args.verb == "content":
                o = o.replace(content_layers=tuple(args.layer.split(",")))
                return run_job("content", args.content, [], o, args)
            o = o.replace(style_layers=tuple(s for s in args.layers.split(",") if s))
            return run_job("texture", None, [args.style], o, args)
        if args.verb == "video":
            from painterly.video import verb as video

            return video.run(args)
        if args.verb == "batch":
            from painterly.batch import stylize as batch

            return batch.run(args)
        return {
            "rerun": cmd_rerun,
            "weights": cmd_weights,
            "demo": cmd_demo,
            "serve": cmd_serve,
            "figure": cmd_figure,
        }[args.verb](args)
    except BaseException as e:  # never a traceback for the user; PAINTERLY_DEBUG=1 shows it
        if isinstance(e, SystemExit) or (
            os.environ.get("PAINTERLY_DEBUG") and not isinstance(e, PainterlyError)
        ):
            raise
        line, code = user_message(e)
        print(_interrupted(args, began) if code == 130 else f"painterly: error: {line}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
