#!/usr/bin/env python3
"""Greedy corpus selection under a size budget (docs/fuzzing.md).

    fuzz/pick_corpus.py TARGET CANDIDATE_DIR BUDGET_KB

Measures the edges (AFL map, hit counts ignored) of corpus/TARGET and of every candidate (e.g. the
output of `afl-cmin -e` on a run's queue) with afl-showmap, then copies into corpus/TARGET the
candidates that add the most new edges per byte until BUDGET_KB is spent or nothing adds an edge.
"""
import os, shutil, subprocess, sys, tempfile

def maps(binary, d):
    out = tempfile.mkdtemp()
    env = dict(os.environ, AFL_SKIP_CPUFREQ="1", AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES="1")
    subprocess.run(["cargo", "afl", "showmap", "-q", "-e", "-i", d, "-o", out, "--", binary],
                   env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    m = {}
    for f in os.listdir(out):
        with open(os.path.join(out, f)) as fh:
            m[f] = {line.split(":")[0] for line in fh if line.strip()}
    shutil.rmtree(out)
    return m

def main():
    target, cand, budget = sys.argv[1], sys.argv[2], int(sys.argv[3]) * 1024
    here = os.path.dirname(os.path.abspath(__file__))
    binary = os.path.join(here, "target", "release", target)
    corpus = os.path.join(here, "corpus", target)
    covered = set().union(*maps(binary, corpus).values())
    cands = maps(binary, cand)
    sizes = {f: os.path.getsize(os.path.join(cand, f)) for f in cands}
    spent, picked = 0, 0
    while True:
        best, score = None, 0.0
        for f, edges in cands.items():
            new = len(edges - covered)
            if new and spent + sizes[f] <= budget and new / max(sizes[f], 64) > score:
                best, score = f, new / max(sizes[f], 64)
        if best is None:
            break
        covered |= cands.pop(best)
        spent += sizes[best]
        picked += 1
        name = "afl-" + best.split(",")[0].replace(":", "")
        shutil.copy(os.path.join(cand, best), os.path.join(corpus, name))
    print(f"{target}: added {picked} files, {spent // 1024} KB, {len(covered)} edges covered")

main()
