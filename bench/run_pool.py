"""The resumable run pool shared by the studies (bench/isl_study.py, bench/objectives_table.py): a list of jobs, each a
folder + a command + a parser of its finished output, run --workers at a time; a job whose folder holds result.json
is done and skipped on restart, an unfinished folder is started again from scratch, and finished results recorded in
a committed summary.json are restored into their folders so a fresh checkout continues a study instead of redoing it.
"""
import json
import os
import shutil
import subprocess
import sys
import time


class Job:
    """One run: `folder` (result.json lands there), `cmd` (argv), `parse(folder, seconds) -> dict`, `name`."""

    def __init__(self, name, folder, cmd, parse, cleanup=()):
        self.name, self.folder, self.cmd, self.parse, self.cleanup = name, folder, cmd, parse, cleanup

    def done(self):
        return os.path.exists(os.path.join(self.folder, "result.json"))


def write_json_atomic(path, obj, indent=None):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f, indent=indent)
    os.replace(path + ".tmp", path)


def run_jobs(jobs, workers, max_minutes=0, tag="study", cwd=None, describe=None):
    """Runs the jobs not yet done; exits (sys.exit) naming the log of a run that fails. Returns the jobs left when
    --max-minutes stopped launching new ones."""
    pending = [j for j in jobs if not j.done()]
    print(f"{tag}: {len(jobs)} runs planned, {len(jobs) - len(pending)} already done, {len(pending)} to run",
          flush=True)
    deadline = time.time() + 60 * max_minutes if max_minutes else None
    running = []  # (job, Popen, start, log)
    try:
        while pending or running:
            while pending and len(running) < workers and (deadline is None or time.time() < deadline):
                job = pending.pop(0)
                if os.path.isdir(job.folder):
                    shutil.rmtree(job.folder)  # an unfinished earlier attempt: start it again from scratch
                os.makedirs(job.folder)
                log = open(os.path.join(job.folder, "log.txt"), "w")
                log.write("+ " + " ".join(job.cmd) + "\n")
                log.flush()
                running.append((job, subprocess.Popen(job.cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd),
                                time.time(), log))
            if not running:
                break
            time.sleep(0.2)
            still = []
            for job, p, t0, log in running:
                if p.poll() is None:
                    still.append((job, p, t0, log))
                    continue
                log.close()
                if p.returncode != 0:
                    sys.exit(f"{tag}: run {job.name} failed with exit code {p.returncode}; see {job.folder}/log.txt")
                res = job.parse(job.folder, time.time() - t0)
                write_json_atomic(os.path.join(job.folder, "result.json"), res)
                for name in job.cleanup:  # checkpoints of hundreds of runs are not needed
                    path = os.path.join(job.folder, name)
                    if os.path.exists(path):
                        os.remove(path)
                print(f"{tag}: done {job.name}: " + (describe(res) if describe else ""), flush=True)
            running = still
    finally:
        for _, p, _, _ in running:
            p.terminate()
    if pending:
        print(f"{tag}: --max-minutes reached, {len(pending)} runs left for the next part", flush=True)
    return pending


def restore(summary_path, folder_of, matches, tag="study"):
    """Writes each result of a committed summary.json into its run folder (folder_of(result)) when the folder has
    none; `matches(summary)` says whether the summary was made with the same shrinking settings as this call."""
    if not os.path.exists(summary_path):
        return
    with open(summary_path) as f:
        s = json.load(f)
    if not matches(s):
        return
    restored = 0
    for r in s.get("results", []):
        d = folder_of(r)
        if not os.path.exists(os.path.join(d, "result.json")):
            os.makedirs(d, exist_ok=True)
            write_json_atomic(os.path.join(d, "result.json"), r)
            restored += 1
    if restored:
        print(f"{tag}: {restored} finished runs restored from {summary_path}", flush=True)


def gather(out_dir):
    """Every result.json under out_dir."""
    results = []
    if os.path.isdir(out_dir):
        for dirpath, _, files in sorted(os.walk(out_dir)):
            if "result.json" in files:
                with open(os.path.join(dirpath, "result.json")) as f:
                    results.append(json.load(f))
    return results
