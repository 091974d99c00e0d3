"""Benchmark restoration methods on a built dataset and write an HTML report.

With no arguments this is the offline main job: it builds the mini set if it is missing,
runs every method that needs no downloaded weights on its val split, scores PSNR and SSIM
(the paper's convention) and writes results/report/index.html.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from builders.errors import UserError, cli_entry
from builders.io import add_pixel_limit_option, pixel_limit
from builders.options import parse_pair
from builders.tasks import DEGRADATIONS
from daclip.precision import choices as precision_choices, parse_precision

DEFAULT_OUT = Path("results")


def build_parser() -> argparse.ArgumentParser:
    from builders.protocols import protocol_names

    from .conventions import convention_names

    p = argparse.ArgumentParser(
        prog="python -m benchmark.run",
        description="Run restoration methods over a built dataset, score them per image and per "
        "degradation type, store results (parquet, JSON) and render an HTML report. Re-running "
        "computes only what is missing.",
        epilog="Degradation types: the dataset's own (its manifest's vocabulary); the DA-CLIP sets: "
        + ", ".join(DEGRADATIONS),
    )
    p.add_argument("--dataset", default=None,
                   help="'mini' (built into datasets/mini if missing; the default) or the root of any built dataset "
                   "(with --protocol: default datasets/<protocol>)")
    p.add_argument("--protocol", metavar="NAME",
                   help=f"a benchmark protocol ({', '.join(protocol_names())}): its tasks, its dataset root, its own metric "
                   "convention beside the unified one, and a report of reported vs reproduced numbers")
    p.add_argument("--conventions", metavar="NAME[,NAME]",
                   help=f"metric conventions to score ({', '.join(convention_names())}); "
                   "default with --protocol: its own and basicsr (the unified one)")
    p.add_argument("--methods", help="comma-separated method names, 'all', or 'default' "
                   "(every method that needs no downloaded weights). --list-methods shows them")
    p.add_argument("--results", action="append", default=[], metavar="NAME=DIR",
                   help="score a folder of restored images as the method row NAME (repeatable); files are "
                   "matched by <type>/<name> or a flat <name>; missing, extra, unreadable and wrong-size "
                   "files are listed")
    p.add_argument("--tasks", help="comma-separated types of the dataset's vocabulary (default: every type its "
                   "split has)")
    p.add_argument("--metrics", help="comma-separated metrics (psnr, ssim, psnr_y, ssim_y, lpips, fid, kid; no reference: "
                   "niqe, brisque, musiq, clipiqa, maniqa), "
                   "'all', or 'default' (psnr,ssim,lpips,fid); metrics whose weights are missing are "
                   "reported unavailable")
    p.add_argument("--split", default="val", help="dataset split to evaluate (default: val)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"run folder for results and report (default: {DEFAULT_OUT})")
    p.add_argument("--weights", action="append", default=[], metavar="METHOD=PATH",
                   help="weights file for a method (repeatable)")
    p.add_argument("--option", action="append", default=[], metavar="METHOD:KEY=VALUE",
                   help="a method option, e.g. ours:steps=50, ours:amp=bf16, ours:seed=1 (repeatable; "
                   "--list-methods shows each method's options)")
    p.add_argument("--weights-dir", type=Path,
                   help="folder with metric weights from `python -m benchmark.weights fetch` "
                   "(default: $DACLIP_WEIGHTS or ~/.cache/daclip-toolkit/weights)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda (under torchrun: each rank's GPU); "
                   "checked before any work")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="images of one size per restoring call of a method that batches (the neural ones); "
                   "default: 8 on a GPU, 1 on the CPU. Recorded in the results")
    p.add_argument("--amp", default="none", choices=precision_choices(auto=False),
                   help="autocast dtype for every neural method not given its own METHOD:amp option "
                   "(part of each method's cache key; recorded in the results)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="threads that decode, encode and score images beside the restorer (default: one per core)")
    p.add_argument("--metric-backend", default="auto", choices=["auto", "numpy", "torch"],
                   help="per-image PSNR/SSIM: numpy (float64, CPU threads), torch (batched float64 on --device), "
                   "auto (torch on a GPU); the values agree to 1e-9")
    add_pixel_limit_option(p)
    p.add_argument("--limit", type=int, help="at most this many images per type (quick looks)")
    p.add_argument("--degradation-eval", type=Path, metavar="FILE",
                   help="DA-CLIP classification results for the report: the degradation_eval.json of "
                   "`python -m daclip.evaluate --out DIR` (or DIR itself); default: one in --out or the dataset root")
    p.add_argument("--list-methods", action="store_true", help="list the methods and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _weights(pairs: list[str], methods: list[str]) -> dict[str, str]:
    from .methods import method_spec

    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--weights expects METHOD=PATH, got {pair!r}")
        try:
            spec = method_spec(name)
        except UserError:
            raise UserError(f"--weights: unknown method {name!r}") from None
        if not spec.needs_weights:
            raise UserError(f"--weights: method {name!r} uses no weights")
        out[name] = path
    return out


def _options(items: list[str], methods: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items:
        name, sep, kv = item.partition(":")
        if not sep or not name:
            raise UserError(f"--option expects METHOD:KEY=VALUE, got {item!r}")
        key, value = parse_pair(kv, "--option", "METHOD:KEY=VALUE")
        if name not in methods:
            raise UserError(f"--option {item!r}: method {name!r} is not among --methods ({', '.join(methods)})")
        out.setdefault(name, {})[key] = value
    return out


def protocol_releases(protocol: str, methods: list[str], options: dict[str, dict[str, str]],
                      weights: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each released model's file for ``protocol``: its ``release`` option, unless --weights gives
    the file or --option gives another release. A method without a release for the protocol is
    then skipped, naming its releases (the run settings record the one loaded)."""
    from daclip.weights import releases

    out = {k: dict(v) for k, v in options.items()}
    for name in methods:
        if releases(name) and name not in weights:
            out.setdefault(name, {}).setdefault("release", protocol)
    return out


