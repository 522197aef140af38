"""The runner's entry points on the smoke preset: rows, determinism, learning, floor, PNGs, checkpoint check,
config validation and the optional Inception FID's failure offline."""
import importlib.util
import urllib.error

import pytest
import torch
from PIL import Image

from bench.measure.quality import (
    InceptionUnavailable,
    checkpoint_equivalence,
    load_dataset,
    real_floor,
    require_inception,
    run_quality_cell,
)
from bench.measure.quality.features import load_or_train_classifier
from bench.measure.quality.scoring import score
from bench.measure.quality.train import generate
from bench.plan.designs import grid
from bench.plan.quality_presets import QUALITY_PRESETS, QualityConfig
from variants import build, default_grid

SMOKE = QUALITY_PRESETS["smoke"]
SAMPLE_METRICS = {"fd", "kid", "kid_std", "precision", "recall", "swd", "copy_rate", "class_kl"}
TIMES = {"wall_time", "sampling_time"}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _cell(spec, seed, out_dir, cache_dir, config=SMOKE):
    return run_quality_cell(spec, config, seed, "cpu", out_dir, cache_dir)


def test_cell_rows_learning_curve_and_png(tmp_path, cache_dir):
    spec = SMOKE.base.replace(upsample="conv_transpose", time_injection="film")
    rows = _cell(spec, 3, tmp_path, cache_dir)
    assert all(r.seed == 3 and r.method and r.unit and r.status == "ok" for r in rows)
    curve_steps = [0, *SMOKE.checkpoints]
    assert curve_steps == [0, 7, 14, 20]  # every eval_every steps, and the last
    losses = [r for r in rows if r.metric == "heldout_loss"]
    assert [r.step for r in losses] == curve_steps
    assert all(r.phase == "train" and r.unit == "mse" and r.n == SMOKE.loss_eval_n * SMOKE.sigma_grid for r in losses)
    walls = [r for r in rows if r.metric == "wall_time"]
    assert [r.step for r in walls] == curve_steps and walls[0].value == 0 and walls[-1].value > 0
    sampled = {r.metric: r for r in rows if r.phase == "sample"}
    assert set(sampled) == SAMPLE_METRICS | {"sampling_time"}
    assert all(r.n == SMOKE.eval_n and r.step == SMOKE.train_steps for r in sampled.values())
    along = [r for r in rows if r.phase == "along_training"]  # the same scores at every earlier checkpoint
    assert {(r.step, r.metric) for r in along} == {(step, m) for step in (7, 14) for m in sampled}
    assert {r.message for r in along if r.metric == "fd"} == {f"reference: held-out images 0 to {SMOKE.eval_n - 1}"}
    assert {sampled[m].unit for m in ("precision", "recall", "copy_rate")} == {"ratio"}
    assert all(0 <= sampled[m].value <= 1 for m in ("precision", "recall", "copy_rate"))
    png = tmp_path / "samples" / f"{spec.name}-seed3.png"
    with Image.open(png) as image:  # 16 images of 8x8, upscaled 4x to 32x32, 8 per row, 4 px padding
        assert image.size == (8 * 32 + 9 * 4, 2 * 32 + 3 * 4)


def test_same_seed_same_numbers_on_cpu(tmp_path, cache_dir):
    def values(seed):
        return [(r.metric, r.step, r.value) for r in _cell(SMOKE.base, seed, tmp_path, cache_dir)
                if r.metric not in TIMES]

    first = values(0)
    assert values(0) == first
    assert values(1) != first


def test_briefly_trained_model_beats_untrained_on_digits(tmp_path, cache_dir):
    config = SMOKE.replace(train_steps=200, eval_every=100)
    rows = _cell(config.base, 0, tmp_path, cache_dir, config)
    losses = [r.value for r in rows if r.metric == "heldout_loss"]
    assert losses[-1] < 0.7 * losses[0]
    trained = {r.metric: r.value for r in rows if r.phase == "sample"}

    data = load_dataset("digits")
    torch.manual_seed(0)
    images = generate(build(config.base), config, config.eval_n, 0, "cpu").clamp(-1, 1)
    classifier = load_or_train_classifier(data, config.classifier_seed, config.classifier_epochs, cache_dir)
    untrained = {r.metric: r.value for r in score(images, data.heldout_x[: config.eval_n], data, classifier, config, 0)}
    for metric in ("fd", "kid", "swd", "class_kl"):
        assert trained[metric] < untrained[metric], metric
    assert trained["precision"] > untrained["precision"]


def test_real_floor_uses_the_same_metrics_and_writes_a_grid(tmp_path, cache_dir):
    rows = real_floor(SMOKE, 0, tmp_path, cache_dir)
    sampled = {r.metric: r for r in rows if r.phase == "sample"}
    assert set(sampled) == SAMPLE_METRICS and all(r.n == SMOKE.eval_n for r in sampled.values())
    [accuracy] = [r for r in rows if r.metric == "accuracy"]
    assert accuracy.phase == "classifier" and accuracy.n == 500 and 0.1 < accuracy.value <= 1
    assert (tmp_path / "samples" / "real-seed0.png").exists()
    # a different seed draws different halves of the held-out split
    other = {r.metric: r.value for r in real_floor(SMOKE, 1, tmp_path, cache_dir) if r.phase == "sample"}
    assert other["fd"] != sampled["fd"].value


