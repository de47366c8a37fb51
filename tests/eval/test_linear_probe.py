import pytest
import torch

from equissl.errors import UserError
from equissl.eval import linear_probe
from equissl.eval.linear import fit_linear_heads, standardise


def blobs(n: int, dim: int, num_classes: int, spread: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=gen) * 5
    y = torch.randint(0, num_classes, (n,), generator=gen)
    return centres[y] + spread * torch.randn(n, dim, generator=gen), y


def test_separable_blobs_reach_full_accuracy():
    x, y = blobs(600, 16, 4, 0.5, seed=0)
    out = linear_probe(x[:400], y[:400], x[400:], y[400:], num_classes=4, epochs=20, batch_size=64)
    assert out["acc_mean"] == 100.0
    assert out["train_acc_mean"] == 100.0
    assert out["acc_std"] == 0.0
    assert len(out["accs"]) == 3
    assert out["seconds"] > 0


def test_random_labels_give_chance_on_test():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3000, 32, generator=gen)
    y = torch.randint(0, 10, (3000,), generator=gen)
    out = linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], num_classes=10, seeds=2, epochs=10)
    assert abs(out["acc_mean"] - 10.0) < 3.5
    assert len(out["accs"]) == 2


def test_reproducible_and_seeds_differ():
    x, y = blobs(300, 8, 3, 6.0, seed=2)  # overlapping blobs: accuracies depend on the seed
    kwargs = dict(num_classes=3, seeds=3, epochs=5, batch_size=32)
    first = linear_probe(x[:200], y[:200], x[200:], y[200:], **kwargs)
    second = linear_probe(x[:200], y[:200], x[200:], y[200:], **kwargs)
    for key in ("acc_mean", "acc_std", "accs", "train_acc_mean"):
        assert first[key] == second[key]
    weights, _ = fit_linear_heads(*standardise(x)[:1], y, num_classes=3, seeds=[0, 1], epochs=2)
    assert not torch.equal(weights[0], weights[1])


def test_batched_seeds_equal_each_seed_alone():
    x, y = blobs(250, 12, 5, 4.0, seed=3)
    (x,) = standardise(x)
    kwargs = dict(num_classes=5, epochs=3, batch_size=40)  # 250 = 6 * 40 + a partial batch
    weights, biases = fit_linear_heads(x, y, seeds=[0, 1, 2], **kwargs)
    assert weights.shape == (3, 12, 5) and biases.shape == (3, 5)
    alone_w, alone_b = fit_linear_heads(x, y, seeds=[1], **kwargs)
    torch.testing.assert_close(weights[1], alone_w[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(biases[1], alone_b[0], atol=1e-5, rtol=0)
    batched = linear_probe(x, y, x, y, seeds=3, **kwargs)
    single = linear_probe(x, y, x, y, seeds=1, seed=2, **kwargs)
    assert batched["accs"][2] == single["accs"][0]
    assert single["acc_std"] == 0.0


def test_chunking_the_batch_does_not_change_the_result():
    x, y = blobs(250, 12, 5, 4.0, seed=5)
    kwargs = dict(num_classes=5, epochs=2, batch_size=40)
    whole_w, whole_b = fit_linear_heads(x, y, seeds=[0, 1], chunk_rows=40, **kwargs)
    chunked_w, chunked_b = fit_linear_heads(x, y, seeds=[0, 1], chunk_rows=16, **kwargs)
    torch.testing.assert_close(chunked_w, whole_w, atol=1e-5, rtol=0)
    torch.testing.assert_close(chunked_b, whole_b, atol=1e-5, rtol=0)
    alone_w, _ = fit_linear_heads(x, y, seeds=[1], chunk_rows=16, **kwargs)
    torch.testing.assert_close(chunked_w[1], alone_w[0], atol=1e-5, rtol=0)


def test_bad_inputs_raise_user_error():
    x, y = blobs(20, 4, 2, 1.0, seed=4)
    with pytest.raises(UserError):
        linear_probe(x, y, x[:, :3], y, num_classes=2)
    with pytest.raises(UserError):
        linear_probe(x, y + 5, x, y, num_classes=2)
    with pytest.raises(UserError):
        linear_probe(x, y[:10], x, y, num_classes=2)
    with pytest.raises(UserError):
        linear_probe(x, y, x, y, num_classes=2, seeds=0)


def test_lbfgs_reaches_the_regularised_optimum():
    from equissl.eval.linear import fit_linear_lbfgs

    x, y = blobs(800, 12, 4, 6.0, seed=5)  # overlapping: a finite optimum
    x = standardise(x)[0]
    w, b = fit_linear_lbfgs(x, y, num_classes=4, weight_decay=1e-3)
    assert w.shape == (1, 12, 4) and b.shape == (1, 4)
    # first-order optimality of CE + wd/2 |W|^2, gradient written out: X^T (softmax - onehot)/N
    p = torch.softmax(x @ w[0] + b[0], 1)
    p[torch.arange(800), y] -= 1
    grad_w = x.T @ p / 800 + 1e-3 * w[0]
    assert grad_w.abs().max() < 1e-4 and (p.sum(0) / 800).abs().max() < 1e-4


def test_lbfgs_agrees_with_the_minibatch_probe_and_returns_heads():
    x, y = blobs(3000, 16, 5, 5.0, seed=6)
    kw = dict(num_classes=5, weight_decay=1e-5)
    fast = linear_probe(x[:2000], y[:2000], x[2000:], y[2000:], solver="lbfgs", **kw)
    slow = linear_probe(x[:2000], y[:2000], x[2000:], y[2000:], epochs=60, batch_size=128, **kw)
    assert abs(fast["acc_mean"] - slow["acc_mean"]) < 1.0
    assert len(fast["accs"]) == 1 and fast["acc_std"] == 0.0
    out = linear_probe(x[:2000], y[:2000], x[2000:], y[2000:], return_heads=True, epochs=5, **kw)
    logits = out["heads"](x[2000:])  # raw features in, standardised inside
    assert logits.shape == (3, 1000, 5)
    accs = (logits.argmax(-1) == y[2000:]).double().mean(1) * 100
    assert accs.tolist() == pytest.approx(out["accs"])
    with pytest.raises(UserError, match="unknown linear probe solver 'sgd'"):
        linear_probe(x[:20], y[:20], x[20:40], y[20:40], num_classes=5, solver="sgd")
