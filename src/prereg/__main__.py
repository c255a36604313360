"""``prereg <command>`` (or ``python -m prereg``): run sweeps; verdicts, comparisons and status.

``prereg run [-m] ...`` is ``python run.py [-m] ...``: Hydra over prereg's package config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _verdict(args: argparse.Namespace) -> int:
    from prereg.reports.verdicts import write_any_verdict

    text = write_any_verdict(Path(args.sweep_dir))
    print(text)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from prereg.reports.compare import compare_main

    return compare_main(args)


def _status(args: argparse.Namespace) -> int:
    """Print a sweep's status; exit status 1 while any job has not completed."""
    from prereg.reports.status import incomplete_line, render, sweep_status

    data = sweep_status(Path(args.sweep_dir))
    print(render(data, as_json=args.json))
    return 1 if incomplete_line(data) else 0


def _best_state(args: argparse.Namespace) -> int:
    from prereg.ppo.ladder_verdict import best_state_report

    for path in args.run_dirs:
        if not Path(path).is_dir():
            print(f"error: run_dirs: {path} is not a directory", file=sys.stderr)
            return 2
    text, status = best_state_report(args.run_dirs, as_json=args.json)
    print(text)
    return status


def _video(args: argparse.Namespace) -> int:
    from prereg.core.errors import ConfigError
    from prereg.ppo.video import record_video, summary_line

    try:
        out, recorded = record_video(args.target, args.seed_start, args.episodes, args.format)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_line(out, recorded))
    return 0


def _audit(args: argparse.Namespace) -> int:
    """How much a study's verdict can be trusted, from a registration name or a sweep dir."""
    from prereg.core.errors import ConfigError
    from prereg.core.experiments import experiments
    from prereg.core.registration import CONF_DIR, load_registered
    from prereg.core.rundirs import find_runs, not_a_sweep_message

    target, sweep_dir = str(args.target), None
    names = sorted(p.stem for p in (CONF_DIR / "registration").glob("*.yaml"))
    if Path(target).is_dir():
        if message := not_a_sweep_message("target", target):
            print(f"error: audit: {message}", file=sys.stderr)
            return 2
        sweep_dir = Path(target)
        runs = [r for r in find_runs([sweep_dir]) if r.read_json("registration.json")]
        if not runs:
            print(f"error: audit: {target} holds no run with a registration.json", file=sys.stderr)
            return 2
        reg = runs[0].read_json("registration.json")
        study = (runs[0].run or {}).get("experiment") or reg.get("experiment")
    elif target in names:
        reg = load_registered(target)
        study = reg.get("experiment")
    else:
        err = ConfigError("audit", f"unknown registration {target!r} (or no such sweep dir)",
                          names, near=target)  # fmt: skip
        print(f"error: {err}", file=sys.stderr)
        return 2
    exp = experiments().get(str(study))
    fn = exp.audit_function() if exp is not None else None
    if fn is None:
        print(f"error: audit: study {study} defines no audit", file=sys.stderr)
        return 2
    print(fn(reg, sweep_dir))
    return 0


RUN_USAGE = """usage: prereg run [-m] [group=option ...] [key=value ...]

Run one job (or, with -m, a sweep and its verdict) of a study; the same as python run.py.
Everything after `run` goes to Hydra: `prereg run --hydra-help` for Hydra's flags,
`prereg run --cfg job experiment=NAME` to print a study's composed config.

examples:
  prereg run -m arm=baseline,primary,secondary 'cell=glob(*)'
  prereg run experiment=ppo tier=small ppo.updates=50
  prereg run -m experiment=ppo_ladder 'candidate=glob(*)'
"""


def _run_help() -> str:
    """``prereg run --help``: usage, the studies (experiment=NAME) and the config groups."""
    from prereg.core.experiments import experiments
    from prereg.sweep.app import CONF_DIR, setup
    from prereg.sweep.precheck import _loader

    setup()
    lines = [RUN_USAGE, "studies (experiment=NAME):"]
    for name, exp in sorted(experiments().items()):
        lines.append(f"  {name:<12} {exp.description}")
    loader = _loader(CONF_DIR)
    lines.append("\nconfig groups (group=option):")
    for group in sorted(set(loader.list_groups("")) - {"hydra", "schema", "registration_schema"}):
        lines.append(f"  {group:<12} {', '.join(sorted(loader.get_group_options(group)))}")
    return "\n".join(lines)


def _run(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(_run_help())
        return 0
    from prereg.core.signals import install_interrupt_handlers

    install_interrupt_handlers()  # before the slow imports (Hydra, the studies), as run.py does
    from prereg.sweep.app import cli

    sys.argv[1:] = argv
    return cli(argv)


COMMANDS = ("run", "verdict", "compare", "status", "best-state", "video", "audit")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one subcommand."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "run":  # Hydra parses the rest
        return _run(argv[1:])
    parser = argparse.ArgumentParser(prog="prereg", description=__doc__)
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}"
    )
    sub.add_parser("run", help="run a job or (-m) a sweep: prereg run --help", add_help=False)
    p = sub.add_parser("verdict", help="recompute a sweep's verdict from its run directories")
    p.add_argument("sweep_dir")
    p.set_defaults(func=_verdict)
    p = sub.add_parser("compare", help="one row per run: differing choices, status, summary")
    p.add_argument("paths", nargs="*", help="run dirs, sweep dirs or globs (mixed)")
    p.add_argument("--by", help="group by this choice/override key (e.g. arm) and aggregate")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument(
        "--diff", nargs=2, metavar=("A", "B"), help=".hydra/config.yaml keys that differ"
    )
    p.set_defaults(func=_compare)
    p = sub.add_parser("status", help="pending/running/completed/failed/halted/skipped counts")
    p.add_argument("sweep_dir")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=_status)
    p = sub.add_parser(
        "best-state",
        help="Path A: the best saved state of PPO runs by the registered eval, and its checkpoint",
    )
    p.add_argument("run_dirs", nargs="+", help="run dirs (segments of one chain, or any runs)")
    p.add_argument("--json", action="store_true", help="print the states as JSON")
    p.set_defaults(func=_best_state)
    p = sub.add_parser("video", help="record deterministic episodes of a PPO policy to MP4/GIF")
    p.add_argument("target", help="a PPO run directory or an exported policy .npz")
    p.add_argument("--seed-start", type=int, default=10000, help="episode i resets with this + i")
    p.add_argument("--episodes", type=int, default=4, help="episodes in the file (default 4)")
    p.add_argument("--format", choices=["mp4", "gif"], help="default: mp4 if ffmpeg, else gif")
    p.set_defaults(func=_video)
    p = sub.add_parser(
        "audit", help="how much a verdict can be trusted: a registration's gates, or a sweep's"
    )
    p.add_argument("target", help="a registration name (ppo_pathb_v1) or a sweep dir")
    p.set_defaults(func=_audit)
    args = parser.parse_args(argv)
    if hasattr(args, "sweep_dir"):
        from prereg.core.rundirs import not_a_sweep_message

        # a date folder of several sweeps, or `outputs`: refused before anything is written
        if message := not_a_sweep_message("sweep_dir", args.sweep_dir):
            print(f"error: {message}", file=sys.stderr)
            return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
