"""The app's queries against a real store: values are bound, never spliced into SQL."""

import duckdb
import pytest

from pages.common import queries as q
from pages.common.queries import samples

HOSTILE = ["x' OR '1'='1", "'; DROP TABLE samples; --", "\x00", "%", "_", "$run", "?"]


@pytest.fixture(scope="module")
def ref(app_store):
    return q.StoreRef.of(app_store)


@pytest.fixture(scope="module")
def run_id(ref):
    return q.runs.__wrapped__(ref)["run_id"].iloc[0]


def _count(ref, run_id, **kw) -> int:
    return q.sample_count.__wrapped__(ref, run_id, q.SampleFilter(**kw))


@pytest.mark.parametrize("value", HOSTILE)
def test_where_clause_holds_no_value(value):
    def where(v):
        return samples._where(q.SampleFilter(splits=(v,), search=v + "!", only_ids=(v,), except_ids=(v,)))

    sql, params = where(value)
    assert sql == where("plain")[0]  # the SQL text is the same whatever the values
    assert params["splits"] == [value] and params["search"] == (value + "!").strip()


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_match_literally(ref, run_id, app_store, value):
    con = duckdb.connect(str(app_store), read_only=True)
    texts = con.execute("SELECT sample_id, lower(display_text) FROM samples").fetchall()
    n = con.execute("SELECT count(*) FROM samples").fetchall()[0][0]
    con.close()
    assert _count(ref, run_id, splits=(value,)) == 0
    assert _count(ref, run_id, only_ids=(value,)) == 0
    assert _count(ref, run_id, except_ids=(value,)) == n
    if value.strip():
        assert _count(ref, run_id, search=value) == sum(value.strip().lower() in t for _, t in texts)


def test_filters_combine_as_a_user_expects(ref, run_id, app_store):
    con = duckdb.connect(str(app_store), read_only=True)
    expected = con.execute("""
        SELECT count(*) FROM samples s JOIN predictions p USING (run_id, sample_id)
        WHERE p.family = 'nblr' AND p.protocol = 'oof' AND s.split = 'test' AND s.label = 0 AND p.pred_label = 1
              AND s.rating BETWEEN 2 AND 4 AND p.loss >= 0.5""").fetchall()[0][0]
    con.close()
    f = q.SampleFilter(splits=("test",), labels=(0,), preds=(1,), rating=(2, 4), loss=(0.5, None))
    assert _count(ref, run_id, **vars(f)) == expected
    page = q.sample_page.__wrapped__(ref, run_id, f, 0, 1000)
    assert len(page) == expected and list(page["loss"]) == sorted(page["loss"], reverse=True)


def test_map_draws_flagged_reviews_first_and_samples_the_rest(ref, run_id):
    everything, total = q.map_points.__wrapped__(ref, run_id, q.SPACE, 10**9)
    assert len(everything) == total > 0
    some, _ = q.map_points.__wrapped__(ref, run_id, q.SPACE, 50)
    flagged = int(everything["is_label_issue"].sum())
    assert len(some) == 50 and 0 < flagged < total - 25
    drawn = some.loc[some["is_label_issue"], "sample_id"]
    assert len(drawn) == min(25, flagged)  # flagged and other reviews alternate
    suspects, _ = q.suspects.__wrapped__(ref, run_id, 1000)
    assert set(drawn) == set(suspects["sample_id"].iloc[:len(drawn)])  # the most suspect flagged ones
