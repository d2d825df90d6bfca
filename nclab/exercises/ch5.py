"""The self-checked exercises of chapter 5 (calibration): the ECE, the NLL and a temperature fit.

Each function takes the student's function, runs it on random logits and labels drawn with a
fixed seed (several K, sample sizes and temperatures, overconfident and underconfident), and
compares it with :mod:`nclab.calibration`. It returns a :class:`~nclab.exercises.Verdict` and
never shows the expected values.

Example
-------
>>> import nclab as nc
>>> def ece(logits, labels, n_bins):
...     raise NotImplementedError
>>> nc.exercises.ch5.ece(ece).status
'not attempted'
"""

from __future__ import annotations

import torch

from nclab.calibration import ece as ece_reference, fit_temperature as fit_reference, nll as nll_reference

from ._core import Verdict, check_function

__all__ = ["ece", "nll", "fit_temperature"]

# (K, N, temperature, seed): labels are drawn from softmax(z), the network's logits are z / T, so
# T > 1 gives an overconfident network, T < 1 an underconfident one; the fitted temperature is ≈ T.
_CASES = ((3, 400, 2.0, 0), (5, 600, 0.5, 1), (10, 800, 3.0, 2), (4, 300, 0.7, 3))


def _logits(num_classes: int, n: int, temperature: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a classifier whose miscalibration is one temperature, and labels drawn to match."""
    gen = torch.Generator().manual_seed(seed)
    calibrated = 2.5 * torch.randn(n, num_classes, generator=gen, dtype=torch.float64)
    labels = torch.multinomial(torch.softmax(calibrated, 1), 1, generator=gen).squeeze(1)
    return calibrated / temperature, labels


def ece(student) -> Verdict:
    """Exercise 5.1 (chapter 5): the expected calibration error with equal-width bins.

    ``student(logits, labels, n_bins)`` returns Σ_b (n_b/N) abs(acc_b − conf_b), where bin b of
    ``n_bins`` equal-width bins of [0, 1] holds the samples whose top-class softmax probability
    falls in (b/B, (b+1)/B]. The reference is :func:`nclab.calibration.ece`.

    Returns
    -------
    Verdict
    """
    cases = [(*_logits(k, n, t, seed), bins) for (k, n, t, seed), bins in zip(_CASES, (10, 20, 15, 5))]
    return check_function(
        "Exercise 5.1 (ECE)", student, ece_reference, cases,
        "the confidence of a sample is the largest softmax probability (that of the predicted "
        "class, whatever the label), a sample is correct when its argmax equals its label, and "
        "each bin's gap counts in proportion to the number of samples in it; empty bins count "
        "zero.")


def nll(student) -> Verdict:
    """Exercise 5.2 (chapter 5): the mean negative log-likelihood of logits scaled by a temperature.

    ``student(logits, labels, temperature)`` returns the mean over samples of
    −log softmax(z/T)_y, in nats. The reference is :func:`nclab.calibration.nll` of
    ``logits / temperature``.

    Returns
    -------
    Verdict
    """
    cases = [(*_logits(k, n, t, seed), s) for (k, n, t, seed), s in zip(_CASES, (1.0, 2.5, 0.4, 1.7))]
    return check_function(
        "Exercise 5.2 (NLL at a temperature)", student,
        lambda logits, labels, temperature: nll_reference(logits / temperature, labels), cases,
        "divide the logits by T, take the log-softmax of each row (subtract the log of the sum of "
        "exponentials), pick the entry of the true label, and average the negatives over the "
        "samples.")


def fit_temperature(student) -> Verdict:
    """Exercise 5.3 (chapter 5): the temperature that minimizes the validation NLL, by grid search.

    ``student(logits, labels)`` returns the T of a grid of temperatures spaced one per cent apart
    (for example :data:`nclab.calibration.ECE_TEMPERATURE_GRID`) that minimizes the mean NLL of
    ``logits / T``. It is compared with the exact minimizer,
    :func:`nclab.calibration.fit_temperature` with ``method="nll"``, to within the grid's spacing.

    Returns
    -------
    Verdict
    """
    cases = [_logits(k, n, t, seed) for k, n, t, seed in _CASES]
    return check_function(
        "Exercise 5.3 (temperature fit)", student, lambda logits, labels: fit_reference(logits, labels),
        cases,
        "scale the logits as z / T (divide, do not multiply), compute the mean NLL for every T of "
        "the grid, and return the temperature itself (not its index, not the NLL) at the minimum.",
        rtol=0.011, atol=0.0)
