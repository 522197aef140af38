"""Seeds trained together (bench/measure/quality/packed.py) against training them one by one: the same draws
bitwise, the same initial weights bitwise, and losses, gradients and held-out losses within stated tolerances.

Why tolerances and not equality: a grouped convolution's backward sums its weight gradient in another order
than K separate convolutions do. Measured on digits8_ch16, 3 seeds, 1 thread (maxima): step-1 loss 1.2e-7,
step-1 gradients 4e-6 of each tensor's largest |gradient|, 5-step losses 1.3e-5, held-out loss after 5 steps
3.3e-6; the tolerances below leave a margin of 5 to 8.
"""
import warnings

import pytest
import torch
from smalldiffusion import generate_train_sample

from bench.measure.quality import load_dataset, run_quality_cell, run_quality_seeds
from bench.measure.quality.packed import SeedStreams, deinterleave, initial_models, interleave, pack, unpack
from bench.measure.quality.train import make_schedule, train
from bench.plan.quality_presets import QUALITY_PRESETS

warnings.filterwarnings("ignore", message=".*batching rule.*")  # vmap's fallback for the fourier embedding
QUICK = QUALITY_PRESETS["quick"]
SEEDS = (0, 1, 2)
GRAD_RTOL, GRAD_ATOL = 2e-5, 1e-9   # per tensor, relative to its largest |gradient|; + exact zeros' noise
LOSS_ATOL_STEP1 = 1e-6
LOSS_ATOL_5 = 1e-4
HELDOUT_ATOL_5 = 2e-5
VARIANTS = {
    "base": {}, "film": {"time_injection": "film"}, "conv_transpose": {"upsample": "conv_transpose"},
    "heads4": {"attn_heads": 4}, "attn_ddpm": {"attention": "ddpm"}, "emb_ddpm": {"noise_embedding": "ddpm"},
    "emb_fourier": {"noise_embedding": "fourier"}, "updown": {"resblock_updown": True},
    "residual_join": {"residual_join": "rescaled"}, "attn_8_4": {"attn_resolutions": (8, 4)},
    # EDM2's config G: a time injection with a gain of its own, called with a parameter-free norm (Identity)
    "edm2_G": {"time_injection": "scale_gain", "attention": "cosine", "noise_embedding": "mp_fourier",
               "resblock_updown": True, "residual_join": "mp_sum", "normalization": "pixel", "layers": "mp_forced",
               "act": "mp_silu", "skip_join": "mp_cat", "block_form": "edm2", "ones_channel": True, "out_gain": True,
               "clip_act": True},
}


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits")


def test_each_seed_draws_the_serial_path_s_numbers_bitwise(data):
    for seed in SEEDS:
        streams = SeedStreams(seed, QUICK, data.train_x)
        torch.manual_seed(seed)  # what training_steps does
        batches = torch.Generator().manual_seed(seed)
        for _ in range(3):
            idx = torch.randint(len(data.train_x), (QUICK.batch_size,), generator=batches)
            x0, sigma, eps, _ = generate_train_sample(data.train_x[idx], make_schedule(QUICK))
            for packed, serial in zip(streams.draw(), (x0, sigma, eps)):
                assert torch.equal(packed, serial)


