"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018).

With θ̃ drawn from the prior, data y drawn from the model at θ̃ and L posterior draws θ_1..θ_L
given y, the rank r = #{l : θ_l < θ̃} is uniform on 0..L exactly when the posterior is right
(up to the dependence between draws, which thinning keeps small). Over R replications the ranks
are binned, bin b = ⌊r · B / (L + 1)⌋, and compared with their expected counts R·p_b by the
chi-square statistic Σ_b (O_b − R p_b)² / (R p_b) on B − 1 degrees of freedom.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from scipy import stats

from ..errors import SettingsError


def ranks(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """r_p = #{l : draws[l, p] < truth[p]} for draws (L, P) and truth (P,): each in 0..L."""
    return (draws < truth).sum(axis=0)


def bin_probabilities(n_draws: int, bins: int) -> np.ndarray:
    """p_b, the share of the ranks 0..L (L = ``n_draws``) that fall in bin b = ⌊r · B / (L + 1)⌋."""
    if not 2 <= bins <= n_draws + 1:
        raise SettingsError(f"bins must be between 2 and the number of possible ranks ({n_draws + 1}), got {bins}.")
    return np.bincount(np.arange(n_draws + 1) * bins // (n_draws + 1), minlength=bins) / (n_draws + 1)


def binned(rank: np.ndarray, n_draws: int, bins: int) -> np.ndarray:
    """The count O_b of ``rank`` values in each bin b = ⌊r · B / (L + 1)⌋."""
    return np.bincount(np.asarray(rank, dtype=np.int64) * bins // (n_draws + 1), minlength=bins)


def uniformity(rank: np.ndarray, n_draws: int, bins: int) -> tuple[float, int, float]:
    """The chi-square statistic of the binned ranks against uniformity, its degrees of freedom
    B − 1 and its p-value."""
    expected = len(rank) * bin_probabilities(n_draws, bins)
    statistic = float((((binned(rank, n_draws, bins) - expected) ** 2) / expected).sum())
    return statistic, bins - 1, float(stats.chi2.sf(statistic, bins - 1))


def plot_rank_histograms(rank: Mapping[str, np.ndarray], n_draws: int, bins: int, path: str | Path | None = None):
    """One histogram of the binned ranks per parameter, with the expected count R p_b and the
    band that holds each bin's count with 99% probability under uniformity (binomial);
    saved to ``path`` if given. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    names = list(rank)
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    share = bin_probabilities(n_draws, bins)
    for ax, name in zip(axes.flat, names):
        count = len(rank[name])
        low, high = stats.binom.ppf(0.005, count, share), stats.binom.ppf(0.995, count, share)
        ax.fill_between(np.arange(bins + 1) - 0.5, np.append(low, low[-1]), np.append(high, high[-1]),
                        step="post", color="0.85", label="99% band")
        ax.bar(np.arange(bins), binned(rank[name], n_draws, bins), width=0.9, color="C0")
        ax.step(np.arange(bins + 1) - 0.5, np.append(count * share, count * share[-1]), where="post", color="k", lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    figure.supxlabel(f"rank of the true value among {n_draws} posterior draws ({bins} bins)", fontsize=9)
    figure.tight_layout()
    if path is not None:
        figure.savefig(path)
    return figure
