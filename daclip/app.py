"""A local demo: upload an image, pick a method, see the result beside it and the predicted degradation.

    pip install 'daclip-toolkit[demo]'
    python -m daclip.app                                   # weight-free methods (classical)
    python -m daclip.app --daclip daclip_ViT-B-32.pt --weights ours=universal-ir.pth
    python -m daclip.app --weights nafnet-degradation=runs/nd/ema.pth --port 7861

It serves on http://127.0.0.1:7860 (``--host 0.0.0.0`` to share it on your network) and
needs no internet: Gradio's analytics are off and the page uses system fonts. The methods
offered are the weight-free ones plus every method whose weights are given with ``--weights``
or are in the weights cache. Restoration is ``daclip.restore`` (the same pixels as
``python -m daclip.restore``); with a DA-CLIP (a DA-CLIP method's own, or ``--daclip``) the
predicted degradation type is shown, and the type-aware ``classical`` method can use it
("auto").
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

from builders.errors import UserError, cli_entry
from builders.io import MAX_PIXELS, add_pixel_limit_option, pixel_limit
from builders.tasks import DEGRADATIONS

AUTO = "auto (DA-CLIP)"
NO_PREDICTION = "not predicted (no DA-CLIP loaded)"


def _offline_gradio():
    """Import gradio with its analytics and update checks off (the demo never calls out)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("GRADIO_TELEMETRY_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise UserError("the demo needs Gradio: pip install 'daclip-toolkit[demo]' (or pip install gradio)") from None
    return gr


@dataclass
class DemoConfig:
    weights: dict[str, str] = field(default_factory=dict)  # method -> weights path
    daclip: str | None = None
    daclip_model: str = ""
    device: str | None = None
    #: Uploads larger than this (pixels) are refused from their header, before decoding: one
    #: request must not take the server's memory (a 140 KB PNG can hold 144 megapixels).
    max_pixels: int | None = MAX_PIXELS


def available_methods(cfg: DemoConfig) -> tuple[dict[str, str], dict[str, str]]:
    """(display name -> method name) of the methods that can run, and (method -> why not) of the rest."""
    from .registry import method_specs
    from .weights import WeightsUnavailable, resolve_weights

    ready, missing = {}, {}
    for name, spec in method_specs().items():
        if spec.needs_weights and name not in cfg.weights:
            try:
                resolve_weights(name, download=False)
            except WeightsUnavailable as exc:
                missing[name] = str(exc)
                continue
        ready[spec.display_name] = name
    return ready, missing


def restore_for_demo(cfg: DemoConfig, image, method: str, task: str):
    """(restored image, predicted-type text or probabilities) for the page."""
    from .restore import get_restorer

    if image is None:
        raise UserError("upload an image first")
    chosen = None if task in (None, "", AUTO) else task
    r = get_restorer(method, weights=cfg.weights.get(method), options={}, task=chosen, daclip=cfg.daclip,
                     daclip_model=cfg.daclip_model, device=cfg.device, max_pixels=cfg.max_pixels)
    out = r(image)
    label = out.probabilities if out.probabilities is not None else NO_PREDICTION
    return out.image, label


def build_app(cfg: DemoConfig):
    """The Gradio Blocks of the demo (not launched)."""
    gr = _offline_gradio()
    methods, _ = available_methods(cfg)
    names = list(methods)
    from .model import checkpoint_vocabulary

    # The types of --daclip's vocabulary (a DA-CLIP trained on the user's types predicts those).
    vocab = checkpoint_vocabulary(cfg.daclip) if cfg.daclip else None
    types = list(vocab.types) if vocab is not None else list(DEGRADATIONS)
    tasks = ([AUTO] if cfg.daclip or any(_conditioned(m) for m in methods.values()) else []) + types

    def run(image, display, task):
        try:
            return restore_for_demo(cfg, image, methods[display], task)
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    with gr.Blocks(title="DA-CLIP image restoration") as demo:
        gr.Markdown("## DA-CLIP image restoration\nUpload a degraded image, pick a method and press **Restore**. "
                    "The type-aware *Classical* method uses the degradation type you choose"
                    + (", or the one DA-CLIP predicts (auto)." if AUTO in tasks else "."))
        with gr.Row():
            method = gr.Radio(names, value=names[0] if names else None, label="Method", elem_id="method")
            task = gr.Radio(tasks, value=tasks[0], label="Degradation type (for type-aware methods)", elem_id="task")
        with gr.Row():
            # The upload's path, not its pixels: Gradio would decode any size before we could look
            # at the header; daclip.restore reads it (upright, alpha dropped) within the limit.
            inp = gr.Image(type="filepath", image_mode=None, format="png", sources=["upload", "clipboard"],
                           label="Input", elem_id="input")
            out = gr.Image(type="numpy", format="png", label="Restored", interactive=False, elem_id="output")
        with gr.Row():
            button = gr.Button("Restore", variant="primary", elem_id="restore")
            predicted = gr.Label(label="Predicted degradation (DA-CLIP)", num_top_classes=3, elem_id="degradation")
        button.click(run, inputs=[inp, method, task], outputs=[out, predicted], api_name="restore")
    return demo


def _conditioned(name: str) -> bool:
    from .restore import _conditioned_by_daclip

    return _conditioned_by_daclip(name)


def theme():
    gr = _offline_gradio()
    # System fonts: the default theme would fetch web fonts, which an offline machine cannot.
    return gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m daclip.app", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", action="append", default=[], metavar="METHOD=PATH",
                   help="weights of a method (repeatable); methods with weights in the cache are offered too")
    p.add_argument("--daclip", metavar="WEIGHTS", help="DA-CLIP weights: predicts the degradation type of each "
                   "upload and conditions the DA-CLIP methods")
    p.add_argument("--daclip-model", default="", help="architecture of --daclip: open_clip name, toolkit config "
                   "(tiny) or file (default: recorded beside the weights, else ViT-B-32)")
    p.add_argument("--device", help="cpu, cuda (default: the GPU when there is one)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default %(default)s: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default %(default)s)")
    add_pixel_limit_option(p)
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .registry import method_specs
    from .weights import parse_weights_overrides

    weights = parse_weights_overrides(args.weights)
    unknown = [m for m in weights if m not in method_specs()]
    if unknown:
        raise UserError(f"--weights: unknown method {unknown[0]!r}; known methods: {', '.join(method_specs())}")
    if args.daclip and not os.path.isfile(args.daclip):
        raise UserError(f"--daclip: no such file: {args.daclip}")
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be in 1..65535, got {args.port}")
    cfg = DemoConfig(weights=weights, daclip=args.daclip, daclip_model=args.daclip_model, device=args.device,
                     max_pixels=pixel_limit(args.max_megapixels))
    ready, missing = available_methods(cfg)
    if missing:
        print(f"not offered (no weights; give --weights METHOD=PATH): {', '.join(missing)}", file=sys.stderr)
    demo = build_app(cfg)
    print(f"methods: {', '.join(ready.values())}", file=sys.stderr)
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=False, ssr_mode=False, theme=theme(),
                    footer_links=[], quiet=False, show_error=True)
    except OSError as exc:  # port taken
        raise UserError(f"cannot serve on {args.host}:{args.port}: {exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