def _conventions(text: str | None, protocol) -> list[str]:
    from .conventions import get_convention

    names = ([n.strip() for n in text.split(",") if n.strip()] if text
             else [protocol.convention, "basicsr"])
    for n in names:
        get_convention(n)  # an unknown name is one error line
    return list(dict.fromkeys(names))


def _tasks(text: str | None, protocol) -> list[str] | None:
    if protocol is None:
        # checked against the dataset's vocabulary when it is read
        return [t.strip() for t in text.split(",") if t.strip()] if text and text.strip() != "all" else None
    if not text:
        return protocol.task_names
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in protocol.task_names]
    if unknown:
        raise UserError(f"--tasks: {', '.join(map(repr, unknown))} not in protocol {protocol.name} "
                        f"({', '.join(protocol.task_names)})")
    return [t for t in protocol.task_names if t in wanted]


def _metrics(text: str | None, conventions: list[str] | None) -> list[str]:
    """--metrics, or with conventions: their PSNR and SSIM, then any --metrics named beside them."""
    from .metrics import parse_metrics

    if conventions is None:
        return parse_metrics(text)
    from .conventions import get_convention

    names = [m for c in conventions for m in get_convention(c).metrics]
    return list(dict.fromkeys(names + (parse_metrics(text) if text else [])))


