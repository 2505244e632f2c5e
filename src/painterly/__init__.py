"""painterly: Gatys, Ecker & Bethge, "Image Style Transfer Using Convolutional Neural
Networks" (CVPR 2016), faithful to the paper and fast on a CPU.

    import painterly
    img = painterly.stylize("photo.jpg", "painting.jpg", size=512)
    painterly.save_image(img, "out.png", img.info["painterly"])   # embeds the recipe

Importing the package does no work: the names below load their modules on first use.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "DEFAULTS": "options",
    "Options": "options",
    "PainterlyError": "errors",
    "Stop": "errors",
    "stylize": "api",
    "run_transfer": "api",
    "reconstruct_content": "api",
    "synthesize_texture": "api",
    "load_image": "imaging",
    "save_image": "imaging",
    "read_recipe": "imaging",
    "Iterate": "result",
    "Result": "result",
    "Stylizer": "engine",
    "figure": "cli.figures",
    "estimate_peak_bytes": "runtime.memory",
    "keep_freed_memory": "runtime.allocator",
    "stylize_video": "video.stylize",
    "stylize_many": "batch.stylize",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'painterly' has no attribute '{name}'")


def __dir__():
    return __all__
