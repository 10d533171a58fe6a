#!/usr/bin/python3
"""The ISL study of issue 13: where, if anywhere, the curriculum helps KD, measured with paired seeds.

Stages (each run is `build/apps/train_kd` on Fashion-MNIST, resnet8 student, the shipped resnet20 teacher):
  screening     every variant and control, 3 epochs, clean labels, 3 seeds, evaluated on a validation split of
                10,000 training instances (--val-split; the student trains on the other 50,000)
  confirmation  kd, ce, the random-subset control, the anti-curriculum, the default isl and the screening winner, at budgets of 2, 3 and
                6 epochs (each its own scaled KD schedule), 5 seeds paired by seed, evaluated on the test split
  noise         the confirmation arms at 3 epochs with 40% symmetric label noise, 5 seeds

  bench/isl_study.py                                  # every stage, then the report
  bench/isl_study.py --stage screening --max-minutes 90
  bench/isl_study.py --report-only                    # regenerate bench/isl_study/report.md and its plots

Runs go to runs/isl_study/<stage>/<arm>/e<epochs>/s<seed>/ (git-ignored; runs recorded in the committed summary.json
are restored there first, so a fresh checkout continues the study); a finished run (its result.json) is
skipped on restart, so the study runs in parts. --workers processes (default 2) of --threads 1 each. The results of
every finished run are gathered into <report-dir>/summary.json (committed), from which the report is built.
--limit/--test-limit/--val-split/--seeds/--budgets shrink everything for a smoke run (ctest Bench.IslStudySmoke).
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import isl_study_stats as st  # noqa: E402
import run_pool as rp  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# arm -> (method, train_kd flags, what it is). Every isl arm keeps the default layout (1 warm-up epoch, 1 phase of 1
# epoch on 50%, then all data) unless its flags say otherwise, so the arms differ in one thing each.
ARMS = {
    "kd": ("kd", [], "Hinton KD"),
    "ce": ("ce", [], "cross-entropy alone"),
    "isl": ("isl", [], "ISL as the paper reads (the default before the study): student KD-loss difficulty, easiest "
                       "50% in the phase"),
    "random": ("isl", ["--measure", "random"], "control: a random 50% subset"),
    "anti": ("isl", ["--direction", "hard-first"], "control: the anti-curriculum (hardest 50%)"),
    "stratified": ("isl", ["--stratified"], "each class's easiest 50%"),
    "hardshare": ("isl", ["--hard-share", "0.25"], "easiest 37.5% + 12.5% random harder ones"),
    "weighted": ("isl", ["--curriculum-mode", "weighted", "--weight-tau", "0.25"],
                 "P(rank) ~ exp(-rank/(0.25 N)), all instances reachable"),
    "teacher-ce": ("isl", ["--measure", "teacher-ce"], "difficulty = the teacher's CE on the label"),
    "teacher-conf": ("isl", ["--measure", "teacher-confidence"], "difficulty = 1 - the teacher's p(label)"),
    "disagreement": ("isl", ["--measure", "disagreement"], "the student's CE on the teacher's predicted class"),
    "weighted-rescore": ("isl", ["--curriculum-mode", "weighted", "--phase-epochs", "2", "--rescore-every-epoch"],
                         "weighted, re-scored every epoch, over epochs 2-3"),
    "pace-teacher": ("isl", ["--measure", "teacher-ce", "--isl-warmup", "0", "--pace-to-lr-drop"],
                     "teacher-ce phase from step 0, all data back before the first LR drop"),
    "lr-restart": ("isl", ["--lr-restart"], "the LR schedule restarted at the phase and at the final stage"),
}
# The curriculum settings every isl arm starts from: train_kd's --method isl defaults before the study (the paper's
# reading: the student's KD loss as difficulty, easiest 50% first, a hard cut), given explicitly so the arms mean the
# same runs when the defaults change (the study's winner became the default; see the README). An arm's own flags
# replace these; the layout flags (--isl-warmup, --phase-epochs, --phases) are always given, by scaled_flags.
ISL_BASE = {"--measure": "loss", "--direction": "easy-first", "--curriculum-mode": "subset",
            "--start-fraction": "0.5", "--pacing": "linear", "--pace-to-lr-drop": "false"}
SCREENING_ARMS = ["kd", "isl", "random", "anti", "stratified", "hardshare", "weighted", "teacher-ce",
                  "teacher-conf", "disagreement", "weighted-rescore", "pace-teacher", "lr-restart"]
CONTROLS = {"kd", "ce", "random", "anti"}


def stage_plan(args, winner):
    """[(stage, arm, epochs, seed)] of every run of the asked stages, in the order they run."""
    # The anti-curriculum joined the confirmation after the screening: the one arm above KD on validation.
    arms_conf = ["kd", "ce", "random", "anti", "isl"] + ([winner] if winner and winner not in ("isl", "anti") else [])
    plan = []
    for stage in args.stages:
        if stage == "screening":
            cells = [(a, b) for b in (args.budgets or [3]) for a in SCREENING_ARMS]
            seeds = args.seeds or [0, 1, 2]
        elif stage == "confirmation":
            cells = [(a, b) for b in (args.budgets or [2, 3, 6]) for a in arms_conf]
            seeds = args.seeds or [0, 1, 2, 3, 4]
        else:
            cells = [(a, b) for b in (args.budgets or [3]) for a in arms_conf]
            seeds = args.seeds or [0, 1, 2, 3, 4]
        if args.arms:
            cells = [c for c in cells if c[0] in args.arms]
        # Seed-major, so a partial stage has whole pairs (every arm at seed 0 before any at seed 1).
        plan += [(stage, a, b, s) for s in seeds for (a, b) in cells]
    return plan


def run_dir(args, stage, arm, epochs, seed):
    return os.path.join(args.out, stage, arm, f"e{epochs}", f"s{seed}")


def scaled_flags(arm, epochs):
    """The arm's flags at a budget: its curriculum layout (written for 3 epochs: warm-up, phase, the rest on all
    data) scaled with the budget when the budget is a multiple of 3, so a 6-epoch ISL keeps its thirds instead of
    a 1-epoch phase followed by 4 epochs of KD. Other budgets keep the 3-epoch layout (at 2 epochs the phase is the
    last epoch), shortened where it would not fit (train_kd refuses a curriculum longer than --epochs: the phase
    first, then the warm-up). --pace-to-lr-drop lays its phase out itself."""
    method, flags, _ = ARMS[arm]
    flags = list(flags)
    if method != "isl":
        return flags
    for k, v in ISL_BASE.items():
        if k not in flags:
            flags += [f"{k}={v}"] if v == "false" else [k, v]
    if "--pace-to-lr-drop" in flags:
        return flags
    layout = {"--isl-warmup": 1, "--phase-epochs": 1, "--phases": 1}
    for k in layout:
        if k in flags:
            i = flags.index(k)
            layout[k] = int(flags[i + 1])
            del flags[i:i + 2]
    if epochs % 3 == 0 and epochs != 3:
        layout["--isl-warmup"] = layout["--isl-warmup"] * epochs // 3
        layout["--phase-epochs"] = layout["--phase-epochs"] * epochs // 3
    while layout["--isl-warmup"] + layout["--phases"] * layout["--phase-epochs"] > epochs:
        if layout["--phase-epochs"] > 1:
            layout["--phase-epochs"] -= 1
        elif layout["--isl-warmup"] > 0:
            layout["--isl-warmup"] -= 1
        else:
            layout["--phases"] -= 1
    for k, v in layout.items():
        flags += [k, str(v)]
    return flags


def command(args, stage, arm, epochs, seed, d):
    method, _, _ = ARMS[arm]
    flags = scaled_flags(arm, epochs)
    n_train = (args.limit or 60000) - (args.val_split if stage == "screening" else 0)
    steps = math.ceil(n_train / 128)
    cmd = [args.train_kd, "--method", method, "--epochs", str(epochs), "--seed", str(seed), "--threads", "1",
           "--device", "cpu", "--metrics", os.path.join(d, "metrics.jsonl"),
           "--out", os.path.join(d, "student.safetensors")]
    if stage == "screening":
        cmd += ["--val-split", str(args.val_split), "--eval-every", str(max(1, steps // 4))]
    if stage == "noise":
        cmd += ["--label-noise", "0.4"]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    if args.test_limit:
        cmd += ["--test-limit", str(args.test_limit)]
    return cmd + flags


def parse_run(d, stage, arm, epochs, seed, seconds):
    """The result of a finished run from its metrics file."""
    config, curve, epochs_done, final, subsets = None, [], [], None, []
    with open(os.path.join(d, "metrics.jsonl")) as f:
        for line in f:
            j = json.loads(line)
            if "config" in j:
                config = j["config"]
            elif j.get("final"):
                final = j
            else:
                acc = j.get("val_accuracy", j.get("test_accuracy"))
                curve.append([j["step"], acc, j.get("lr", j.get("lr_last"))])
                if "epoch_step" not in j:
                    epochs_done.append([j["step"], acc])
                if "isl" in j and "subset_class_counts" in j["isl"]:
                    subsets.append(j["isl"]["subset_class_counts"])
    if final is None:
        raise RuntimeError(f"{d}: no final line in metrics.jsonl (the run did not finish)")
    cur = (config or {}).get("curriculum", {})
    return {"stage": stage, "arm": arm, "epochs": epochs, "seed": seed, "seconds": seconds,
            "train_instances": (config or {}).get("train_instances"),
            "steps": final["step"], "val_accuracy": final.get("val_accuracy"),
            "test_accuracy": final["test_accuracy"], "test_per_class": final["test_per_class"],
            "curve": sorted(curve), "epoch_points": epochs_done, "subset_class_counts": subsets,
            "layout": {k: cur[k] for k in ("warmup_epochs", "phase_epochs", "num_phases") if k in cur}}


def run_all(args, plan):
    def describe(res):
        return f"val {res['val_accuracy']} test {res['test_accuracy']:.2f} in {res['seconds']:.0f}s"
    jobs = []
    for job in plan:
        d = run_dir(args, *job)
        jobs.append(rp.Job(f"{job[0]} {job[1]} e{job[2]} s{job[3]}", d, command(args, *job, d),
                           lambda folder, secs, job=job: parse_run(folder, *job, secs),
                           cleanup=["student.safetensors"]))
    rp.run_jobs(jobs, args.workers, args.max_minutes, tag="isl_study", cwd=ROOT, describe=describe)


def restore_from_summary(args, summary):
    """The study runs in parts across sessions and machines: a run recorded in the committed summary.json (with the
    same --limit/--test-limit/--val-split) counts as done, so a fresh checkout does not redo it."""
    rp.restore(summary, lambda r: run_dir(args, r["stage"], r["arm"], r["epochs"], r["seed"]),
               lambda s: (s.get("limit", 0), s.get("test_limit", 0), s.get("val_split", 10000)) ==
               (args.limit, args.test_limit, args.val_split), tag="isl_study")


def gather(args):
    results = rp.gather(args.out)
    results.sort(key=lambda r: (r["stage"], r["arm"], r["epochs"], r["seed"]))
    return results


# ---------------------------------------------------------------- report

STAGE_METRIC = {"screening": "val_accuracy", "confirmation": "test_accuracy", "noise": "test_accuracy"}


def cells_of(results):
    """{(stage, arm, epochs): {seed: accuracy}} on each stage's metric (validation for screening)."""
    cells = {}
    for r in results:
        v = r.get(STAGE_METRIC[r["stage"]])
        if v is not None:
            cells.setdefault((r["stage"], r["arm"], r["epochs"]), {})[r["seed"]] = v
    return cells


