"""What the Elle checker writes for a huge failing history stays small enough to open."""
from __future__ import annotations

import pytest

from checkers.elle import check
from checkers.elle.checker import DRAWINGS_PER_TYPE
from testkit.txn_stores import simulate

FILE_LIMIT = 5 * 1024 * 1024


@pytest.mark.slow
def test_the_artefacts_of_a_100000_txn_failing_history_stay_small(tmp_path):
    history = simulate("serializable", 100_000, seed=5, stale_rate=0.002)
    result = check(history, "list-append", consistency_models=["strict-serializable"],
                   out_dir=str(tmp_path))
    assert result["valid"] is False
    folder = tmp_path / "elle"
    drawn_kinds = [kind for kind in result["anomaly-types"] if (folder / kind).is_dir()]
    assert drawn_kinds
    many = False
    for kind in drawn_kinds:
        drawn = list((folder / kind).glob("*.dot"))
        assert 0 < len(drawn) <= DRAWINGS_PER_TYPE
        found = len(result["anomalies"][kind])
        assert len(drawn) == min(found, DRAWINGS_PER_TYPE)
        many |= found > DRAWINGS_PER_TYPE
        # Every cycle is still told in words.
        assert (folder / f"{kind}.txt").read_text().count(f"{kind} #") >= found
    assert many, "no anomaly type had more cycles than are drawn: the bound went untested"
    for path in folder.rglob("*"):
        if path.is_file():
            assert path.stat().st_size < FILE_LIMIT, f"{path} is {path.stat().st_size} bytes"
