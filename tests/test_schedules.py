"""Learning-rate schedules, checked against docs/method.md §5 (cosine restarts) and by hand."""

from __future__ import annotations

import math

import pytest

from pcl.errors import PCLError
from pcl.train.schedules import Schedule

# docs/method.md §5.2 and §6.1: RCAN script lr0 5e-5, eta_min 1e-8, periods [200, 200, 200], weights [1, 1, 1];
# NLSN script lr0 5e-6, eta_min 1e-9, weights [1, 0.5, 0.5]; 1000 iterations per epoch.
RCAN = Schedule.from_dict({"type": "cosine-restart", "lr": 5e-5, "eta_min": 1e-8, "periods": [200, 200, 200],
                           "weights": [1, 1, 1], "iterations_per_epoch": 1000})
NLSN = Schedule.from_dict({"type": "cosine-restart", "lr": 5e-6, "eta_min": 1e-9, "periods": [200, 200, 200],
                           "weights": [1, 0.5, 0.5], "iterations_per_epoch": 1000})


def spec_formula(t: int, lr0: float, eta: float, weights: list[float]) -> float:
    """Spec 5 written out: c = 0 for t <= 200, 1 for 200 < t <= 400, 2 for 400 < t <= 600; t_c = 200 c."""
    c = 0 if t <= 200 else (1 if t <= 400 else 2)
    return eta + weights[c] * 0.5 * (lr0 - eta) * (1 + math.cos(math.pi * (t - 200 * c) / 200))


@pytest.mark.parametrize("t", [0, 1, 50, 100, 199, 200, 201, 300, 399, 400, 401, 500, 598, 600])
def test_cosine_restart_equals_spec_formula(t: int) -> None:
    assert RCAN.lr_at_epoch(t) == pytest.approx(spec_formula(t, 5e-5, 1e-8, [1, 1, 1]), rel=1e-12, abs=0)
    assert NLSN.lr_at_epoch(t) == pytest.approx(spec_formula(t, 5e-6, 1e-9, [1, 0.5, 0.5]), rel=1e-12, abs=0)


def test_cosine_restart_reaches_eta_min_at_200_and_400() -> None:
    # Spec 5: "lr reaches eta_min at t = 200 and 400".
    for schedule, eta in ((RCAN, 1e-8), (NLSN, 1e-9)):
        assert schedule.lr_at_epoch(200) == pytest.approx(eta, rel=1e-9)
        assert schedule.lr_at_epoch(400) == pytest.approx(eta, rel=1e-9)
        assert schedule.lr_at_epoch(600) == pytest.approx(eta, rel=1e-9)


def test_cosine_restart_restarts_at_201_and_401_at_the_peak_weights() -> None:
    # Spec 5: restarts at t = 201 and 401; the new cycle starts one step below its peak:
    # eta + w (lr0 - eta) (1 + cos(pi / 200)) / 2, with w = 1, 1 (RCAN) and 0.5, 0.5 (NLSN).
    near_peak = 0.5 * (1 + math.cos(math.pi / 200))  # 0.99993831...
    for t in (201, 401):
        assert RCAN.lr_at_epoch(t) == pytest.approx(1e-8 + 1.0 * (5e-5 - 1e-8) * near_peak, rel=1e-12)
        assert NLSN.lr_at_epoch(t) == pytest.approx(1e-9 + 0.5 * (5e-6 - 1e-9) * near_peak, rel=1e-12)
        assert RCAN.lr_at_epoch(t) > 100 * RCAN.lr_at_epoch(t - 1)  # a jump, not a continuation
    # Peaks: epoch 0 is lr0 exactly (weight 1 in both scripts); the later cycles peak (at their first
    # epoch) near eta + w (lr0 - eta), within the 6e-5 relative step of cos(pi/200).
    assert RCAN.lr_at_epoch(0) == 5e-5 and NLSN.lr_at_epoch(0) == 5e-6
    assert max(NLSN.lr_at_epoch(t) for t in range(201, 401)) == pytest.approx(1e-9 + 0.5 * (5e-6 - 1e-9), rel=1e-4)
    assert max(RCAN.lr_at_epoch(t) for t in range(401, 601)) == pytest.approx(5e-5, rel=1e-4)


def test_cosine_restart_half_way_is_the_mean_of_peak_and_eta_min() -> None:
    # cos(pi/2) = 0: lr(100) = eta + (lr0 - eta)/2 (hand derivation).
    assert RCAN.lr_at_epoch(100) == pytest.approx(1e-8 + (5e-5 - 1e-8) / 2, rel=1e-12)
    assert NLSN.lr_at_epoch(300) == pytest.approx(1e-9 + 0.5 * (5e-6 - 1e-9) / 2, rel=1e-12)


def test_schedule_steps_per_epoch_of_1000_iterations() -> None:
    # Spec 0 step 6: the scheduler steps at the end of every epoch (1000 iterations).
    assert RCAN.lr_at(0) == RCAN.lr_at(999) == RCAN.lr_at_epoch(0)
    assert RCAN.lr_at(1000) == RCAN.lr_at_epoch(1) != RCAN.lr_at(999)
    assert RCAN.lr_at(200_999) == pytest.approx(1e-8, rel=1e-9)  # epoch 200: eta_min
    assert RCAN.lr_at(201_000) == RCAN.lr_at_epoch(201)  # first iteration of the restart


def test_step_and_constant_schedules() -> None:
    step = Schedule.from_dict({"type": "step", "lr": 1e-4, "step_epochs": 100, "gamma": 0.5, "iterations_per_epoch": 1000})
    # lr0 * gamma ** (t // step): 1e-4 for epochs 0-99, 5e-5 for 100-199, 2.5e-5 from 200 (hand derivation).
    assert step.lr_at(99_999) == 1e-4
    assert step.lr_at(100_000) == 5e-5
    assert step.lr_at(200_000) == 2.5e-5
    constant = Schedule.from_dict({"type": "constant", "lr": 3e-4})
    assert {constant.lr_at(i) for i in (0, 1, 10**6)} == {3e-4}


def test_periods_without_weights_default_to_one() -> None:
    schedule = Schedule.from_dict({"type": "cosine-restart", "lr": 1.0, "periods": [2, 2], "iterations_per_epoch": 1})
    assert schedule.weights == (1.0, 1.0)
    # t = 3 is one step into cycle 1 (period 2): (1 + cos(pi/2)) / 2 = 0.5.
    assert schedule.lr_at(3) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "data, key",
    [
        ({"type": "constant", "lr": -1e-4}, "lr"),
        ({"type": "constant", "lr": 0}, "lr"),
        ({"type": "cosine-restart", "lr": 1e-4, "periods": [10, 10], "weights": [1]}, "weights"),
        ({"type": "cosine-restart", "lr": 1e-4, "eta_min": 1e-3}, "eta_min"),
        ({"type": "step", "lr": 1e-4, "gamma": 2.0}, "gamma"),
        ({"type": "linear", "lr": 1e-4}, "type"),
        ({"type": "constant", "lr": 1e-4, "warmup": 5}, "warmup"),
    ],
)
def test_bad_schedules_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(PCLError, match=key):
        Schedule.from_dict(data)


def test_state_dict_is_plain_types() -> None:
    state = NLSN.state_dict()
    assert state["periods"] == [200, 200, 200] and state["weights"] == [1.0, 0.5, 0.5]
    assert Schedule.from_dict(state) == NLSN
