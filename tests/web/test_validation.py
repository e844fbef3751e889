"""The request checks and the metrics text, as pure functions (the HTTP paths are in test_api)."""
from __future__ import annotations

import pytest

from web.metrics import render
from web.server import bearer_ok
from web.validation import BadRequest, parse_adjustment, parse_limit


@pytest.mark.parametrize("raw, expected", [(None, 50), ("", 50), ("1", 1), ("1000", 1000)])
def test_limit_accepts_whole_numbers_in_range(raw, expected):
    assert parse_limit(raw, 50, 1000) == expected


@pytest.mark.parametrize("raw, words", [("abc", "not a whole number"), ("1.5", "not a whole number"),
                                        ("0", "between 1 and 1000"), ("-3", "between 1 and 1000"),
                                        ("1001", "between 1 and 1000")])
def test_limit_refuses_garbage_naming_it(raw, words):
    with pytest.raises(BadRequest, match=words) as info:
        parse_limit(raw, 50, 1000)
    assert "limit=" in str(info.value)


def test_adjustment_keeps_the_side_not_given():
    assert parse_adjustment({"grid_upper_price": 165}, 140, 160, 150) == (None, 165.0)
    assert parse_adjustment({"grid_lower_price": 135.5, "grid_upper_price": 170}, 140, 160, 150) == (135.5, 170.0)


@pytest.mark.parametrize("body, words", [
    ([140, 160], "JSON object"),
    ({}, "give grid_lower_price"),
    ({"grid_num": 5}, "unknown field"),
    ({"grid_lower_price": "140"}, "must be a number"),
    ({"grid_lower_price": True}, "must be a number"),
    ({"grid_lower_price": -1}, "positive"),
    ({"grid_lower_price": 0}, "positive"),
    ({"grid_upper_price": 1e12}, "sanity bound"),
    ({"grid_lower_price": 160, "grid_upper_price": 150}, "must be below"),
    ({"grid_lower_price": 165}, "must be below grid_upper_price=160"),
    ({"grid_lower_price": 1, "grid_upper_price": 160}, "absurd"),
    ({"grid_upper_price": 5000}, "absurd"),
])
def test_adjustment_refuses_bad_bodies_with_the_rule(body, words):
    with pytest.raises(BadRequest, match=words):
        parse_adjustment(body, 140, 160, 150)


def test_bearer_compare():
    assert bearer_ok("Bearer s3cret", "s3cret")
    assert bearer_ok("bearer s3cret", "s3cret")
    assert not bearer_ok(None, "s3cret")
    assert not bearer_ok("Bearer wrong", "s3cret")
    assert not bearer_ok("Basic s3cret", "s3cret")
    assert not bearer_ok("Bearer ", "s3cret")


def test_metrics_text_skips_unknown_values_and_escapes_labels():
    text = render({"instance_id": 'a"b', "symbol": "SOL", "price": 150.5, "position": {"qty": -1.5},
                   "equity": None}, loop_age=0.25, restarts=2)
    assert 'gridbot_price{instance="a\\"b",symbol="SOL"} 150.5\n' in text
    assert "gridbot_position{" in text and "} -1.5\n" in text
    assert "gridbot_equity" not in text
    assert "gridbot_restarts_total" in text and "gridbot_seconds_since_last_loop" in text
    assert "# TYPE gridbot_fills_total counter" not in text  # no fill_count given
    assert render({}, loop_age=float("inf"), restarts=None).count("gridbot_restarts_total") == 0
