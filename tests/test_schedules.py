"""Learning-rate schedules against closed-form values, plateau logic, state and errors."""

import math

import numpy as np
import pytest

from fastnet import optim


def lrs(sched, epochs):
    return [sched.step() for _ in range(epochs)]


def test_step_lr():
    opt = optim.SGD(lr=1.0)
    sched = optim.StepLR(opt, step_size=3, gamma=0.5)
    got = lrs(sched, 7)
    assert got == pytest.approx([1.0 * 0.5 ** (e // 3) for e in range(1, 8)])
    assert opt.lr == sched.get_last_lr() == pytest.approx(0.25)


def test_exponential_lr():
    opt = optim.Adam(lr=0.1)
    got = lrs(optim.ExponentialLR(opt, gamma=0.9), 5)
    assert got == pytest.approx([0.1 * 0.9**e for e in range(1, 6)])


def test_cosine_annealing():
    opt = optim.SGD(lr=0.5)
    sched = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    got = lrs(sched, 8)
    expected = [0.1 + 0.4 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(1, 9)]
    assert got == pytest.approx(expected)
    assert got[3] == pytest.approx(0.1)  # eta_min at T_max
    assert got[7] == pytest.approx(0.5)  # and back to the base after 2 T_max


def test_schedule_state_round_trip():
    opt = optim.SGD(lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.1)
    lrs(sched, 3)
    state = sched.state_dict()
    opt2 = optim.SGD(lr=1.0)
    resumed = optim.StepLR(opt2, step_size=2, gamma=0.1).load_state_dict(state)
    assert lrs(resumed, 4) == pytest.approx(lrs(sched, 4))


def test_plateau_min_mode():
    opt = optim.SGD(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, factor=0.5, patience=2, min_delta=0.01)
    # 1.0 best; 0.995 is not better by min_delta; three bad epochs (> patience 2) halve the lr
    seen = [sched.step(v) for v in [1.0, 0.995, 1.2, 1.1]]
    assert seen == [1.0, 1.0, 1.0, 0.5]
    # the bad count restarted: three more bad epochs for the next cut; an improvement resets it
    seen = [sched.step(v) for v in [1.0, 1.0, 0.5, 0.6, 0.6, 0.6]]
    assert seen == [0.5, 0.5, 0.5, 0.5, 0.5, 0.25]
    assert sched.best == 0.5


def test_plateau_max_mode_cooldown_and_min_lr():
    opt = optim.SGD(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, mode="max", factor=0.1, patience=0, cooldown=2, min_lr=0.05)
    seen = [sched.step(v) for v in [0.5, 0.4, 0.4, 0.4, 0.4, 0.4]]
    # patience 0: the first bad epoch cuts; then 2 cooldown epochs count nothing; then cut to min_lr
    assert seen == pytest.approx([1.0, 0.1, 0.1, 0.1, 0.05, 0.05])
    assert sched.get_last_lr() == pytest.approx(0.05)


def test_plateau_nan_is_not_an_improvement():
    opt = optim.SGD(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, patience=0)
    sched.step(1.0)
    assert sched.step(float("nan")) == pytest.approx(0.1)


def test_plateau_state_round_trip():
    opt = optim.SGD(lr=1.0)
    sched = optim.ReduceLROnPlateau(opt, patience=1, cooldown=1)
    values = [3.0, 2.0, 2.5, 2.5, 2.5, 1.0, 1.5, 1.5, 1.5]
    for v in values[:4]:
        sched.step(v)
    state = {k: np.asarray(v) for k, v in sched.state_dict().items()}
    opt2 = optim.SGD(lr=opt.lr)
    resumed = optim.ReduceLROnPlateau(opt2, patience=1, cooldown=1).load_state_dict(state)
    assert [resumed.step(v) for v in values[4:]] == [sched.step(v) for v in values[4:]]


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda o: optim.StepLR(o, 0), r"StepLR: step_size must be a positive int, got 0"),
        (lambda o: optim.StepLR(o, 2, gamma=0.0), r"StepLR: gamma must be in \(0, 1\], got 0.0"),
        (lambda o: optim.ExponentialLR(o, 1.5), r"ExponentialLR: gamma must be in \(0, 1\], got 1.5"),
        (lambda o: optim.CosineAnnealingLR(o, 2.5), r"CosineAnnealingLR: T_max must be a positive int, got 2.5"),
        (lambda o: optim.CosineAnnealingLR(o, 5, eta_min=-1), r"CosineAnnealingLR: eta_min must be in \[0, inf\)"),
        (lambda o: optim.ReduceLROnPlateau(o, mode="up"), r"ReduceLROnPlateau: mode must be 'min' or 'max', got 'up'"),
        (lambda o: optim.ReduceLROnPlateau(o, factor=1.0), r"ReduceLROnPlateau: factor must be in \(0, 1\), got 1.0"),
        (lambda o: optim.ReduceLROnPlateau(o, patience=-1), r"ReduceLROnPlateau: patience must be an int >= 0, got -1"),
        (lambda o: optim.ReduceLROnPlateau(o, cooldown=1.5), r"ReduceLROnPlateau: cooldown must be an int >= 0"),
        (lambda o: optim.StepLR("sgd", 2), r"StepLR: expected a fastnet Optimizer, got str"),
        (lambda o: optim.ReduceLROnPlateau(None), r"ReduceLROnPlateau: expected a fastnet Optimizer, got NoneType"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make(optim.SGD(lr=0.1))


def test_plateau_bad_metric():
    sched = optim.ReduceLROnPlateau(optim.SGD())
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau.step: metric must be a number, got 'low'"):
        sched.step("low")
