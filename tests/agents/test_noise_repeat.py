"""fastsac.agents.noise_repeat: the truncated Zeta table and the inverse-CDF draw of repeat lengths."""

from __future__ import annotations

import pytest
import torch

from fastsac.agents.noise_repeat import sample_repeat, zeta_cdf, zeta_pmf


def test_zeta_table_against_its_definition():
    mu, max_n = 2.0, 16
    weights = [k**-mu for k in range(1, max_n + 1)]
    want = torch.tensor(weights, dtype=torch.float64) / sum(weights)
    torch.testing.assert_close(zeta_pmf(mu, max_n), want, rtol=1e-15, atol=0.0)
    cdf = zeta_cdf(mu, max_n)
    assert cdf.dtype == torch.float64 and cdf.device.type == "cpu" and cdf.shape == (max_n,)
    torch.testing.assert_close(cdf, torch.cumsum(want, 0), rtol=1e-15, atol=1e-15)
    assert cdf[-1].item() == 1.0 and bool((cdf[1:] > cdf[:-1]).all())
    assert cdf[0].item() == pytest.approx(1 / sum(weights))  # P(1) = 1 / H(16, 2), about 0.62
    with pytest.raises(ValueError, match="max_n >= 1"):
        zeta_cdf(2.0, 0)


def test_sample_repeat_bounds_and_edges():
    cdf = zeta_cdf(2.0, 16)
    edges = torch.tensor([0.0, cdf[0].item() - 1e-12, cdf[0].item(), cdf[-2].item(), 1.0 - 1e-12, 1.0, 1.5],
                         dtype=torch.float64)
    got = sample_repeat(cdf, edges)
    assert got.dtype == torch.int64
    assert got.tolist() == [1, 1, 2, 16, 16, 16, 16]
    u = torch.rand(1000, generator=torch.Generator().manual_seed(0))  # float32 uniforms, as the learner's
    k = sample_repeat(cdf, u)
    assert k.shape == u.shape and int(k.min()) >= 1 and int(k.max()) <= 16
    assert sample_repeat(zeta_cdf(2.0, 1), u).eq(1).all()  # one length only
    with pytest.raises(ValueError, match="1-D"):
        sample_repeat(cdf[None], u)


@pytest.mark.parametrize(("mu", "max_n"), [(2.0, 16), (1.5, 5)])
def test_sample_repeat_frequencies_match_the_pmf(mu, max_n):
    """200k draws with a fixed seed: Pearson's chi-square against the pmf stays below the 0.999 quantile of
    chi-square with max_n - 1 degrees of freedom (37.7 for 15, 18.5 for 4); each frequency within 5 standard
    errors of its probability."""
    n = 200_000
    pmf = zeta_pmf(mu, max_n)
    u = torch.rand(n, generator=torch.Generator().manual_seed(123), dtype=torch.float64)
    counts = torch.bincount(sample_repeat(zeta_cdf(mu, max_n), u) - 1, minlength=max_n).double()
    expected = n * pmf
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < {15: 37.7, 4: 18.5}[max_n - 1]
    stderr = torch.sqrt(pmf * (1 - pmf) / n)
    assert bool(((counts / n - pmf).abs() <= 5 * stderr).all())


def test_sample_repeat_traces_into_a_compiled_graph():
    cdf = zeta_cdf(2.0, 16)
    u = torch.rand(64, generator=torch.Generator().manual_seed(1))
    compiled = torch.compile(sample_repeat, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(cdf, u), sample_repeat(cdf, u))