def test_classifier_is_cached_and_reloaded(cache_dir):
    data = load_dataset("digits")
    first = load_or_train_classifier(data, 0, SMOKE.classifier_epochs, cache_dir)
    files = list((cache_dir / "classifiers").glob("*.pt"))
    assert len(files) == 1 and "digits" in files[0].name and "seed0" in files[0].name and "cnn-v" in files[0].name
    again = load_or_train_classifier(data, 0, SMOKE.classifier_epochs, cache_dir)
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpointing_trains_the_same_function():
    spec = SMOKE.base.replace(dropout=0.1)  # dropout: checkpointing must replay the same random masks
    rows = {r.metric: r for r in checkpoint_equivalence(spec, SMOKE, seed=0)}
    assert set(rows) == {"max_abs_loss_diff", "max_abs_weight_diff"}
    assert all(r.phase == "checkpoint_check" and r.n == SMOKE.checkpoint_check_steps for r in rows.values())
    assert rows["max_abs_loss_diff"].value <= 1e-5
    assert rows["max_abs_weight_diff"].value <= 1e-5


def test_every_functional_variant_builds_for_the_quality_presets():
    for name in ("smoke", "quick"):
        base = QUALITY_PRESETS[name].base
        specs = list(grid(base, **(default_grid() | {"checkpoint": (False,)})))
        assert len(specs) == 8 and all(build(s).input_dims == (1, 8, 8) for s in specs)


# --- configuration -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, message", [
    ({"dataset": "svhn"}, "dataset='svhn' is invalid"),
    ({"lr": 0}, "lr=0 is invalid"),
    ({"train_steps": 0}, "train_steps=0 is invalid"),
    ({"lr_schedule": "step"}, "lr_schedule='step' is invalid; valid: constant, cosine"),
    ({"eval_n": 300}, "eval_n=300 is too large for dataset='digits'.*eval_n <= 250"),
    ({"kid_subset_size": 300}, "kid_subset_size=300 is invalid; valid: at most eval_n=250"),
    ({"ema_decay": 1.0}, r"ema_decay=1.0 is invalid"),
    ({"sigma_min": 5.0, "sigma_max": 1.0}, "sigma_min=5.0, sigma_max=1.0 are invalid"),
    ({"dataset": "mnist5k"}, r"base has in_ch, in_dim, in_dim = \(1, 8, 8\).*\(1, 28, 28\)"),
    ({"inception_fid": True}, "inception_fid=True is invalid for dataset='digits'"),
])
def test_bad_config_fails_naming_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        QUALITY_PRESETS["quick"].replace(**changes)


def test_presets_and_dict_round_trip():
    assert set(QUALITY_PRESETS) == {"smoke", "quick", "quick_ch32", "full", "gpu", "fashion_mnist_fid", "cifar10_fid"}
    assert all(QUALITY_PRESETS[name].inception_fid for name in ("fashion_mnist_fid", "cifar10_fid"))
    for config in QUALITY_PRESETS.values():
        assert QualityConfig(**config.to_dict()) == config


def test_cell_rejects_a_spec_of_the_wrong_shape(tmp_path, cache_dir):
    with pytest.raises(ValueError, match="spec has in_ch=1, in_dim=16"):
        _cell(SMOKE.base.replace(in_dim=16), 0, tmp_path, cache_dir)


# --- optional Inception FID --------------------------------------------------------------------------------

def _pretend_torch_fidelity(monkeypatch, installed: bool):
    real_find_spec = importlib.util.find_spec
    fake = object() if installed else None
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: fake if name == "torch_fidelity" else real_find_spec(name, *a))


def test_inception_fid_without_torch_fidelity_fails_before_training(monkeypatch, tmp_path, cache_dir):
    _pretend_torch_fidelity(monkeypatch, installed=False)
    with pytest.raises(InceptionUnavailable, match="pip install torch-fidelity"):
        require_inception()
    config = QUALITY_PRESETS["full"].replace(dataset="fashion_mnist", inception_fid=True)
    monkeypatch.setattr("bench.measure.quality.cells.train", lambda *a: pytest.fail("trained before checking Inception"))
    with pytest.raises(InceptionUnavailable):
        run_quality_cell(config.base, config, 0, "cpu", tmp_path, cache_dir)


def test_inception_fid_offline_names_the_weights_to_download(monkeypatch):
    import torchmetrics.image.fid

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    _pretend_torch_fidelity(monkeypatch, installed=True)
    monkeypatch.setattr(torchmetrics.image.fid, "FrechetInceptionDistance", offline)
    with pytest.raises(InceptionUnavailable, match="weights-inception-2015-12-05-6726825d.pth.*internet"):
        require_inception()
