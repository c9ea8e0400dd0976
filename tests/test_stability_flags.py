"""Feature flags: config < env < run flag, kill-switches, percentage rollouts, recording in runs."""

from __future__ import annotations

import hashlib

import pytest
from _stability import set_config
from conftest import execute_notebook, make_notebook, outputs_text

import nbtoolkit as nbtk
from nbtoolkit.config import load_settings
from nbtoolkit.errors import ConfigError, InputError
from nbtoolkit.stability import flags as F

CONFIG = """
[tool.nbtoolkit.flags]
new_ui = true
threshold = 0.4
ranker = "v1"
ranker_v2 = { rollout = 25, key = "user_id" }

[tool.nbtoolkit.flags.kill]
broken_feature = true
"""


@pytest.fixture(autouse=True)
def _fresh_flags(monkeypatch):
    for name in ("NEW_UI", "THRESHOLD", "RANKER", "RANKER_V2", "BROKEN_FEATURE", "FROM_ENV", "LIMIT"):
        monkeypatch.delenv(f"NBTOOLKIT_FLAG_{name}", raising=False)
        monkeypatch.delenv(f"NBTOOLKIT_KILL_{name}", raising=False)
    F._reset()
    yield
    F._reset()


def test_config_then_env_then_kill(project, monkeypatch):
    set_config(project, CONFIG)
    assert nbtk.flag("new_ui", False) is True
    assert nbtk.flag("threshold", 0.5) == 0.4
    assert nbtk.flag("unset_flag", "fallback") == "fallback"
    assert nbtk.flag("broken_feature", True) is False  # kill-switch in config
    monkeypatch.setenv("NBTOOLKIT_FLAG_NEW_UI", "off")
    monkeypatch.setenv("NBTOOLKIT_FLAG_THRESHOLD", "0.7")
    monkeypatch.setenv("NBTOOLKIT_FLAG_RANKER", "v3")
    assert nbtk.flag("new_ui", False) is False and nbtk.flag("threshold", 0.5) == 0.7
    assert nbtk.flag("ranker", "v0") == "v3"
    monkeypatch.setenv("NBTOOLKIT_KILL_RANKER", "1")
    assert nbtk.flag("ranker", "v0") == "v0"  # killed: a non-boolean flag falls back to the code's default
    monkeypatch.setenv("NBTOOLKIT_FLAG_LIMIT", "many")
    with pytest.raises(InputError, match="not an integer"):
        nbtk.flag("limit", 10)
    assert F.env_name("new-ui.v2") == "NBTOOLKIT_FLAG_NEW_UI_V2"
    assert F.resolve_flag("new_ui", False)[1] == "env"


def test_percentage_rollout_uses_the_canary_bucketing(project, monkeypatch):
    set_config(project, CONFIG)
    users = [f"user-{i}" for i in range(400)]
    on = [nbtk.flag("ranker_v2", False, key=u) for u in users]
    by_hand = [int(hashlib.sha256(f"nbtoolkit:{u}".encode()).hexdigest()[:8], 16) % 10000 < 2500 for u in users]
    assert on == by_hand and 0.15 < sum(on) / len(on) < 0.35
    with pytest.raises(InputError, match="25% rollout; pass the key"):
        nbtk.flag("ranker_v2", False)
    monkeypatch.setenv("NBTOOLKIT_FLAG_RANKER_V2", "50%")  # the environment can widen the rollout
    wider = [nbtk.flag("ranker_v2", False, key=u) for u in users]
    assert all(w for w, o in zip(wider, on, strict=True) if o) and sum(wider) > sum(on)
    monkeypatch.setenv("NBTOOLKIT_KILL_RANKER_V2", "true")
    assert not any(nbtk.flag("ranker_v2", False, key=u) for u in users[:50])


def test_bad_config_is_reported(project):
    set_config(project, '\n[tool.nbtoolkit.flags]\nodd = { key = "user_id" }\n')
    with pytest.raises(ConfigError, match="rollout = PCT"):
        nbtk.flag("odd", False, key="u1", settings=load_settings())


