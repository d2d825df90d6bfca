"""Every number of PREREGISTRATION.md, recomputed from the pilot bundle results/fashion.

Run from the repository root (numpy and scipy only; no training; well under a minute):

    python results/fashion-study/power.py

The pilot is the committed fashion sweep: Fashion-MNIST (2000 training images), ResNet18 of
width 8, SGD, lr times 0.1 after epoch 30 of 50, history logged at epochs 1, 5, 10, ..., 50.
Only its CE (δ = 0) and δ = 0.05 runs are used, paired by seed; d = (δ = 0.05) − CE.
"""

from __future__ import annotations

import ast
import itertools
import json
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[2]
PILOT = ROOT / "results" / "fashion"
CE, LS = 0.0, 0.05
N_STUDY = 16                 # paired seeds 0-15
ALPHA_FIRST, ALPHA = 0.025, 0.05   # Holm over the two primary endpoints: smaller p, larger p
WINDOW = 30                  # last epoch before the lr drop; not reached by then = censored at 31
SIMULATIONS, SIM_SEED, MC_FLIPS = 2000, 20240601, 20000
BIN_COUNTS = (10, 15, 20, 30)


def default_of(module: str, function: str, argument: str):
    """The default value of ``function(argument=...)`` in nclab's source, read without importing it."""
    tree = ast.parse((ROOT / "nclab" / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            names = [a.arg for a in node.args.args]
            defaults = dict(zip(names[len(names) - len(node.args.defaults):], node.args.defaults))
            return ast.literal_eval(defaults[argument])
    raise LookupError(f"{function} not found in nclab/{module}")


def constant_of(module: str, name: str):
    tree = ast.parse((ROOT / "nclab" / module).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"{name} not found in nclab/{module}")


def load_pilot():
    """{(delta, seed): (history, run folder)} for CE and δ = 0.05."""
    runs = {}
    for path in sorted(PILOT.glob("runs/*/result.json")):
        result = json.loads(path.read_text())
        c = result["config"]
        if c["delta"] in (CE, LS):
            runs[c["delta"], c["seed"]] = result["history"], path.parent, c
    return runs


def ece(logits: np.ndarray, labels: np.ndarray, n_bins: int) -> float:
    """Equal-width-bin ECE, bins (edges[i], edges[i+1]], as nclab.calibration.ece computes it."""
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    confidence, correct = p.max(1), (p.argmax(1) == labels).astype(np.float64)
    index = np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], confidence, side="left")
    gap = np.bincount(index, correct - confidence, n_bins)
    return float(np.abs(gap).sum() / len(labels))