def resolve_dataset(text: str, quiet: bool) -> Path:
    if text == "mini":
        from builders.build import DEFAULT_MINI_ROOT
        from builders.layout import manifest_path
        from builders.mini import build_mini

        if not manifest_path(DEFAULT_MINI_ROOT).exists():
            print(f"building the mini set into {DEFAULT_MINI_ROOT} ...", file=sys.stderr)
        build_mini(DEFAULT_MINI_ROOT, progress=not quiet)  # no-op when already built
        return DEFAULT_MINI_ROOT
    root = Path(text)
    if not root.is_dir():
        raise UserError(f"--dataset: no such folder: {root}")
    return root


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import conventions  # noqa: F401  (registers each family's psnr-<name> / ssim-<name> metrics)
    from .methods import method_specs, parse_methods

    if args.list_methods:
        for name, spec in method_specs().items():
            need = "needs weights" if spec.needs_weights else "no weights"
            print(f"{name:16s} {spec.display_name:28s} {need:14s} {spec.description}")
        return 0
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers < 0:
        raise UserError(f"--workers must be >= 1 (or 0: one per core), got {args.workers}")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file, not a folder")
    max_pixels = pixel_limit(args.max_megapixels)  # checked before the mini set is built
    from daclip.device import check_device

    device = check_device(args.device)
    batch_size = args.batch_size or (8 if device.startswith("cuda") else 1)
    methods = parse_methods(args.methods)
    cfg_weights = _weights(args.weights, methods)
    options = _options(args.option, methods)
    protocol = chosen = None
    if args.protocol:
        from builders.protocols import get_protocol

        protocol = get_protocol(args.protocol)
    if args.conventions or protocol is not None:
        chosen = _conventions(args.conventions, protocol)
    if protocol is not None:
        options = protocol_releases(protocol.name, methods, options, cfg_weights)
    tasks = _tasks(args.tasks, protocol)
    metrics = _metrics(args.metrics, chosen)
    from .result_folders import parse_results

    results = parse_results(args.results, methods)
    from .metrics import get_metric

    if any(not get_metric(m).reference for m in metrics) and "identity" not in methods:
        # A no-reference score means little alone: the Input row shows what restoring changed.
        methods = ["identity", *methods]
    from .summary import find_degradation_eval, load_degradation_eval

    # Read before the run: a malformed file fails in a second, not after the benchmark.
    degradation_eval = load_degradation_eval(args.degradation_eval) if args.degradation_eval else None
    dataset = resolve_dataset(args.dataset or (str(protocol.default_root) if protocol else "mini"), args.quiet)
    if degradation_eval is None:
        degradation_eval = find_degradation_eval(args.out, dataset)
    from reports.html import render_report

    from .runner import RunConfig, run_benchmark, run_folder
    from .summary import build_summary, write_summary

    cfg = RunConfig(dataset=dataset, out=args.out, methods=methods, tasks=tasks, metrics=metrics,
                    split=args.split, weights=cfg_weights, options=options, weights_dir=args.weights_dir,
                    device=device, limit=args.limit, progress=not args.quiet, batch_size=batch_size,
                    amp=parse_precision(args.amp, "--amp", auto=False), workers=args.workers,
                    metric_backend=args.metric_backend, type_words=protocol.words() if protocol else {},
                    max_pixels=max_pixels, results=results)
    with run_folder(args.out):  # one writer per run folder, from the first table to the report
        result = run_benchmark(cfg)
        if result is None:  # a torchrun rank other than 0: rank 0 writes the results
            return 0
        summary, long = build_summary(cfg, result, ["python", "-m", "benchmark.run",
                                                    *(argv if argv is not None else sys.argv[1:])],
                                      degradation_eval=degradation_eval)
        if protocol is not None:
            from .protocol_report import protocol_block

            summary["protocol"] = protocol_block(protocol, chosen, result.items, summary)
        write_summary(args.out, summary, long)
        page = render_report(args.out, summary)
        if protocol is not None:
            from reports.protocol import write_protocol_report

            write_protocol_report(args.out, summary)
    _print_tables(summary)
    print(f"report: {page}")
    return 0


def _print_tables(summary: dict) -> None:
    for name, reason in summary["unavailable"].items():
        print(f"{name}: unavailable ({reason})", file=sys.stderr)
    for name, reason in summary.get("skipped_methods", {}).items():
        print(f"{name}: skipped ({reason})", file=sys.stderr)
    for name, cov in summary.get("result_folders", {}).items():
        if cov["problems"]:
            print(f"warning: --results {name}: scored {cov['n']} of {cov['of']} images; "
                  + "; ".join(cov["problems"]), file=sys.stderr)
    for metric, info in summary.get("skipped_images", {}).items():
        print(f"{metric}: {info['count']} image(s) not scored ({info['reason']}), e.g. {info['images'][0]['id']}",
              file=sys.stderr)
    for metric in summary["metrics"]:
        rows = summary["tables"][metric["name"]]
        print(f"\n{metric['display']} (average over {len(summary['tasks'])} types)")
        for m in summary["methods"]:
            v = rows.get(m["name"], {}).get("average")
            print(f"  {m['display']:30s} {'-' if v is None else format(v, metric['fmt'])}")


if __name__ == "__main__":
    sys.exit(main())
