"""The `painterly video` verb: its flags and the run from the command line (a thin shell around
stylize_video)."""

from __future__ import annotations

from painterly.cli import verbs
from painterly.errors import Stop
from painterly.imaging import check_output, write_json
from painterly.options import PRESETS
from painterly.video.cache import (
    frame_cache,
)
from painterly.video.io import (
    CONTAINERS,
    DEFAULT_TEMPORAL_WEIGHT,
    probe,
    require,
)
from painterly.video.stylize import Frame, own_size, stylize_video


def add_parser(sub) -> None:
    """The `painterly video` verb (registered by cli.build_parser)."""
    from painterly.cli import terminal

    help_ = "paint every frame of a clip in the manner of STYLE, without flicker (Ruder et al. 2016)"
    sp = sub.add_parser("video", help=help_, description=help_)
    sp.add_argument("input", help="input clip (.mp4, .mov, .mkv, .webm, .gif, ...)")
    sp.add_argument("styles", nargs="+", help="style image(s)")
    sp.add_argument("-o", "--output", required=True, help=f"output clip ({', '.join(CONTAINERS)})")
    sp.add_argument("--preset", choices=PRESETS, default="fast", help=verbs.flag_help("preset"))
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--report", metavar="FILE.json", help="write per-frame details and timing as JSON")
    sp.add_argument(
        "--per-frame",
        action="store_true",
        help="stylise every frame on its own (no flow, no temporal loss): the flickering baseline",
    )
    sp.add_argument(
        "--temporal-weight",
        type=float,
        default=DEFAULT_TEMPORAL_WEIGHT,
        metavar="W",
        help=f"weight of the temporal loss (default: {DEFAULT_TEMPORAL_WEIGHT:g})",
    )
    sp.add_argument(
        "--frame-iterations",
        type=int,
        default=None,
        metavar="N",
        help="L-BFGS steps for each frame after the first, at full size from the warped previous "
        "result (default: the last --iterations count)",
    )
    sp.add_argument(
        "--start", type=int, default=0, metavar="S", help="first frame to stylise (0-based; default 0)"
    )
    sp.add_argument(
        "--frames", type=int, default=None, metavar="N", help="how many frames (default: to the end)"
    )
    sp.add_argument(
        "--keep-frames", action="store_true", help="keep the OUT.frames folder of stylised frames"
    )
    terminal.add_option_flags(sp, "transfer")


def run(args) -> int:
    """`painterly video`: progress over frames, Ctrl-C keeps the finished frames for a rerun."""
    import sys

    from painterly import testhooks
    from painterly.cli import terminal

    o = terminal.options_from_args(args)
    if args.report:
        check_output(args.report, kinds=None)
    progress = terminal.Progress(not args.quiet)
    notes = []
    if args.size is None and not args.scales:  # the clip's own size, at most the default
        require()  # without the video extra: the one line that says what to install
        clip = probe(args.input)
        o = own_size(o, clip.size)
        if o.size < max(clip.size):
            notes.append(
                f"the clip is {clip.size[0]}x{clip.size[1]}; it is painted at a long side of {o.size} px "
                "(the default --size, the most a clip gets unless asked; give --size to change)"
            )
    notes += terminal.input_notes(o, "transfer", None, args.styles)
    for n in notes:
        progress.note(f"painterly: note: {n}")
    with terminal.Interrupt() as interrupt:

        def on_step(it):
            if interrupt.hit:
                raise Stop

        def on_frame(fr: Frame):
            progress(fr)
            testhooks.hold(f"video frame {fr.index}")
            if interrupt.hit:
                raise Stop

        result = stylize_video(
            args.input,
            args.styles,
            args.output,
            o,
            per_frame=args.per_frame,
            temporal_weight=args.temporal_weight,
            frame_iterations=args.frame_iterations,
            start=args.start,
            frames=args.frames,
            keep_frames=args.keep_frames,
            callback=on_frame,
            step_callback=on_step,
            **({"size": args.size} if args.size is not None else {}),
        )
    progress.close()
    if args.report:
        write_json(args.report, dict(result.report(), notes=notes))
    done = result.computed + result.cached
    if result.stopped:
        print(
            f"painterly: interrupted after frame {done}/{result.frames}; the finished frames are kept in "
            f"{frame_cache(args.output)} (run the same command again to continue)",
            file=sys.stderr,
        )
        return 130
    if not args.quiet:
        extra = f", {result.cached} from the cache" if result.cached else ""
        cuts = f", {len(result.cuts)} shot cut(s)" if result.cuts else ""
        print(
            f"wrote {result.output} ({result.frames} frames at {float(result.fps):.3g} fps, "
            f"{result.size[0]}x{result.size[1]}{extra}{cuts}, {result.seconds:.1f} s)",
            file=sys.stderr,
        )
    return 0
