"""``python -m prereg compare``: one row per run, side by side, read from run directories.

Rows come from the small JSON files only (``run.json``, ``summary.json``), so a table of a
thousand runs takes a fraction of a second; YAML is read only as a fallback (a job whose
``run.json`` does not record its overrides yet) and for ``--diff``.  Half-finished sweeps are
fine: a directory without ``run.json`` is ``pending``, a missing or corrupt file leaves its
cells blank and says so in the ``reason`` column, nothing crashes.

Columns: ``run`` (path relative to the runs' common parent), the config choices/overrides
that differ between the runs, ``status`` (+ ``reason``), ``wall_s``, then the summary figures
of each run's experiment (its :attr:`Experiment.figures`; the scalar leaves of ``summary.json``,
flattened with dotted names, for experiments without a default set).

Why one file of ~600 lines: reading runs into rows, grouping (``--by``), diffing (``--diff``)
and the three renderings (text, Markdown, CSV) share one table model; the run readers it builds
on are in :mod:`prereg.core.rundirs`.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from prereg.core.experiments import experiment_or_none
from prereg.core.rundirs import RunInfo, find_runs, flatten, load_run, not_a_sweep_message
from prereg.core.stats import bootstrap_mean_ci, wilson_interval

STATES = ("pending", "running", "completed", "failed", "halted", "skipped")
REASON_WIDTH = 40  # characters of a reason shown in text/markdown tables (CSV keeps it all)
MISSING = "-"  # how an empty cell prints in text/markdown


# --------------------------------------------------------------------------- reading runs


def _read_yaml(path: Path) -> Any:
    """A YAML file's content, or None when missing/unreadable (imports yaml lazily)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        return None


def override_key(override: str) -> tuple[str, str]:
    """``'+a.b=1'`` -> ``('a.b', '1')``; a deletion ``'~a'`` -> ``('a', '<deleted>')``."""
    text = override.strip()
    if text.startswith("~"):
        key, _, _ = text[1:].partition("=")
        return key, "<deleted>"
    key, _, value = text.lstrip("+").partition("=")
    return key, value


def parse_dirname(name: str) -> list[str] | None:
    """Overrides from a Hydra job dir name (``arm=primary,cell=n4m2``), None if not one."""
    parts = name.split(",")
    if not all("=" in p for p in parts):
        return None
    return parts


def job_overrides(info: RunInfo) -> list[str] | None:
    """The job's overrides: run.json ``job.overrides``, else ``.hydra/overrides.yaml``."""
    if "overrides" in info.job:
        return info.overrides
    data = _read_yaml(info.path / ".hydra" / "overrides.yaml")
    if isinstance(data, list):
        return [str(x) for x in data]
    return None


def run_choices_overrides(info: RunInfo) -> tuple[dict[str, str] | None, dict[str, str]]:
    """(group choices or None when unrecorded, overrides) of a run as ``key -> value`` strings.

    Choices come from run.json only; overrides from run.json, ``.hydra/overrides.yaml`` or,
    for a directory that records neither, its name (``arm=primary,cell=n4m2``).
    """
    choices = (
        {k: str(v) for k, v in info.choices.items() if v is not None}
        if "choices" in info.job
        else None
    )
    overrides = job_overrides(info)
    if overrides is None and choices is None:
        overrides = parse_dirname(info.path.name)
    return choices, dict(override_key(item) for item in overrides or [])


def run_config(info: RunInfo) -> dict[str, str]:
    """Overrides (command-line order), then the group choices not overridden."""
    choices, config = run_choices_overrides(info)
    for key, value in (choices or {}).items():
        config.setdefault(key, value)
    return config


def varying_keys(records: Sequence[tuple[dict[str, str] | None, dict[str, str]]]) -> list[str]:
    """Config keys whose value differs between runs (all keys, in order of appearance).

    An unrecorded value is no difference: a pending job without run.json knows its
    overrides but not its group choices, so it only takes part for override keys (where
    absence means the default).
    """
    keys: list[str] = []
    override_keys: set[str] = set()
    for choices, overrides in records:
        override_keys.update(overrides)
        keys.extend(k for k in overrides if k not in keys)
        keys.extend(k for k in (choices or {}) if k not in keys)
    out = []
    for key in keys:
        values = set()
        for choices, overrides in records:
            if key in overrides:
                values.add(overrides[key])
            elif choices is not None:
                values.add(choices.get(key))
            elif key in override_keys:
                values.add(None)
        if len(values) > 1:
            out.append(key)
    return out