def screening_winner(cells):
    best, best_mean = None, -1.0
    for (stage, arm, epochs), by_seed in cells.items():
        if stage != "screening" or arm in CONTROLS or arm == "ce":
            continue
        m = sum(by_seed.values()) / len(by_seed)
        if m > best_mean:
            best, best_mean = arm, m
    return best


def comparisons(cells):
    """Paired differences against KD in each cell (and the winner against the default ISL). Primary: isl vs kd in
    the confirmation stage, one per budget (reported as they are); the others are Holm-corrected together."""
    rows = []
    for (stage, arm, epochs), by_seed in sorted(cells.items()):
        kd = cells.get((stage, "kd", epochs))
        if arm == "kd" or not kd:
            continue
        r = st.paired(by_seed, kd)
        r.update(stage=stage, arm=arm, epochs=epochs, vs="kd", primary=stage == "confirmation" and arm == "isl")
        rows.append(r)
    secondary = [r for r in rows if not r["primary"]]
    for r, adj in zip(secondary, st.holm([r["p"] for r in secondary])):
        r["p_holm"] = adj
    for r in rows:
        if r["primary"]:
            r["p_holm"] = r["p"]
    return rows


def fmt(x, digits=2):
    return "–" if x is None or x != x else f"{x:.{digits}f}"