def test_flags_recorded_in_the_run_and_lock(project, store, monkeypatch):
    set_config(project, CONFIG)
    monkeypatch.setenv("NBTOOLKIT_FLAG_RANKER", "v9")
    with nbtk.start_run("flags-exp") as run:
        assert nbtk.flag("new_ui", False) is True
        assert nbtk.flag("ranker", "v0") == "v9"
        nbtk.flag("ranker_v2", False, key="user-1")
    rec = store.get_run(run.run_id)
    assert rec.extra["flags"]["new_ui"] == {"value": True, "source": "config"}
    assert rec.extra["flags"]["ranker"] == {"value": "v9", "source": "env"}
    assert rec.extra["flags"]["ranker_v2"]["value"]["rollout"] == 25
    assert rec.lock().data["env"]["NBTOOLKIT_FLAG_RANKER"] == "v9"


def test_flags_in_a_real_kernel_from_config_env_and_kill(project, store, monkeypatch):
    set_config(project, CONFIG)
    monkeypatch.setenv("NBTOOLKIT_FLAG_THRESHOLD", "0.9")  # what `nbtk run --flag threshold=0.9` passes
    monkeypatch.setenv("NBTOOLKIT_KILL_NEW_UI", "1")
    nb = make_notebook(
        project / "flags.ipynb",
        "%load_ext nbtoolkit\nimport nbtoolkit as nbtk",
        "%%experiment kernel-flags\n"
        "print('new_ui', nbtk.flag('new_ui', False))\n"
        "print('threshold', nbtk.flag('threshold', 0.5))\n"
        "print('ranker', nbtk.flag('ranker', 'v0'))\n",
    )
    text = outputs_text(execute_notebook(nb, cwd=project))
    assert "new_ui False" in text and "threshold 0.9" in text and "ranker v1" in text
    rec = store.get_run(store.latest_run("kernel-flags"))
    assert rec.extra["flags"] == {
        "new_ui": {"value": False, "source": "kill"},
        "threshold": {"value": 0.9, "source": "env"},
        "ranker": {"value": "v1", "source": "config"},
    }
    assert rec.lock().data["env"]["NBTOOLKIT_FLAG_THRESHOLD"] == "0.9"


def test_nbtk_run_flag_wins_over_env_and_config(project, store, monkeypatch):
    from conftest import nbtk_cli

    set_config(project, CONFIG)
    monkeypatch.setenv("NBTOOLKIT_FLAG_THRESHOLD", "0.9")
    nb = make_notebook(
        project / "run_flags.ipynb",
        "%load_ext nbtoolkit\nimport nbtoolkit as nbtk",
        "%%experiment run-flags\nprint('threshold', nbtk.flag('threshold', 0.5), 'new_ui', nbtk.flag('new_ui', False))\n",
    )
    out = nbtk_cli("run", str(nb), "--flag", "threshold=0.25", "--flag", "unused=1", cwd=project)
    assert out.returncode == 0, out.stderr
    rec = store.get_run(store.latest_run("run-flags"))
    assert rec.extra["flags"]["threshold"] == {"value": 0.25, "source": "env"}
    assert rec.extra["flags"]["new_ui"] == {"value": True, "source": "config"}
    assert rec.extra["flags"]["unused"] == {"value": "1", "source": "run"}  # the runner's record is kept


def test_flags_in_effect_appear_in_the_run_report(project, store, monkeypatch):
    from bs4 import BeautifulSoup

    import nbtoolkit as nbtk
    from nbtoolkit.report import render_run_report

    monkeypatch.setenv("NBTOOLKIT_FLAG_NEW_RANKER", "true")
    with nbtk.start_run("flagged") as run:
        assert nbtk.flag("new_ranker", False) is True
    page = BeautifulSoup(render_run_report(run.run_id, store=store), "html.parser")
    table = page.select_one("table.flags")
    assert table is not None
    cells = [td.get_text(strip=True) for td in table.select("td")]
    assert cells[0] == "new_ranker" and cells[1].lower() == "true" and "env" in cells[2].lower()