def status_reason(info: RunInfo) -> tuple[str, str | None]:
    """(status, reason) with notes for unreadable files (never raises)."""
    status, reason = info.status, info.reason
    if info.run is None:
        if (info.path / "run.json").exists():
            reason = "run.json unreadable"
    elif status == "completed" and not isinstance(info.summary, dict):
        reason = (
            "summary.json unreadable"
            if (info.path / "summary.json").exists()
            else "summary.json missing"
        )
    if reason is not None:
        reason = " ".join(str(reason).split())
    return str(status), reason


def experiment_of(info: RunInfo) -> str | None:
    """The run's experiment: run.json, else the config choice, else summary.json."""
    for source in (info.run, info.choices, info.summary):
        if isinstance(source, dict) and source.get("experiment"):
            return str(source["experiment"])
    return None


def _generic_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """Any other experiment: every scalar leaf of summary.json (lists skipped)."""
    flat = flatten(summary)
    flat.pop("experiment", None)
    return {k: v for k, v in flat.items() if not isinstance(v, (dict, list))}


def summary_figures(info: RunInfo) -> dict[str, Any]:
    """The summary columns of one run (empty when summary.json is missing or unreadable)."""
    if not isinstance(info.summary, dict):
        return {}
    exp = experiment_or_none(experiment_of(info))
    fn = (exp.figure_function() if exp is not None else None) or _generic_figures
    return with_intervals(fn(info.summary), info.summary)


