from datetime import datetime, timedelta, timezone

import pytest

from mesh_core import PortVersion, ProductRef, Retention

NOW = datetime(2026, 11, 25, 12, tzinfo=timezone.utc)


def history(*ages_hours):
    """Versions 0..n-1 committed `age` hours before NOW (negative: after a clock step back), newest first."""
    return [
        PortVersion(ProductRef("sales", "orders"), version, "run", "1.0.0", "", "public", 1, ("n",), {},
                    NOW - timedelta(hours=age))
        for version, age in enumerate(ages_hours)
    ][::-1]


def test_the_newest_versions_are_kept_by_count_whatever_their_age():
    assert Retention(keep_versions=2, keep_hours=0).versions_to_keep(history(900, 800, 700, 600), now=NOW) == {2, 3}


def test_young_versions_are_kept_by_age():
    assert Retention(keep_versions=2, keep_hours=24).versions_to_keep(history(90, 30, 10, 2, 1), now=NOW) == {2, 3, 4}


def test_commits_from_the_future_after_a_clock_step_back_count_as_young():
    # The writer's clock was 2 days ahead for versions 1 and 2; order is by version, never by time.
    assert Retention(keep_versions=2, keep_hours=1).versions_to_keep(history(100, -48, -47, 5, 6), now=NOW) == {1, 2, 3, 4}


def test_versions_in_use_are_kept_and_unknown_ones_ignored():
    kept = Retention(keep_versions=2, keep_hours=0).versions_to_keep(history(9, 8, 7, 6), now=NOW, in_use=[0, 42])
    assert kept == {0, 2, 3}


@pytest.mark.parametrize("kwargs, match", [({"keep_versions": 1}, "keep_versions must be a whole number >= 2"),
                                           ({"keep_hours": -1}, "keep_hours must be >= 0")])
def test_a_policy_that_could_delete_a_version_a_new_run_pinned_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Retention(**kwargs)