def test_interleaving_round_trips():
    x = torch.arange(3 * 4 * 2, dtype=torch.float32).reshape(3, 4, 2)
    assert torch.equal(deinterleave(interleave(x), 3), x)
    assert torch.equal(interleave(x)[:3], x[:, 0])  # row b*K + k: sample b of model k


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_step_one_losses_and_gradients_match_one_by_one(variant, data):
    spec = QUICK.base.replace(**VARIANTS[variant])
    models = initial_models(spec, SEEDS)
    wide = pack(initial_models(spec, SEEDS))
    for model, state in zip(models, unpack(wide, len(SEEDS))):  # the same initial weights, bitwise
        assert state.keys() == model.state_dict().keys()
        assert all(torch.equal(t, state[n]) for n, t in model.state_dict().items())
    draws = [SeedStreams(s, QUICK, data.train_x).draw() for s in SEEDS]
    serial = torch.stack([m.get_loss(*d) for m, d in zip(models, draws)])
    serial.sum().backward()
    x0, sigma, eps = (torch.stack([d[j] for d in draws]) for j in range(3))
    pred = deinterleave(wide(interleave(x0 + sigma * eps), interleave(sigma).reshape(-1)), len(SEEDS))
    packed = torch.stack([torch.nn.functional.mse_loss(pred[i], eps[i]) for i in range(len(SEEDS))])
    packed.sum().backward()
    torch.testing.assert_close(packed, serial, rtol=0, atol=LOSS_ATOL_STEP1)
    for p in wide.parameters():
        p.data = p.grad  # unpack the gradients as if they were weights
    for model, grads in zip(models, unpack(wide, len(SEEDS))):
        for name, p in model.named_parameters():
            assert (p.grad - grads[name]).abs().max() <= GRAD_RTOL * p.grad.abs().max() + GRAD_ATOL, name


@pytest.mark.parametrize("variant", ["base", "film", "emb_fourier", "edm2_G"])
def test_five_steps_of_the_real_training_match_one_by_one(variant, data, tmp_path):
    config = QUICK.replace(train_steps=5, eval_every=5, lr_schedule="cosine")
    spec = config.base.replace(**VARIANTS[variant])
    from bench.measure.quality.packed import train_packed

    models, curves = train_packed(spec, data, config, SEEDS, "cpu")
    for seed, model, curve in zip(SEEDS, models, curves):
        torch.manual_seed(seed)
        serial_model, serial_rows = train(initial_models(spec, (seed,))[0], data, config, seed, "cpu")
        held = [r.value for r in curve if r.metric == "heldout_loss"]
        serial_held = [r.value for r in serial_rows if r.metric == "heldout_loss"]
        assert held[0] == serial_held[0]  # step 0: the same weights, scored by the same code
        assert abs(held[-1] - serial_held[-1]) <= HELDOUT_ATOL_5
        for name, t in serial_model.state_dict().items():  # and the weights sampled from are close
            assert (t - model.state_dict()[name]).abs().max() <= 1e-2, name


def test_training_losses_of_five_steps_match_one_by_one(data):
    from bench.measure.quality.packed import packed_steps
    from bench.measure.quality.train import training_steps

    spec = QUICK.base
    wide = pack(initial_models(spec, SEEDS))
    packed = torch.stack([losses for _, losses in packed_steps(wide, data, QUICK, SEEDS, "cpu", 5)])
    for i, seed in enumerate(SEEDS):
        model = initial_models(spec, (seed,))[0]
        serial = torch.stack([loss for _, loss in training_steps(model, data, QUICK, seed, "cpu", 5)])
        torch.testing.assert_close(packed[:, i], serial, rtol=0, atol=LOSS_ATOL_5)


def test_a_cell_of_several_seeds_writes_the_rows_of_one_seed_cells(tmp_path):
    smoke = QUALITY_PRESETS["smoke"]
    together = run_quality_seeds(smoke.base, smoke, (0, 1), "cpu", tmp_path, tmp_path / "cache")
    alone = run_quality_cell(smoke.base, smoke, 1, "cpu", tmp_path, tmp_path / "cache")
    key = lambda r: (r.phase, r.metric, r.step)  # noqa: E731
    assert sorted(map(key, (r for r in together if r.seed == 1))) == sorted(map(key, alone))
    assert {r.seed for r in together} == {0, 1} and all(r.status == "ok" for r in together)
    assert (tmp_path / "samples" / f"{smoke.base.name}-seed0.png").exists()
    assert all("2 seeds trained at once" in r.method for r in together if r.metric == "wall_time")


def test_dropout_is_refused_before_any_training():
    with pytest.raises(ValueError, match="dropout=0.1: seeds trained together would share dropout masks"):
        initial_models(QUALITY_PRESETS["full"].base, SEEDS)