def with_intervals(figures: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """``figures`` with ``<x>.success_ci95`` (Wilson 95%) after each eval's ``<x>.success_rate``.

    The interval is the eval's own ``success_ci95`` when written, else computed from its count
    (``n_success``, or the rate times ``n_seeds`` x ``n_train_seeds``); a rate with no episode
    count (a training rollout's) gets none.
    """
    flat = flatten(summary)
    out: dict[str, Any] = {}
    for key, value in figures.items():
        out[key] = value
        if not key.endswith("success_rate") or _number(value) is None:
            continue
        prefix = key[: -len("success_rate")]
        ci = flat.get(prefix + "success_ci95")
        n = _number(flat.get(prefix + "n_seeds"))
        if not (isinstance(ci, list) and len(ci) == 2) and n is not None:
            n *= _number(flat.get(prefix + "n_train_seeds")) or 1.0
            k = _number(flat.get(prefix + "n_success"))
            k = round(float(value) * n) if k is None else k
            ci = list(wilson_interval(int(k), int(n)))
        if isinstance(ci, list) and len(ci) == 2:
            out[prefix + "success_ci95"] = tuple(ci)
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


# --------------------------------------------------------------------------- tables


class Table:
    """Columns, rows of raw values, and which columns hold free text (reasons)."""

    def __init__(self, columns: list[str], rows: list[list[Any]], text_cols: Iterable[str] = ()):
        self.columns = columns
        self.rows = rows
        self.text_cols = set(text_cols)


def short_names(paths: Sequence[Path]) -> list[str]:
    """The shortest path tails that tell the paths apart (the job dir name within one sweep)."""
    parts = [Path(p).parts for p in paths]
    if not parts:
        return []
    longest = max(len(p) for p in parts)
    for k in range(1, longest + 1):
        names = [os.path.join(*p[-k:]) if p else "." for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def build_table(runs: Sequence[RunInfo], all_config: bool = False) -> Table:
    """One row per run.  Config columns only where the runs differ (all of them for one run)."""
    records = [run_choices_overrides(r) for r in runs]
    configs = [{**(ch or {}), **ov} for ch, ov in records]
    statuses = [status_reason(r) for r in runs]
    figures = [summary_figures(r) for r in runs]

    if all_config or len(runs) == 1:
        config_keys: list[str] = []
        for choices, overrides in records:
            config_keys.extend(k for k in overrides if k not in config_keys)
            config_keys.extend(k for k in (choices or {}) if k not in config_keys)
    else:
        config_keys = varying_keys(records)
    figure_keys: list[str] = []
    seen: set[str] = set()
    for fig in figures:
        for k in fig:
            if k not in seen:
                seen.add(k)
                figure_keys.append(k)
    with_reason = any(reason for _, reason in statuses)

    columns = ["run", *config_keys, "status"]
    if with_reason:
        columns.append("reason")
    columns.append("wall_s")
    columns.extend(figure_keys)
    rows = []
    for run, name, cfg, (status, reason), fig in zip(
        runs, short_names([r.path for r in runs]), configs, statuses, figures, strict=True
    ):
        row: list[Any] = [name, *(cfg.get(k) for k in config_keys), status]
        if with_reason:
            row.append(reason)
        # a running job's wall_seconds only counts earlier attempts: not shown
        row.append(None if status == "running" else _number((run.run or {}).get("wall_seconds")))
        row.extend(fig.get(k) for k in figure_keys)
        rows.append(row)
    return Table(columns, rows, text_cols={"reason"})


REGISTRATION = "registration"  # the --by column of registration hashes


def group_table(table: Table, runs: Sequence[RunInfo], by: str) -> Table:
    """Aggregate rows by config key ``by`` and registration hash: runs, status counts, and per
    numeric column its mean, std (ddof 1) and a 95% bootstrap interval of the mean (scipy,
    seeded; none below two runs).  Runs of different registrations are never pooled."""
    if by in table.columns:
        keys = [row[table.columns.index(by)] for row in table.rows]
    else:
        configs = [run_config(r) for r in runs]
        if not any(by in c for c in configs):
            known = sorted({k for c in configs for k in c} | {"status"})
            raise KeyError(f"no run has key {by!r} (keys: {', '.join(known)})")
        keys = [c.get(by) for c in configs]
    keys = [MISSING if k is None else k for k in keys]
    hashes = [r.registration_hash or MISSING for r in runs]
    status_i = table.columns.index("status")
    skip = {"run", "status", "reason", by, REGISTRATION}
    numeric = [
        i
        for i, c in enumerate(table.columns)
        if c not in skip and any(_number(row[i]) is not None for row in table.rows)
    ]
    states = [s for s in STATES if any(row[status_i] == s for row in table.rows)]
    states += sorted({row[status_i] for row in table.rows} - set(states))
    groups: dict[tuple[Any, str], list[list[Any]]] = {}
    for key, h, row in zip(keys, hashes, table.rows, strict=True):
        groups.setdefault((key, h), []).append(row)

    columns = [by, REGISTRATION, "runs", *states]
    for i in numeric:
        columns += [f"{stat}({table.columns[i]})" for stat in ("mean", "std", "ci95")]
    rows = []
    for key, h in sorted(groups, key=lambda g: (_natural(g[0]), g[1])):
        members = groups[(key, h)]
        row: list[Any] = [key, h, len(members)]
        row.extend(sum(m[status_i] == s for m in members) for s in states)
        for i in numeric:
            vals = [v for v in (_number(m[i]) for m in members) if v is not None]
            vals = [v for v in vals if math.isfinite(v)] or vals
            row.append(sum(vals) / len(vals) if vals else None)
            finite = [v for v in vals if math.isfinite(v)]
            two = len(finite) >= 2
            row.append(statistics.stdev(finite) if two else None)
            row.append(bootstrap_mean_ci(finite) if two else None)
        rows.append(row)
    return Table(columns, rows)


def registrations_warning(runs: Sequence[RunInfo]) -> str | None:
    """One line naming the registrations when ``runs`` span several (None for one or none)."""
    from prereg.core.registration import differing_constants

    groups: dict[str, list[RunInfo]] = {}
    for r in runs:
        if r.registration_hash:
            groups.setdefault(r.registration_hash, []).append(r)
    if len(groups) < 2:
        return None
    order = sorted(groups, key=lambda h: (-len(groups[h]), h))
    regs = {h: next((x for r in groups[h] if isinstance(x := r.read_json("registration.json"),
                                                          dict)), None)
            for h in order}  # fmt: skip
    parts = []
    for h in order:
        name = next((str(r.run.get("registration")) for r in groups[h]
                     if r.run and r.run.get("registration")), None)  # fmt: skip
        n = len(groups[h])
        bits = [f"{n} run{'s' if n != 1 else ''}"]
        first = order[0]
        if h != first and regs[h] is not None and regs[first] is not None:
            diff = differing_constants(regs[first], regs[h])
            if diff:
                bits.append(f"differs from {first} in {', '.join(diff)}")
        parts.append(f"{h}{f' {name}' if name else ''} ({'; '.join(bits)})")
    return (
        f"these runs span {len(groups)} registrations, kept apart in the "
        f"'{REGISTRATION}' column (means are never pooled across them): " + ", ".join(parts)
    )


def _natural(value: Any) -> tuple:
    import re

    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", str(value))
    )


#: Group choices that name no registered entry (never resolved by ``--diff``).
UNRESOLVED_GROUPS = frozenset({"experiment", "registration", "schema", "logger", "hydra"})


def _group_choices(path: Path, config: dict[str, Any]) -> dict[str, str]:
    """A run's config-group choices: run.json ``job.choices``, else the composed config's
    top-level sections that carry a ``name`` (``arm: {name: primary}``)."""
    run = load_run(path)
    choices = {k: str(v) for k, v in run.choices.items() if v is not None}
    for key, node in config.items():
        if isinstance(node, dict) and isinstance(node.get("name"), str):
            choices.setdefault(str(key), node["name"])
    return {k: v for k, v in choices.items() if k not in UNRESOLVED_GROUPS}


def resolved_values(path: Path, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What each group choice of a run resolves to in its registration, per group.

    A choice ``arm=primary`` whose registration (``registration.json``, else the composed
    config's ``registration``) has an entry keyed ``primary`` (``lambdas.primary: 0.01``)
    resolves to ``{"registration.lambdas[arm]": 0.01}``; nested entries are flattened
    (``registration.cells[cell].n``, ``registration.candidates[candidate].set.lr``).
    """
    reg = load_run(path).read_json("registration.json")
    if not isinstance(reg, dict):
        reg = config.get("registration")
    if not isinstance(reg, dict):
        return {}
    out: dict[str, dict[str, Any]] = {}

    def walk(node: Any, where: str, group: str, option: str) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            here = f"{where}.{key}"
            if key == option:
                label = f"{where}[{group}]"
                if isinstance(value, dict):
                    out[group].update(flatten(value, prefix=label, lists=True))
                else:
                    out[group][label] = value
            else:
                walk(value, here, group, option)

    for group, option in _group_choices(path, config).items():
        out[group] = {}
        walk(reg, "registration", group, option)
    return {g: v for g, v in out.items() if v}


def _with_resolved(flat: dict[str, Any], resolved: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``flat`` with each group's resolved values right after its ``<group>.name`` key."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        out[key] = value
        group = key.removesuffix(".name")
        if key.endswith(".name") and group in resolved:
            out.update(resolved[group])
    for group, values in resolved.items():
        if f"{group}.name" not in flat:
            out.update(values)
    return out


def diff_table(a: Path, b: Path) -> Table:
    """Flattened ``.hydra/config.yaml`` keys whose values differ between runs ``a`` and ``b``,
    with each group choice resolved to its registered values (``registration.lambdas[arm]``)."""
    flats = []
    for path in (a, b):
        data = _read_yaml(path / ".hydra" / "config.yaml")
        if not isinstance(data, dict):
            raise FileNotFoundError(f"{path} has no readable .hydra/config.yaml")
        flats.append(_with_resolved(flatten(data, lists=True), resolved_values(path, data)))
    fa, fb = flats
    keys = list(fa) + [k for k in fb if k not in fa]
    absent = object()
    rows = []
    for key in keys:
        va, vb = fa.get(key, absent), fb.get(key, absent)
        if va is absent or vb is absent or type(va) is not type(vb) or va != vb:
            rows.append([key, _yaml_text(va, absent), _yaml_text(vb, absent)])
    names = short_names([a, b])
    if names[0] == names[1]:
        names = [f"A: {names[0]}", f"B: {names[1]}"]
    return Table(["key", *names], rows)


def _yaml_text(value: Any, absent: object) -> str:
    if value is absent:
        return "<absent>"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------- rendering


def format_value(value: Any) -> str:
    """A cell for text/markdown: ints as ints, floats to 4 significant digits, None as '-'."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    if isinstance(value, tuple):  # an interval
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, (dict, list)):
        return str(value)
    return str(value)


def _truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _cells(table: Table) -> list[list[str]]:
    out = []
    for row in table.rows:
        cells = []
        for col, value in zip(table.columns, row, strict=True):
            cell = format_value(value)
            if col in table.text_cols and value is not None:
                cell = _truncate(cell, REASON_WIDTH)
            cells.append(cell)
        out.append(cells)
    return out


def _numeric_column(table: Table, i: int) -> bool:
    values = [row[i] for row in table.rows if row[i] is not None]
    return bool(values) and all(_number(v) is not None for v in values)


def render_text(table: Table) -> str:
    """An aligned plain-text table: numbers right-aligned, text left-aligned."""
    cells = _cells(table)
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(table.columns)]
    right = [_numeric_column(table, i) for i in range(len(table.columns))]

    def line(items: Sequence[str]) -> str:
        parts = [
            s.rjust(w) if r else s.ljust(w) for s, w, r in zip(items, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(table.columns), *(line(r) for r in cells)])


def render_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table (header row, alignment row, one row per run)."""

    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    align = ["---:" if _numeric_column(table, i) else "---" for i in range(len(table.columns))]
    lines = [
        "| " + " | ".join(esc(c) for c in table.columns) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in _cells(table)]
    return "\n".join(lines)


def _csv_cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, tuple):  # an interval: [lo, hi] at full precision
        return "[" + ", ".join(repr(float(x)) for x in v) + "]"
    return v


def render_csv(table: Table) -> str:
    """CSV with full-precision numbers and full reasons; empty cells for missing values."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_csv_cell(v) for v in row])
    return buf.getvalue().rstrip("\n")


def render(table: Table, fmt: str) -> str:
    return {"csv": render_csv, "markdown": render_markdown}.get(fmt, render_text)(table)


# --------------------------------------------------------------------------- entry points


def collect_runs(paths: Sequence[str]) -> tuple[list[RunInfo], list[str]]:
    """Runs under the given paths (deduplicated, sorted by path) and the paths matching none."""
    found: dict[Path, RunInfo] = {}
    bad = []
    for raw in paths:
        runs = find_runs([raw], max_depth=5)  # outputs/multirun/<date>/<time>/<job>
        if not runs:
            bad.append(raw)
        for r in runs:
            found.setdefault(r.path, r)
    return [found[p] for p in sorted(found)], bad


def refuse_non_sweeps(paths: Sequence[str], arg: str = "paths") -> str | None:
    """The one-line refusal for the first path (or glob match) that is a folder holding no
    prereg sweep or run (a date folder of several sweeps, ``outputs``); None if all are fine."""
    import glob

    for raw in paths:
        for match in sorted(glob.glob(str(raw))) or [raw]:
            if Path(match).is_dir() and (msg := not_a_sweep_message(arg, match)):
                return msg
    return None


def compare(
    paths: Sequence[str],
    by: str | None = None,
    fmt: str = "text",
    warnings: list[str] | None = None,
) -> str:
    """The compare table as text (raises FileNotFoundError/KeyError on bad input).

    With ``by``, runs are grouped by that key and by registration hash; a warning naming the
    registrations is appended to ``warnings`` (if given) when the runs span several.
    """
    if msg := refuse_non_sweeps(paths):
        raise FileNotFoundError(msg)
    runs, bad = collect_runs(paths)
    if bad:
        verb = "matches" if len(bad) == 1 else "match"
        raise FileNotFoundError(f"paths: {', '.join(bad)} {verb} no run directory")
    table = build_table(runs, all_config=bool(by))
    if by:
        table = group_table(table, runs, by)
        if warnings is not None and (note := registrations_warning(runs)):
            warnings.append(note)
    return render(table, fmt)


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _diff(pair: Sequence[str], fmt: str) -> int:
    paths = []
    if msg := refuse_non_sweeps(pair, "diff"):
        return _error(msg)
    for raw in pair:
        runs, _ = collect_runs([raw])
        if len(runs) != 1:
            what = "no run directory" if not runs else f"{len(runs)} run directories, not one"
            return _error(f"diff: {raw} matches {what}")
        paths.append(runs[0].path)
    try:
        table = diff_table(*paths)
    except FileNotFoundError as exc:
        return _error(f"diff: {exc}")
    if not table.rows and fmt == "text":
        print(f"no differences in .hydra/config.yaml between {pair[0]} and {pair[1]}")
    else:
        print(render(table, fmt))
    return 0


def compare_main(args: argparse.Namespace) -> int:
    """CLI: ``python -m prereg compare PATH... [--by KEY] [--csv|--markdown] [--diff A B]``."""
    fmt = (
        "csv"
        if getattr(args, "csv", False)
        else ("markdown" if getattr(args, "markdown", False) else "text")
    )
    if getattr(args, "diff", None):
        return _diff(args.diff, fmt)
    if not args.paths:
        return _error("paths: give at least one run directory, sweep directory or glob")
    warnings: list[str] = []
    try:
        text = compare(args.paths, by=getattr(args, "by", None), fmt=fmt, warnings=warnings)
    except FileNotFoundError as exc:
        return _error(str(exc))
    except KeyError as exc:
        return _error(f"by: {exc.args[0]}")
    for note in warnings:
        print(f"warning: {note}", file=sys.stderr)
    print(text)
    return 0
