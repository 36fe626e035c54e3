"""Schedules: exact end points, the shape in between, serialisation, and argument checks."""

import math

import pytest

from fastsac.entropy import ConstantSchedule, CosineSchedule, ExponentialSchedule, LinearSchedule, Schedule
from fastsac.entropy.schedules import as_schedule

INTERPOLATED = [LinearSchedule, CosineSchedule, ExponentialSchedule]


@pytest.mark.parametrize("cls", INTERPOLATED)
@pytest.mark.parametrize("start,end,steps", [(-1.3, -7.9, 1000), (0.2, 0.003, 37), (5.0, 17.25, 1), (-0.1, -0.1, 9)])
def test_end_points_are_exact_and_held(cls, start, end, steps):
    s = cls(start, end, steps)
    assert s.value(0) == start
    assert s.value(steps) == end
    assert s(steps + 1) == end and s.value(10 * steps + 3) == end


@pytest.mark.parametrize("cls", INTERPOLATED)
def test_monotone_between_end_points(cls):
    for start, end in [(0.5, 0.01), (-2.0, -9.0), (1.0, 3.0)]:
        s = cls(start, end, 101)
        vals = [s.value(k) for k in range(103)]
        diffs = [b - a for a, b in zip(vals, vals[1:])]
        if end < start:
            assert all(d < 0 for d in diffs[:101]), (cls, start, end)
        else:
            assert all(d > 0 for d in diffs[:101]), (cls, start, end)
        assert diffs[101] == 0.0


def test_midpoints_against_closed_forms():
    assert LinearSchedule(-1.0, -5.0, 8).value(2) == pytest.approx(-2.0, rel=1e-15)
    assert LinearSchedule(-1.0, -5.0, 8).value(4) == pytest.approx(-3.0, rel=1e-15)
    # half-cosine: the linear midpoint at half time; a quarter of the way at a third, since (1 - cos(pi/3)) / 2 = 1/4
    assert CosineSchedule(2.0, 6.0, 10).value(5) == pytest.approx(4.0, rel=1e-15)
    assert CosineSchedule(0.0, 8.0, 30).value(10) == pytest.approx(2.0, rel=1e-14)
    # geometric: the midpoint is the geometric mean, and the ratio per step is constant
    e = ExponentialSchedule(0.2, 0.0125, 4)
    assert e.value(2) == pytest.approx(math.sqrt(0.2 * 0.0125), rel=1e-14)
    ratios = [e.value(k + 1) / e.value(k) for k in range(4)]
    assert all(r == pytest.approx(0.5, rel=1e-14) for r in ratios)
    neg = ExponentialSchedule(-1.0, -16.0, 4)
    assert [neg.value(k) for k in range(5)] == pytest.approx([-1.0, -2.0, -4.0, -8.0, -16.0], rel=1e-14)


def test_constant():
    c = ConstantSchedule(-3.5)
    assert c.value(0) == c.value(10**9) == -3.5
    assert c.start == c.end == -3.5 and c.steps == 0
    assert as_schedule(2) == ConstantSchedule(2.0)
    lin = LinearSchedule(0.0, 1.0, 3)
    assert as_schedule(lin) is lin


@pytest.mark.parametrize("sched", [ConstantSchedule(1.5), LinearSchedule(1.0, -2.0, 7), CosineSchedule(0.3, 0.1, 50),
                                   ExponentialSchedule(-0.5, -4.0, 12)])
def test_to_dict_round_trip(sched):
    spec = sched.to_dict()
    assert all(isinstance(v, (str, int, float)) for v in spec.values())
    back = Schedule.from_dict(spec)
    assert back == sched and type(back) is type(sched)
    assert [back.value(k) for k in range(60)] == [sched.value(k) for k in range(60)]
    assert repr(back) == repr(sched)


def test_from_dict_rejects_unknown():
    with pytest.raises(ValueError, match="unknown schedule type 'Nope'"):
        Schedule.from_dict({"type": "Nope", "start": 1.0})
    with pytest.raises(TypeError, match="'type' key"):
        Schedule.from_dict({"start": 1.0})


@pytest.mark.parametrize("cls", INTERPOLATED)
def test_bad_arguments(cls):
    with pytest.raises(ValueError, match="steps must be >= 1"):
        cls(1.0, 2.0, 0)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        cls(1.0, 2.0, -5)
    with pytest.raises(TypeError, match="steps must be an int"):
        cls(1.0, 2.0, 10.0)
    with pytest.raises(TypeError, match="steps must be an int"):
        cls(1.0, 2.0, True)
    with pytest.raises(ValueError, match="start must be finite"):
        cls(math.nan, 2.0, 10)
    with pytest.raises(ValueError, match="end must be finite"):
        cls(1.0, math.inf, 10)
    with pytest.raises(TypeError, match="start must be a real number"):
        cls("1", 2.0, 10)
    s = cls(1.0, 2.0, 10)
    with pytest.raises(ValueError, match="step must be >= 0"):
        s.value(-1)
    with pytest.raises(TypeError, match="step must be an int"):
        s.value(1.5)


def test_exponential_cannot_cross_or_touch_zero():
    for start, end in [(1.0, -1.0), (0.0, 1.0), (1.0, 0.0), (-2.0, 3.0)]:
        with pytest.raises(ValueError, match="nonzero and of the same sign"):
            ExponentialSchedule(start, end, 10)


def test_constant_bad_arguments():
    with pytest.raises(ValueError, match="finite"):
        ConstantSchedule(math.nan)
    with pytest.raises(TypeError, match="real number"):
        ConstantSchedule(None)
    with pytest.raises(TypeError, match="real number or a fastsac.entropy schedule"):
        as_schedule("fast")
