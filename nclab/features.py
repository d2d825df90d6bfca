"""Streaming per-class statistics of penultimate features (chapter 2).

:class:`FeatureStats` gathers per-class counts, means and the within-class scatter of features
in one pass over a data set, batch by batch, in float64 and O(d² + K·d) memory. Every measure of
:mod:`nclab.metrics` is a function of these statistics (and the classifier); ``nclab.metrics``
imports :class:`FeatureStats`, so ``nclab.metrics.FeatureStats`` is this class.
"""

from __future__ import annotations

import torch

from nclab._checks import as_tensor, check_finite, check_labels, check_num_classes, check_positive_int

__all__ = ["FeatureStats"]

# Rows per float32 Gram block: float32 sums stay short, and are added up in float64.
_GRAM_BLOCK = 8192


class FeatureStats:
    """Streaming per-class statistics of penultimate features (chapter 2).

    Feed it the features of a data set batch by batch with :meth:`update`; read the class
    means, the global mean and the within- and between-class covariances from its
    properties, which every NC measure uses.

    Each class k keeps a fixed shift c_k (the mean of its first batch of samples), its count
    n_k and the sum s_k = Σ_i (h_ki − c_k); one d×d matrix T = Σ_k Σ_i (h_ki − c_k)(h_ki − c_k)ᵀ
    holds the second moments. Then μ_k = c_k + s_k/n_k and
    N·Σ_W = T − Σ_k s_k s_kᵀ / n_k. Because the shifts sit near the class means, the
    subtraction loses almost nothing even when the features share a large common offset.
    Per batch the cost is one d×d Gram matrix of the shifted features, plus O(N·d) work.
    Sums are kept in float64. Float64 features are shifted and multiplied in float64;
    lower-precision features are shifted in float32, where the small shifted values keep
    float32's relative accuracy. On the CPU their Gram matrix is then formed in float32 blocks
    of at most 8192 rows, each added in float64: the measures agree with a float64
    computation to about 1e-7 in roughly half the time of a float64 product. On a GPU, or
    when float32 matmuls may use TF32 or bf16 (``torch.set_float32_matmul_precision``), the
    Gram matrix is formed in float64.

    Parameters
    ----------
    num_classes : int
        Number of classes K (at least 2).
    dim : int
        Feature dimension d.
    device : str or torch.device, optional
        Where the statistics live. Default: the device of the first batch.

    Examples
    --------
    >>> import torch
    >>> stats = FeatureStats(3, 4)
    >>> for _ in range(5):
    ...     stats = stats.update(torch.randn(30, 4), torch.arange(30) % 3)
    >>> stats
    FeatureStats(num_classes=3, dim=4, samples=150)
    >>> stats.means.shape, stats.within_cov.shape
    (torch.Size([3, 4]), torch.Size([4, 4]))
    """

    def __init__(self, num_classes: int, dim: int, *, device: str | torch.device | None = None):
        self.num_classes = check_num_classes(num_classes)
        self.dim = check_positive_int(dim, "dim")
        self.device = None if device is None else torch.device(device)
        self._counts: torch.Tensor | None = None
        if self.device is not None:
            self._allocate(self.device)

    def __repr__(self) -> str:
        samples = int(self.counts.sum())
        return f"FeatureStats(num_classes={self.num_classes}, dim={self.dim}, samples={samples})"

    def _allocate(self, device: torch.device) -> None:
        K, d = self.num_classes, self.dim
        self.device = device
        self._counts = torch.zeros(K, dtype=torch.int64, device=device)
        self._shift = torch.zeros(K, d, dtype=torch.float64, device=device)
        self._shift32 = torch.zeros(K, d, dtype=torch.float32, device=device)  # the same values
        self._sums = torch.zeros(K, d, dtype=torch.float64, device=device)
        self._scatter = torch.zeros(d, d, dtype=torch.float64, device=device)

    def update(self, features, labels) -> FeatureStats:
        """Add a batch of features (N×d) with their integer labels (N,); returns self."""
        x = as_tensor(features, "features").detach()
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"features must have shape (N, {self.dim}), got {tuple(x.shape)}")
        y = check_labels(as_tensor(labels, "labels"), self.num_classes)
        if y.shape[0] != x.shape[0]:
            raise ValueError(
                f"labels must have one entry per row of features: got {y.shape[0]} labels "
                f"for {x.shape[0]} feature rows"
            )
        if self._counts is None:
            self._allocate(x.device)
        x = x.to(self.device, torch.float64 if x.dtype == torch.float64 else torch.float32)
        y = y.to(self.device)
        if x.shape[0] == 0:
            return self

        batch_counts = torch.bincount(y, minlength=self.num_classes)
        new = (batch_counts > 0) & (self._counts == 0)
        shift, shift32 = self._shift, self._shift32
        if bool(new.any()):
            # Any point near the class mean serves as shift; a float32-representable one
            # is the same in both precision paths.
            first_sums = torch.zeros(shift.shape, dtype=x.dtype, device=self.device).index_add_(0, y, x)
            first_means = first_sums[new] / batch_counts[new, None]
            shift32 = shift32.clone()
            shift32[new] = first_means.to(torch.float32)
            shift = shift32.to(torch.float64)

        centred = x - (shift if x.dtype == torch.float64 else shift32)[y]
        sums = torch.zeros(shift.shape, dtype=x.dtype, device=self.device).index_add_(0, y, centred)
        gram = _gram64(centred)
        # A NaN or infinity in the batch shows up on the Gram diagonal: an O(d) check.
        if not bool(torch.isfinite(gram.diagonal()).all()):
            check_finite(x, "features")
            raise ValueError(f"features are too large: their squares overflow {centred.dtype}")

        self._shift, self._shift32 = shift, shift32
        self._sums += sums.to(torch.float64)
        self._scatter += gram
        self._counts += batch_counts
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add the statistics of another accumulator into this one, in place; returns self.

        The result equals one accumulator fed both data streams. ``other`` is left unchanged.
        """
        if not isinstance(other, FeatureStats):
            raise ValueError(f"other must be a FeatureStats, got {type(other).__name__}")
        if (other.num_classes, other.dim) != (self.num_classes, self.dim):
            raise ValueError(
                f"other must have {self.num_classes} classes and dim {self.dim}, "
                f"got {other.num_classes} classes and dim {other.dim}"
            )
        if other._counts is None:
            return self
        if self._counts is None:
            self._allocate(other.device)
        counts = other._counts.to(self.device)
        shift = other._shift.to(self.device)
        sums = other._sums.to(self.device)
        adopt = (self._counts == 0) & (counts > 0)
        self._shift[adopt] = shift[adopt]
        self._shift32 = self._shift.to(torch.float32)
        # Re-express other's sums and scatter around this accumulator's shifts:
        # h − c_k = (h − c'_k) + δ_k with δ_k = c'_k − c_k, summed over other's samples.
        delta = shift - self._shift
        cross = sums.T @ delta
        self._scatter += other._scatter.to(self.device) + cross + cross.T + (delta.T * counts) @ delta
        self._sums += sums + counts[:, None] * delta
        self._counts += counts
        return self

    @property
    def counts(self) -> torch.Tensor:
        """Samples seen per class, shape (K,)."""
        if self._counts is None:
            return torch.zeros(self.num_classes, dtype=torch.int64)
        return self._counts.clone()

    def _require_every_class(self) -> torch.Tensor:
        counts = self.counts
        empty = torch.nonzero(counts == 0).flatten().tolist()
        if empty:
            raise ValueError(
                f"stats has no samples of class(es) {empty}; class means, NC1 and NC2_H need "
                "samples of every class"
            )
        return counts

    @property
    def means(self) -> torch.Tensor:
        """Class means μ_k, shape (K, d), float64."""
        counts = self._require_every_class()
        return self._shift + self._sums / counts[:, None]

    @property
    def global_mean(self) -> torch.Tensor:
        """μ_G, the mean of the class means (the sample mean only when classes are balanced)."""
        return self.means.mean(0)

    @property
    def centred_means(self) -> torch.Tensor:
        """M̃, the class means minus the global mean, shape (K, d); its rows sum to 0."""
        means = self.means
        return means - means.mean(0)

    @property
    def within_cov(self) -> torch.Tensor:
        """Σ_W = (1/N) Σ_k Σ_i (h_ki − μ_k)(h_ki − μ_k)ᵀ, shape (d, d), float64."""
        if self._counts is None or int(self._counts.sum()) == 0:
            raise ValueError("stats holds no samples; call update() with features first")
        counts = self._counts
        offsets = self._sums / counts.clamp(min=1)[:, None]
        return (self._scatter - self._sums.T @ offsets) / counts.sum()

    @property
    def between_cov(self) -> torch.Tensor:
        """Σ_B = (1/K) Σ_k (μ_k − μ_G)(μ_k − μ_G)ᵀ, shape (d, d), float64."""
        centred = self.centred_means
        return centred.T @ centred / self.num_classes


def _gram64(x: torch.Tensor) -> torch.Tensor:
    """xᵀx in float64: float32 input on the CPU in float32 blocks summed in float64, else in float64."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or not _exact_float32_matmul():
        x = x.to(torch.float64)
        return x.T @ x
    gram = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
    for block in x.split(_GRAM_BLOCK):
        gram += (block.T @ block).to(torch.float64)
    return gram


def _exact_float32_matmul() -> bool:
    """False when float32 CPU matmuls may run in TF32 or bf16 (torch.set_float32_matmul_precision)."""
    matmul = getattr(torch.backends.mkldnn, "matmul", None)
    if hasattr(matmul, "fp32_precision"):
        return matmul.fp32_precision in ("none", "ieee")
    return torch.get_float32_matmul_precision() == "highest"
