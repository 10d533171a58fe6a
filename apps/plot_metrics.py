#!/usr/bin/python3
"""Plots the metrics files (--metrics JSON lines) of `train` and `train_kd` runs (Debian's python3-matplotlib).

  plot_metrics.py run.jsonl [more.jsonl ...] --out-dir plots/ [--labels kd,isl] [--title "..."]

Writes plots/accuracy.png (train and test accuracy against steps, with the mid-epoch evaluations of --eval-every)
and plots/loss.png (train and test loss), each with the learning rate on a second axis and the ISL phases shaded
(from each run's curriculum config: warm-up, phase epochs, number of phases). Several files are overlaid, one
colour per run (train dashed, test solid), with a legend. Prints the PNGs it wrote and one line per run (its last
and best test accuracy)."""
import argparse
import json
import os
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as e:  # pragma: no cover - a machine without python3-matplotlib
    print("plot_metrics.py: cannot import matplotlib (%s); install python3-matplotlib" % e, file=sys.stderr)
    sys.exit(3)


class Run:
    def __init__(self, path, label):
        self.path, self.config, self.epochs, self.mid, self.final = path, {}, [], [], None
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    j = json.loads(line)
                except ValueError as e:
                    raise ValueError("%s:%d: not JSON (%s)" % (path, n, e))
                if "config" in j:
                    self.config = j["config"]
                elif j.get("final"):
                    self.final = j
                elif "epoch_step" in j:
                    self.mid.append(j)
                elif "epoch" in j:
                    self.epochs.append(j)
        if not self.epochs:
            raise ValueError("%s: no epoch lines (a metrics file of train or train_kd?)" % path)
        self.label = label or self.config.get("method") or os.path.splitext(os.path.basename(path))[0]
        # the evaluation split: validation with --val-split, else test
        self.eval = "val" if any("val_accuracy" in e for e in self.epochs) else "test"

    def steps_per_epoch(self):
        e = self.epochs[-1]
        return e["step"] / e["epoch"] if e["epoch"] else 0

    def phases(self):
        """(first step, last step, text) of each ISL phase from the curriculum config."""
        c = self.config.get("curriculum")
        if not isinstance(c, dict):
            return []
        spe, w, p, n = self.steps_per_epoch(), c.get("warmup_epochs", 0), c.get("phase_epochs", 1), c.get("num_phases", 0)
        fractions = {e["isl"]["phase"]: e["isl"].get("fraction") for e in self.epochs if isinstance(e.get("isl"), dict)}
        out = []
        for i in range(n):
            f = fractions.get(i)
            text = "ISL phase %d" % (i + 1) + (" (%.0f%%)" % (100 * f) if f is not None else "")
            out.append(((w + i * p) * spe, (w + (i + 1) * p) * spe, text))
        return out

    def series(self, key, with_mid=False):
        pts = [(e["step"], e[key]) for e in self.epochs if key in e]
        if with_mid:
            pts += [(m["step"], m[key]) for m in self.mid if key in m]
        pts.sort()
        return [p[0] for p in pts], [p[1] for p in pts]

    def lr(self):
        pts = [(e["step"], e["lr_last"]) for e in self.epochs if "lr_last" in e]
        pts += [(m["step"], m["lr"]) for m in self.mid if "lr" in m]
        pts.sort()
        return [p[0] for p in pts], [p[1] for p in pts]


def plot(runs, what, ylabel, out, title):
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    lr_ax = ax.twinx()
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shaded = set()
    for i, r in enumerate(runs):
        c = colours[i % len(colours)]
        for a, b, text in r.phases():
            key = (a, b)
            ax.axvspan(a, b, color=c, alpha=0.08, label=None if key in shaded else "%s: %s" % (r.label, text))
            shaded.add(key)
        x, y = r.series("train_" + what)
        if x:
            ax.plot(x, y, "--", color=c, marker=".", label="%s train" % r.label)
        x, y = r.series("%s_%s" % (r.eval, what), with_mid=True)
        if x:
            ax.plot(x, y, "-", color=c, marker="o", markersize=3, label="%s %s" % (r.label, r.eval))
        x, y = r.lr()
        if x:
            lr_ax.plot(x, y, ":", color=c, alpha=0.6, linewidth=1, label="%s lr" % r.label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    lr_ax.set_ylabel("learning rate (dotted)")
    ax.grid(alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = lr_ax.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="best")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("metrics", nargs="+", help="metrics files (JSON lines) of train / train_kd")
    p.add_argument("--out-dir", required=True, help="folder for accuracy.png and loss.png (created)")
    p.add_argument("--labels", help="comma list, one per file (default: the run's method, else the file name)")
    p.add_argument("--title", default="", help="title over both plots")
    a = p.parse_args()
    labels = a.labels.split(",") if a.labels else [None] * len(a.metrics)
    if len(labels) != len(a.metrics):
        p.error("--labels has %d names for %d files" % (len(labels), len(a.metrics)))
    try:
        runs = [Run(m, l) for m, l in zip(a.metrics, labels)]
    except (OSError, ValueError) as e:
        print("plot_metrics.py: error: %s" % e, file=sys.stderr)
        return 1
    os.makedirs(a.out_dir, exist_ok=True)
    for what, ylabel in (("accuracy", "accuracy (%)"), ("loss", "loss")):
        out = os.path.join(a.out_dir, what + ".png")
        plot(runs, what, ylabel, out, a.title)
        print("wrote %s" % out)
    for r in runs:
        last = r.epochs[-1]
        acc = r.final["test_accuracy"] if r.final else last.get("test_accuracy", last.get("val_accuracy"))
        best = last.get("best_%s_accuracy" % r.eval)
        print("%s: %d epochs, %d steps, last test accuracy %.2f%%%s" %
              (r.label, last["epoch"], last["step"], acc,
               "" if best is None else ", best %s %.2f%% at epoch %d" % (r.eval, best, last["best_epoch"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