def sign_flip_p(d: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Two-sided sign-flip p-values of the rows of d (studies x n) over the given sign matrix (flips x n).

    p = share of flips whose |sum| is at least the observed |sum| (the identity is one of the flips
    when ``signs`` is the exact set of 2^n; a Monte Carlo set gets the identity added).
    """
    observed = np.abs(d.sum(1))[:, None]
    flipped = np.abs(d @ signs.T)
    return ((flipped >= observed * (1 - 1e-12)).sum(1)) / signs.shape[0]


def all_signs(n: int) -> np.ndarray:
    return np.array(list(itertools.product((1.0, -1.0), repeat=n)))


def t_interval(d: np.ndarray, level: float = 0.95):
    n = d.shape[-1]
    mean, sd = d.mean(-1), d.std(-1, ddof=1)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n)
    return mean - half, mean + half


def nct_power(effect: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t test (noncentral t)."""
    crit, nc = stats.t.ppf(1 - alpha / 2, n - 1), abs(effect) / sd * np.sqrt(n)
    wrong_side = float(np.nan_to_num(stats.nct.cdf(-crit, n - 1, nc)))  # scipy gives NaN where it underflows
    return float(stats.nct.sf(crit, n - 1, nc)) + wrong_side


def smallest_exact_n(alpha: float) -> int:
    """The fewest pairs at which the exact sign-flip test can reject at all: its smallest p is 2 / 2^n."""
    n = 2
    while 2.0 / 2**n > alpha:
        n += 1
    return n


def n_for(effect: float, sd: float, power: float, alpha: float) -> int:
    """The fewest pairs with noncentral-t power >= power, and no fewer than the exact test needs."""
    n = smallest_exact_n(alpha)
    while nct_power(effect, sd, n, alpha) < power:
        n += 1
    return n


def detectable(sd: float, n: int, alpha: float, power: float = 0.8) -> float:
    """The smallest |mean difference| with noncentral-t power >= power."""
    from scipy.optimize import brentq
    return brentq(lambda e: nct_power(e, sd, n, alpha) - power, 0.01 * sd, 3 * sd)


def simulate(effect: float, sd: float, n: int, rng: np.random.Generator) -> dict:
    """Share of simulated studies in which the rule gives a verdict: permutation p <= alpha AND the
    95% t interval excludes 0 (on the side of the true effect), at alpha = 0.025 and 0.05."""
    d = rng.normal(effect, sd, size=(SIMULATIONS, n))
    if n <= 16:
        signs = all_signs(n)
    else:
        signs = np.vstack([np.ones((1, n)), rng.choice((1.0, -1.0), size=(MC_FLIPS - 1, n))])
    p = np.concatenate([sign_flip_p(d[i:i + 100], signs) for i in range(0, SIMULATIONS, 100)])
    low, high = t_interval(d)
    excludes = high < 0 if effect < 0 else low > 0
    return {a: float(np.mean((p <= a) & excludes)) for a in (ALPHA_FIRST, ALPHA)}


def first_epoch(history, key: str, level: float, last: int | None = None) -> float:
    for record in history:
        if last is not None and record["epoch"] > last:
            break
        if record[key] <= level:
            return record["epoch"]
    return np.nan


def main() -> None:
    runs = load_pilot()
    seeds = sorted(s for d, s in runs if d == CE)
    assert seeds == sorted(s for d, s in runs if d == LS)
    first = runs[CE, seeds[0]]
    grid = [r["epoch"] for r in first[0]]
    print(f"pilot: {PILOT.relative_to(ROOT)}, seeds {seeds}, logged epochs {grid}")
    print(f"schedule: {first[2]['schedule']}, milestones {first[2]['milestones']}, gamma {first[2]['gamma']}; "
          f"lr logged at epochs 30/35: {[r['lr'] for r in first[0] if r['epoch'] in (30, 35)]}")

    # ---- the ECE estimator -------------------------------------------------------------------
    print("\n== ECE estimator")
    print(f"nclab.calibration.ece default n_bins = {default_of('calibration.py', 'ece', 'n_bins')}; "
          f"history field test_ece uses nclab.evaluate.ECE_BINS = {constant_of('evaluate.py', 'ECE_BINS')}")
    labels = np.load(PILOT / "labels.npz")["test"]
    gaps = []
    for (delta, seed), (history, folder, _) in runs.items():
        gaps.append(abs(ece(np.load(folder / "logits.npz")["test"], labels, 20) - history[-1]["test_ece"]))
    print(f"recomputed 20-bin ECE from the stored float16 test logits vs stored test_ece: "
          f"max |difference| {max(gaps):.1e} over {len(gaps)} runs")

    # ---- time to zero training error and the lr drop -------------------------------------------
    print("\n== time to zero training error (first logged epoch with train_error == 0; grid of 5)")
    zero = {(d, s): first_epoch(runs[d, s][0], "train_error", 0.0) for d, s in runs}
    for delta in (CE, LS):
        print(f"delta {delta}: " + ", ".join(f"seed {s}: {zero[delta, s]:g}" for s in seeds))
    late = sum(zero[CE, s] >= WINDOW for s in seeds)
    after = sum(zero[CE, s] > WINDOW for s in seeds)
    print(f"CE first zero at a logged epoch >= {WINDOW}: {late} of {len(seeds)}; only after the drop "
          f"(> {WINDOW}): {after} of {len(seeds)}; delta 0.05 by epoch 25 in "
          f"{sum(zero[LS, s] <= 25 for s in seeds)} of {len(seeds)}")
    relapse = [s for s in seeds if any(r["train_error"] > 0 for r in runs[CE, s][0] if r["epoch"] > zero[CE, s])]
    print(f"CE seeds whose train error is positive again after the first zero: {relapse}")
    censored = np.array([[min(zero[d, s], WINDOW + 1) for s in seeds] for d in (CE, LS)])
    dz = censored[1] - censored[0]
    print(f"censored at {WINDOW + 1}: CE {censored[0].tolist()}, delta 0.05 {censored[1].tolist()}, "
          f"d = {dz.tolist()}, mean {dz.mean():+.2f} epochs")

    # ---- primary endpoints in the pilot and power -----------------------------------------------
    print("\n== primary endpoints, pilot paired differences d = (delta 0.05) - CE, n = 6")
    signs6 = all_signs(len(seeds))
    print(f"the exact sign-flip test can reject at {ALPHA_FIRST} only from n = {smallest_exact_n(ALPHA_FIRST)} "
          f"pairs (smallest p = 2/2^n; at n = 6 it is {2 / 2**6:.4f}, at n = 16 {2 / 2**16:.1e})")
    for key in ("test_error", "test_ece"):
        d = np.array([runs[LS, s][0][-1][key] - runs[CE, s][0][-1][key] for s in seeds])
        mean, sd = d.mean(), d.std(ddof=1)
        low, high = t_interval(d)
        n = len(d)
        sd_ci = sd * np.sqrt((n - 1) / stats.chi2.ppf([0.975, 0.025], n - 1))
        print(f"{key}: CE mean {np.mean([runs[CE, s][0][-1][key] for s in seeds]):.4f}, "
              f"delta 0.05 mean {np.mean([runs[LS, s][0][-1][key] for s in seeds]):.4f}")
        print(f"  d = {np.round(d, 4).tolist()}")
        print(f"  mean {mean:+.4f}, SD {sd:.4f} (95% CI of the SD [{sd_ci[0]:.4f}, {sd_ci[1]:.4f}]), "
              f"standardized effect {mean / sd:+.2f}, 95% t interval [{low:+.4f}, {high:+.4f}], "
              f"exact sign-flip p (64 flips) {sign_flip_p(d[None], signs6)[0]:.4f}")
        for alpha in (ALPHA_FIRST, ALPHA):
            print(f"  n = {N_STUDY}, alpha {alpha}: noncentral-t power {nct_power(mean, sd, N_STUDY, alpha):.3f}")
        rng = np.random.default_rng(SIM_SEED)
        power = simulate(mean, sd, N_STUDY, rng)
        print(f"  n = {N_STUDY}, simulated rule (exact 2^16 sign flips AND 95% t interval), {SIMULATIONS} studies: "
              + ", ".join(f"alpha {a}: {p:.3f}" for a, p in power.items()))
        for target in (0.8, 0.95):
            n_t = n_for(mean, sd, target, ALPHA_FIRST)
            text = f"  {target:.0%} power at alpha {ALPHA_FIRST}: n = {n_t} (noncentral t)"
            if n_t <= 60:
                check = simulate(mean, sd, n_t, np.random.default_rng(SIM_SEED))[ALPHA_FIRST]
                flips = "exact flips" if n_t <= 16 else f"{MC_FLIPS} Monte Carlo flips"
                text += f"; simulated rule at that n: {check:.3f} ({flips})"
            print(text)
        if key == "test_error":
            upper = sd_ci[1]
            print(f"  at the SD's upper 95% bound {upper:.4f}: noncentral-t power n = {N_STUDY}, alpha "
                  f"{ALPHA_FIRST}: {nct_power(mean, upper, N_STUDY, ALPHA_FIRST):.3f}; "
                  f"at half the observed effect: {nct_power(mean / 2, sd, N_STUDY, ALPHA_FIRST):.3f}")
            print(f"  smallest |mean d| with 80% power at n = {N_STUDY}, alpha {ALPHA_FIRST}: "
                  f"{detectable(sd, N_STUDY, ALPHA_FIRST):.4f} (observed SD), "
                  f"{detectable(upper, N_STUDY, ALPHA_FIRST):.4f} (SD at its upper bound)")

    # ---- secondary: NC1 levels, fixed now ---------------------------------------------------------
    print("\n== NC1 levels (CE and delta 0.05 runs of the pilot)")
    histories = [runs[k][0] for k in sorted(runs)]
    ceiling = min(h[0]["nc1"] for h in histories)
    floor_window = max(min(r["nc1"] for r in h if r["epoch"] <= WINDOW) for h in histories)
    floor_all = max(min(r["nc1"] for r in h) for h in histories)
    time_levels = [float(f"{x:.2g}") for x in np.geomspace(ceiling, floor_window, 4)[1:-1]]
    match_levels = [float(f"{x:.2g}") for x in np.geomspace(ceiling, floor_all, 6)[1:-1]]
    print(f"lowest epoch-1 NC1 {ceiling:.4f}; highest of the runs' lowest NC1 in epochs 1-{WINDOW} "
          f"{floor_window:.4f}, in epochs 1-50 {floor_all:.4f}")
    print(f"time-to-NC1 levels (2 inner points of geomspace(ceiling, floor 1-{WINDOW}, 4), 2 s.f.): {time_levels}")
    print(f"matched-NC2 levels (4 inner points of geomspace(ceiling, floor 1-50, 6), 2 s.f.): {match_levels}")
    for level in time_levels:
        for delta in (CE, LS):
            times = [first_epoch(runs[delta, s][0], "nc1", level, WINDOW) for s in seeds]
            print(f"  NC1 <= {level}: delta {delta}: first logged epoch {times}")

    # ---- secondary: ECE after temperature scaling, bin sensitivity ---------------------------------
    print("\n== ECE by bin count (pilot, final epoch; temperature as stored, fitted on the validation split)")
    for scaled in (False, True):
        name = "scaled ECE" if scaled else "raw ECE   "
        for bins in BIN_COUNTS:
            d = []
            for s in seeds:
                values = []
                for delta in (CE, LS):
                    history, folder, _ = runs[delta, s]
                    z = np.load(folder / "logits.npz")["test"].astype(np.float64)
                    values.append(ece(z / history[-1]["temperature"] if scaled else z, labels, bins))
                d.append(values[1] - values[0])
            d = np.array(d)
            low, high = t_interval(d)
            print(f"  {name} {bins:2d} bins: mean d {d.mean():+.4f}, 95% t interval [{low:+.4f}, {high:+.4f}], "
                  f"sign-flip p {sign_flip_p(d[None], signs6)[0]:.4f}")

    # ---- cost -------------------------------------------------------------------------------------
    manifest = json.loads((PILOT / "manifest.json").read_text())
    print(f"\npilot run seconds, median over its 24 runs: {manifest['run_seconds_median']:.0f}")


if __name__ == "__main__":
    main()