def make_plots(results, cells, rows, report_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    made = []
    stages = [s for s in ("screening", "confirmation", "noise") if any(k[0] == s for k in cells)]
    # 1. mean ± sd per cell
    if stages:
        fig, axes = plt.subplots(len(stages), 1, figsize=(11, 3.6 * len(stages)), squeeze=False)
        for ax, stage in zip(axes[:, 0], stages):
            keys = sorted((k for k in cells if k[0] == stage), key=lambda k: (k[2], k[1]))
            ms = [st.mean_sd(list(cells[k].values())) for k in keys]
            x = np.arange(len(keys))
            ax.errorbar(x, [m for m, _ in ms], yerr=[0 if s != s else s for _, s in ms], fmt="o", capsize=3)
            ax.set_xticks(x)
            ax.set_xticklabels([f"{k[1]}\n{k[2]}ep" for k in keys], fontsize=7)
            ax.set_ylabel(("validation" if stage == "screening" else "test") + " accuracy (%)")
            ax.set_title(f"{stage}: mean ± sd over seeds")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(report_dir, "cells.png"), dpi=110)
        plt.close(fig)
        made.append(("cells.png", "mean ± sd of each cell"))
    # 2. forest plot of paired differences against KD
    if rows:
        fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.2))
        y = np.arange(len(rows))[::-1]
        for yi, r in zip(y, rows):
            lo = r["low"] if r["low"] == r["low"] else r["mean"]
            hi = r["high"] if r["high"] == r["high"] else r["mean"]
            ax.plot([lo, hi], [yi, yi], color="C3" if r["primary"] else "C0")
            ax.plot([r["mean"]], [yi], "o", color="C3" if r["primary"] else "C0")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{r['stage'][:5]} {r['arm']} {r['epochs']}ep (n={r['n']})" for r in rows], fontsize=7)
        ax.set_xlabel("accuracy difference vs KD, paired by seed (points), 95% t interval")
        fig.tight_layout()
        fig.savefig(os.path.join(report_dir, "forest.png"), dpi=110)
        plt.close(fig)
        made.append(("forest.png", "paired differences against KD (red: the primary question)"))
    # 3. validation accuracy against steps (screening), LR on a second axis, the default ISL's phase shaded
    scr = [r for r in results if r["stage"] == "screening"]
    if scr:
        budget = max(r["epochs"] for r in scr)
        scr = [r for r in scr if r["epochs"] == budget]
        fig, ax = plt.subplots(figsize=(9, 4.5))
        for arm in sorted({r["arm"] for r in scr}):
            runs = [r for r in scr if r["arm"] == arm]
            steps = sorted(set.intersection(*[{p[0] for p in r["curve"]} for r in runs]))
            mean = [np.mean([dict((p[0], p[1]) for p in r["curve"])[s] for r in runs]) for s in steps]
            ax.plot(steps, mean, label=arm, lw=2.0 if arm in ("kd", "isl") else 1.0)
        kd = [r for r in scr if r["arm"] == "kd"]
        isl = [r for r in scr if r["arm"] == "isl"]
        if isl:
            r = isl[0]
            spe = r["steps"] / r["epochs"]
            lay = r["layout"]
            if lay:
                a0 = lay["warmup_epochs"] * spe
                a1 = a0 + lay["phase_epochs"] * lay["num_phases"] * spe
                ax.axvspan(a0, a1, color="0.85", zorder=0, label="isl phase")
        if kd:
            ax2 = ax.twinx()
            c = [p for p in kd[0]["curve"] if p[2] is not None]
            ax2.plot([p[0] for p in c], [p[2] for p in c], "k:", lw=1)
            ax2.set_ylabel("learning rate (dotted)")
        ax.set_xlabel("step")
        ax.set_ylabel("validation accuracy (%), mean over seeds")
        ax.legend(fontsize=7, ncol=2, loc="lower right")
        fig.tight_layout()
        fig.savefig(os.path.join(report_dir, "curves.png"), dpi=110)
        plt.close(fig)
        made.append(("curves.png", f"screening ({budget} epochs): validation accuracy against steps, the LR dotted, "
                                   "the default ISL's phase shaded"))
    # 4. accuracy against budget (confirmation)
    conf = {k: v for k, v in cells.items() if k[0] == "confirmation"}
    if conf and len({k[2] for k in conf}) > 1:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for arm in sorted({k[1] for k in conf}):
            bs = sorted(k[2] for k in conf if k[1] == arm)
            ms = [st.mean_sd(list(conf[("confirmation", arm, b)].values())) for b in bs]
            ax.errorbar(bs, [m for m, _ in ms], yerr=[0 if s != s else s for _, s in ms], marker="o", capsize=3,
                        label=arm)
        ax.set_xlabel("budget (epochs, each with its own scaled schedule)")
        ax.set_ylabel("test accuracy (%)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(report_dir, "budget.png"), dpi=110)
        plt.close(fig)
        made.append(("budget.png", "accuracy against budget (the 'fewer iterations' question)"))
    # 5. per-class accuracy difference against KD (confirmation, or whatever stage ran, at its largest budget)
    for stage in ("confirmation", "noise", "screening"):
        rs = [r for r in results if r["stage"] == stage]
        if not rs:
            continue
        b = max(r["epochs"] for r in rs)
        kd = {r["seed"]: np.asarray(r["test_per_class"]) for r in rs if r["arm"] == "kd" and r["epochs"] == b}
        arms = sorted({r["arm"] for r in rs if r["arm"] != "kd"})
        if not kd or not arms:
            continue
        fig, ax = plt.subplots(figsize=(9, 4))
        width = 0.8 / len(arms)
        for i, arm in enumerate(arms):
            diffs = [np.asarray(r["test_per_class"]) - kd[r["seed"]] for r in rs
                     if r["arm"] == arm and r["epochs"] == b and r["seed"] in kd]
            if diffs:
                d = np.mean(diffs, axis=0)
                ax.bar(np.arange(len(d)) + i * width, d, width, label=arm)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("class")
        ax.set_ylabel("test accuracy difference vs KD (points)")
        ax.set_title(f"{stage}, {b} epochs, mean over paired seeds")
        ax.legend(fontsize=7, ncol=3)
        fig.tight_layout()
        fig.savefig(os.path.join(report_dir, "per_class.png"), dpi=110)
        plt.close(fig)
        made.append(("per_class.png", f"per-class test accuracy difference against KD ({stage}, {b} epochs)"))
        break
    # 6. the class histogram of each arm's (first) phase subset
    sub = {}
    for r in results:
        if r["subset_class_counts"] and r["stage"] == "screening":
            sub.setdefault(r["arm"], []).append(np.asarray(r["subset_class_counts"][0], dtype=float))
    if sub:
        fig, ax = plt.subplots(figsize=(9, 4))
        arms = sorted(sub)
        width = 0.8 / len(arms)
        for i, arm in enumerate(arms):
            h = np.mean(sub[arm], axis=0)
            ax.bar(np.arange(len(h)) + i * width, 100.0 * h / h.sum(), width, label=arm)
        ax.axhline(100.0 / len(h), color="k", lw=0.8)
        ax.set_xlabel("class")
        ax.set_ylabel("share of the phase's subset (%)")
        ax.legend(fontsize=7, ncol=3)
        fig.tight_layout()
        fig.savefig(os.path.join(report_dir, "subsets.png"), dpi=110)
        plt.close(fig)
        made.append(("subsets.png", "class histogram of each arm's first phase subset (screening)"))
    return made


def write_report(args, results, plan_all):
    os.makedirs(args.report_dir, exist_ok=True)
    cells = cells_of(results)
    rows = comparisons(cells)
    made = make_plots(results, cells, rows, args.report_dir)
    planned = {}
    for stage, arm, epochs, seed in plan_all:
        planned.setdefault((stage, arm, epochs), set()).add(seed)
    L = ["# ISL study (issue 13): report", "",
         f"Generated by `{args.command_line}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from "
         f"{len(results)} finished runs (`{os.path.relpath(os.path.join(args.report_dir, 'summary.json'), ROOT)}`).",
         "", "Fashion-MNIST, resnet8 student, the shipped resnet20 teacher, `train_kd` on the CPU with 1 thread per "
         "run, KD schedule scaled to each budget. Caveats: the teacher saw all 60,000 training instances (also the "
         "screening's validation split); under label noise the teacher is the clean one.", ""]
    if args.limit or args.test_limit:
        L += [f"**Smoke settings** (`--limit {args.limit} --test-limit {args.test_limit}`): these numbers say nothing "
              "about the curriculum.", ""]
    L += ["## Cells that ran", "", "| stage | arm | epochs | seeds done / planned | mean ± sd | minutes per run |",
          "|---|---|---|---|---|---|"]
    keys = sorted(set(planned) | set(cells), key=lambda k: (["screening", "confirmation", "noise"].index(k[0]), k[2], k[1]))
    for k in keys:
        done = cells.get(k, {})
        m, sd = st.mean_sd(list(done.values())) if done else (None, None)
        secs = [r["seconds"] for r in results if (r["stage"], r["arm"], r["epochs"]) == k]
        L.append(f"| {k[0]} | {k[1]} | {k[2]} | {len(done)} / {len(planned.get(k, done))} | {fmt(m)} ± {fmt(sd)} | "
                 f"{fmt(sum(secs) / len(secs) / 60, 1) if secs else '–'} |")
    L += ["", "Screening reports validation accuracy; confirmation and noise report test accuracy (read once per run, "
          "at its end).", ""]
    winner = screening_winner(cells)
    L += [f"Screening winner (best mean validation accuracy among the ISL variants): **{winner or 'none yet'}**.", ""]
    L += ["## Paired differences against KD", "",
          "Difference = arm − KD on the same seed (same initial student, same batches up to the first phase). 95% t "
          "interval; exact sign-flip permutation p-value. The primary question (default ISL vs KD at each "
          "confirmation budget) is reported as it is; every other comparison is Holm-corrected over all of them.", "",
          "| stage | arm | epochs | n | mean diff | 95% interval | p | p (Holm) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        L.append(f"| {r['stage']} | {'**' + r['arm'] + '** (primary)' if r['primary'] else r['arm']} | {r['epochs']} | "
                 f"{r['n']} | {fmt(r['mean'])} | [{fmt(r['low'])}, {fmt(r['high'])}] | {fmt(r['p'], 3)} | "
                 f"{fmt(r['p_holm'], 3)} |")
    conf_kd = {k[2]: list(v.values()) for k, v in cells.items() if k[0] == "confirmation" and k[1] == "kd"}
    if len(conf_kd) > 1:
        L += ["", "## Fewer iterations?", "",
              "The budget (epochs) at which KD's mean test accuracy, interpolated between the budgets run, reaches "
              "ISL's mean at each budget; 95% interval from a seed bootstrap (inf: KD never reaches it within the "
              "budgets run; the smallest budget: KD already does there).", "",
              "| arm | ISL budget | ISL mean | KD matches it at | 95% interval |", "|---|---|---|---|---|"]
        for k, v in sorted(cells.items()):
            if k[0] != "confirmation" or k[1] in ("kd", "ce"):
                continue
            est, lo, hi = st.bootstrap_matching_budget(sorted(conf_kd), conf_kd, list(v.values()))
            L.append(f"| {k[1]} | {k[2]} | {fmt(sum(v.values()) / len(v))} | {fmt(est)} | [{fmt(lo)}, {fmt(hi)}] |")
    L += ["", "## Arms", "", "Flags at 3 epochs; at 6 epochs an ISL arm's warm-up and phase lengths double (its "
          "thirds are kept), at 2 epochs a layout that would not fit is shortened (the phase first, then the warm-up).", "",
          "| arm | train_kd flags | what |", "|---|---|---|"]
    for arm, (method, _, what) in ARMS.items():  # every flag the arm's 3-epoch runs got (ISL_BASE included)
        L.append(f"| {arm} | `{' '.join(['--method', method] + scaled_flags(arm, 3))}` | {what} |")
    if made:
        L += ["", "## Plots", ""]
        for name, what in made:
            L += [f"{what}:", "", f"![{what}]({name})", ""]
    with open(os.path.join(args.report_dir, "report.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    print(f"isl_study: wrote {os.path.join(args.report_dir, 'report.md')} and {len(made)} plots", flush=True)
    return made


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", action="append", choices=["screening", "confirmation", "noise"],
                    help="run only this stage (repeatable; default: all three, in order)")
    ap.add_argument("--max-minutes", type=float, default=0, help="launch no new run after this many minutes")
    ap.add_argument("--workers", type=int, default=2, help="runs at once (each with --threads 1)")
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "isl_study"), help="per-run folders (git-ignored)")
    ap.add_argument("--report-dir", default=os.path.join(ROOT, "bench", "isl_study"),
                    help="report.md, the plots and summary.json")
    ap.add_argument("--train-kd", default=os.path.join(os.environ.get("ISLKD_BUILD_DIR", os.path.join(ROOT, "build")),
                                                       "apps", "train_kd"))
    ap.add_argument("--report-only", action="store_true", help="rebuild the report from summary.json")
    ap.add_argument("--winner", help="the confirmation's screening winner (default: from the screening results)")
    ap.add_argument("--arms", nargs="+", choices=sorted(ARMS), help="only these arms")
    ap.add_argument("--seeds", nargs="+", type=int, help="override every stage's seeds")
    ap.add_argument("--budgets", nargs="+", type=int, help="override every stage's budgets (epochs)")
    ap.add_argument("--limit", type=int, default=0, help="smoke: train on the first N instances")
    ap.add_argument("--test-limit", type=int, default=0, help="smoke: evaluate on the first N test instances")
    ap.add_argument("--val-split", type=int, default=10000, help="screening's validation instances")
    ap.add_argument("--fresh", action="store_true", help="delete --out first (the smoke test starts from nothing)")
    ap.add_argument("--expect-plots", type=int, default=0, help="fail when the report has fewer plots (smoke test)")
    args = ap.parse_args()
    args.stages = args.stage or ["screening", "confirmation", "noise"]
    args.out, args.report_dir, args.train_kd = (os.path.abspath(p) for p in (args.out, args.report_dir, args.train_kd))
    args.command_line = "bench/isl_study.py " + " ".join(a if " " not in a else repr(a) for a in sys.argv[1:])
    summary = os.path.join(args.report_dir, "summary.json")

    if args.report_only:
        with open(summary) as f:
            s = json.load(f)
        results = s["results"]
        args.command_line = s.get("command", args.command_line)
        args.limit, args.test_limit = s.get("limit", 0), s.get("test_limit", 0)
        write_report(args, results, [tuple(p) for p in s.get("plan", [])])
        return
    if not os.path.exists(args.train_kd):
        sys.exit(f"isl_study: no train_kd at {args.train_kd}; build it: cmake --build build --target train_kd")
    if args.fresh and os.path.isdir(args.out):
        shutil.rmtree(args.out)
    elif os.path.exists(summary):
        restore_from_summary(args, summary)
    results = gather(args)
    for stage in args.stages:
        winner = args.winner or screening_winner(cells_of(results))
        if stage != "screening" and not winner:
            print("isl_study: no screening results yet: the confirmation runs without a winner arm", flush=True)
        run_all(args, stage_plan(argparse.Namespace(**{**vars(args), "stages": [stage]}), winner))
        results = gather(args)
    winner = args.winner or screening_winner(cells_of(results))
    plan_all = stage_plan(argparse.Namespace(**{**vars(args), "stages": ["screening", "confirmation", "noise"]}),
                          winner)
    os.makedirs(args.report_dir, exist_ok=True)
    with open(summary + ".tmp", "w") as f:
        json.dump({"command": args.command_line, "limit": args.limit, "test_limit": args.test_limit,
                   "val_split": args.val_split,
                   "plan": plan_all, "results": results}, f, indent=0)
    os.replace(summary + ".tmp", summary)
    made = write_report(args, results, plan_all)
    if len(made) < args.expect_plots:
        sys.exit(f"isl_study: the report has {len(made)} plots, expected {args.expect_plots}")


if __name__ == "__main__":
    main()
