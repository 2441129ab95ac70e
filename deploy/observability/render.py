"""Draw the wahook dashboard from a run of e2e/cmd/dashboard.

    cd e2e && go run ./cmd/dashboard -out /tmp/run.json
    python3 deploy/observability/render.py /tmp/run.json deploy/observability/dashboard.png

The series are the dashboard's own panel queries, evaluated by Prometheus's
PromQL engine over /metrics scraped from real ingest and worker processes;
this script only draws them in the dashboard's grid (Grafana itself is not
run). Needs matplotlib (pip install matplotlib).
"""
import json
import sys
from datetime import datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

BG, PANEL, GRID, TEXT, MUTED = "#111217", "#181b1f", "#2c3235", "#d8d9da", "#8e8e8e"
COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a", "#37872d", "#c4162a"]


def fmt_value(unit):
    def f(v, _pos):
        if unit == "s":
            if v == 0:
                return "0"
            return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.3g} s"
        if abs(v) >= 1000:
            return f"{v / 1000:.3g}k"
        return f"{v:.3g}"
    return f


def main(run_path, dashboard_path, out_path):
    run = json.load(open(run_path))
    dash = json.load(open(dashboard_path))
    rows = [p for p in dash["panels"] if p["type"] == "row"]
    bottom = max(p["grid"][1] + p["grid"][3] for p in run["panels"])
    unit_h = 0.36  # inches per grid unit of height
    fig = plt.figure(figsize=(22, bottom * unit_h + 1.2), facecolor=BG)
    top_pad = 1.2 / (bottom * unit_h + 1.2)

    def rect(x, y, w, h):
        fh = 1 - top_pad
        return [x / 24 + 0.035 * w / 24, 1 - top_pad - (y + h) / bottom * fh + 0.09 * h / bottom * fh / 1,
                w / 24 * 0.9, h / bottom * fh * 0.68]

    start, end = run["start"], run["end"]
    step = run.get("step", 5)
    marks = run.get("marks", [])
    key = "   ".join(f"[{i + 1}] {m['text']}" for i, m in enumerate(marks))
    fig.text(0.01, 1 - 0.25 / (bottom * unit_h + 1.2), f"{run['title']}  —  "
             f"{datetime.fromtimestamp(start).strftime('%Y-%m-%d %H:%M:%S')} to {datetime.fromtimestamp(end).strftime('%H:%M:%S')}",
             color=TEXT, fontsize=15, weight="bold", va="top")
    fig.text(0.01, 1 - 0.62 / (bottom * unit_h + 1.2),
             "Panel queries of deploy/observability/grafana/dashboards/wahook.json, evaluated by the PromQL engine over "
             "/metrics scraped every 2 s from real ingest and worker processes (e2e/cmd/dashboard).   " + key,
             color=MUTED, fontsize=10, va="top")
    for r in rows:
        y = r["gridPos"]["y"]
        fig.text(0.005, 1 - top_pad - y / bottom * (1 - top_pad) - 0.004, r["title"], color=TEXT, fontsize=12,
                 weight="bold", va="top")

    for p in run["panels"]:
        x, y, w, h = p["grid"]
        ax = fig.add_axes(rect(x, y, w, h), facecolor=PANEL)
        ax.set_title(p["title"], color=TEXT, fontsize=10.5, loc="left", pad=6)
        for side in ax.spines.values():
            side.set_color(GRID)
        ax.tick_params(colors=MUTED, labelsize=8)
        ax.grid(color=GRID, linewidth=0.6)
        ax.set_xlim(0, end - start)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{int(v) // 60}:{int(v) % 60:02d}"))
        ax.yaxis.set_major_formatter(FuncFormatter(fmt_value(p["unit"])))
        ymax = 0
        for i, s in enumerate(p["series"] or []):
            if not s["points"]:
                continue
            ts, vs = [], []
            for t, v in s["points"]:
                if ts and t - start - ts[-1] > 1.5 * step:
                    ts.append(ts[-1] + step)  # no sample: a gap, as Grafana draws it
                    vs.append(float("nan"))
                ts.append(t - start)
                vs.append(v)
            ymax = max(ymax, max(v for _, v in s["points"]))
            label = s["legend"]
            ax.plot(ts, vs, color=COLORS[i % len(COLORS)], linewidth=1.4, label=label,
                    drawstyle="steps-post" if p["title"] == "Ledger breaker" else "default")
        ax.set_ylim(0, ymax * 1.15 if ymax > 0 else 1)
        for i, m in enumerate(marks):
            ax.axvline(m["t"] - start, color=MUTED, linestyle="--", linewidth=0.8)
            ax.text(m["t"] - start, ax.get_ylim()[1], f" [{i + 1}]", color=MUTED, fontsize=7.5, va="top")
        if not any(s["points"] for s in p["series"] or []):
            ax.text(0.5, 0.5, "No data", color=MUTED, ha="center", va="center", transform=ax.transAxes)
        elif len(p["series"]) > 0:
            leg = ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=min(5, len(p["series"])),
                            fontsize=7.5, frameon=False, labelcolor=TEXT, handlelength=1.2, columnspacing=1.0)
            leg.set_in_layout(False)
    fig.savefig(out_path, dpi=80, facecolor=BG)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: render.py RUN.json OUT.png")
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    main(sys.argv[1], here + "/grafana/dashboards/wahook.json", sys.argv[2])
