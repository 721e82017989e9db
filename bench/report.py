"""The markdown tables of a results file: tokens/s, memory and MFU per path, the ratios between paths, and the
GPU's clocks during the measured steps."""

from __future__ import annotations

import functools

from records import invocation_of, workload_of
from workload import METHODS, SHAPES, WORKLOADS


def report(results: dict) -> str:
    """The markdown table (tokens/s, peak GiB, MFU per path) and the ratios the issues ask for."""
    by_key = {(workload_of(r), r["model"], r["method"], r["path"]): r for r in results["records"]}
    lines = [f"Device: {results['device']}; date {results['date']}; "
             + ", ".join(f"{k} {v}" for k, v in results["versions"].items() if v), "",
             "| workload | model | method | path | tokens/s | peak GiB | MFU | checkpointing | optimizer | packed attention "
             "| 4-bit layers | steps (warm-up) |",
             "|---|---|---|---|---:|---:|---:|---|---|---|---:|---|"]
    for r in results["records"]:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        runs = r.get("runs_tokens_per_s") or []
        spread = f" ({len(runs)} runs: {min(runs):,.0f}-{max(runs):,.0f})" if len(runs) > 1 else ""
        lines.append(f"| {workload_of(r)} | {r['model']} | {r['method']} | {r['path']} | {r['tokens_per_s']:,.0f}{spread} "
                     f"| {_shown(r['peak_gib'], '.2f')} | {mfu} | {r['gradient_checkpointing']} "
                     f"| {r.get('optimizer_ran', r['optimizer'])} | {r.get('packed_attention') or '-'} "
                     f"| {r['linear_4bit_layers']} | {r['steps']} ({r['warmup_steps']}) |")
    lines += ["", "| workload | model | method | ours / unsloth-script | ours / transformers | ours-auto / unsloth-script "
              "| ours-auto peak GiB | ours-auto / its dense | ours-transformers / transformers |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    cells = sorted({(workload_of(r), r["model"], r["method"]) for r in results["records"]},
                   key=lambda c: (WORKLOADS.index(c[0]), list(SHAPES).index(c[1]), METHODS.index(c[2])))

    def ratio_of(cell, a, b, b_workload=None):
        ra = by_key.get((*cell, a))
        rb = by_key.get((b_workload or cell[0], *cell[1:], b))
        if not (ra and rb and ra["tokens_per_s"] and rb["tokens_per_s"]):
            return "-"
        # `*`: the two runs were not measured over the same steps and warm-up
        same = (ra["steps"], ra["warmup_steps"]) == (rb["steps"], rb["warmup_steps"])
        # `+`: measured in different invocations (each may run on a fresh machine)
        one_call = invocation_of(ra) == invocation_of(rb)
        return f"{ra['tokens_per_s'] / rb['tokens_per_s']:.3f}" + ("" if same else "*") + ("" if one_call else "+")

    for cell in cells:
        ratio = functools.partial(ratio_of, cell)
        auto = by_key.get((*cell, "ours-auto"))
        lines.append(f"| {' | '.join(cell)} | {ratio('ours', 'unsloth-script')} | {ratio('ours', 'transformers')} | "
                     f"{ratio('ours-auto', 'unsloth-script')} | {_shown(auto and auto['peak_gib'], '.2f')} | "
                     f"{ratio('ours-auto', 'ours-auto', 'dense') if cell[0] != 'dense' else '-'} | "
                     f"{ratio('ours-transformers', 'transformers')} |")
    if any("*" in line for line in lines[-len(cells):]):
        lines += ["", "`*`: the two runs were measured over different steps or warm-up; not a like-for-like ratio."]
    if any("+" in line for line in lines[-len(cells) - 2:]):
        lines += ["", "`+`: the two runs were made in different invocations (see their `invocation`)."]
    sampled = [r for r in results["records"] if r.get("gpu_clocks")]
    if sampled:
        lines += ["", "GPU during the measured steps (nvidia-smi every 0.5 s):", "",
                  ("| workload | model | method | path | SM MHz median (min-max) | in slower / faster steps | power W median "
                   "| at power cap | thermal/hardware slowdown |"), "|---|---|---|---|---|---|---:|---:|---:|"]
        for r in sampled:
            c = r["gpu_clocks"]
            slower, faster = (_shown(c.get(f"sm_mhz_median_{half}_steps"), ",.0f") for half in ("slower", "faster"))
            lines.append(f"| {workload_of(r)} | {r['model']} | {r['method']} | {r['path']} | "
                f"{c['sm_mhz_median']:,.0f} ({c['sm_mhz_min']:,.0f}-"
                         f"{c['sm_mhz_max']:,.0f}) | {slower} / {faster} | {c['power_w_median']:,.0f} "
                         f"| {c['power_capped_share']:.0%} "
                         f"| {c['thermal_or_hardware_slowdown_share']:.0%} |")
    if results.get("failures"):
        lines += ["", "Failed runs: " + ", ".join(f"{workload_of(f)} {f['model']} {f['method']} {f['path']} ({f['returncode']})"
                                                  for f in results["failures"])]
    return "\n".join(lines)


def _shown(value, spec: str) -> str:
    """A table cell: the value in `spec`'s format, or "-" where there is none."""
    return "-" if value is None else format(value, spec)
