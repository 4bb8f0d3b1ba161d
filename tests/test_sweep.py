"""Tests for memprior.sweep: a Dask run equals a serial run, resume after an interruption, bad arguments."""
import json

import numpy as np
import pytest

from memprior import sweep
from memprior.sweep import PRESETS, Task, run_sweep, tasks

TINY = PRESETS["tiny"]


def results(path):
    return json.loads((path / "results.json").read_text())


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    run_sweep(TINY, out, workers=0, quiet=True)
    return out


def test_tasks_cover_the_grid_with_their_own_seeds():
    ts = tasks(TINY)
    pool = [t for t in ts if t.kind == "pool"]
    dps = [t for t in ts if t.kind == "dps"]
    assert pool[0].index == (0, TINY.pool_chunk) and pool[-1].index[1] == max(TINY.sizes)
    n_chunks = -(-TINY.samples // TINY.chunk)
    assert len(dps) == len(TINY.methods) * len(TINY.sizes) * len(TINY.truths) * len(TINY.seeds) * n_chunks
    assert sum(t.n for t in dps) == TINY.samples * len(dps) // n_chunks
    assert len({t.id for t in ts}) == len(ts) and len({t.seed for t in dps}) == len(TINY.seeds) * n_chunks


def test_serial_sweep_writes_results_and_arrays(serial):
    res = results(serial)
    assert res["preset"] == "tiny" and res["timing"]["computed"] == len(tasks(TINY))
    rows = {(r["method"], r["N"], r["truth"]): r for r in res["results"]}
    assert set(rows) == {(m, N, t) for m in TINY.methods for N in TINY.sizes for t in TINY.truths}
    n = TINY.samples * len(TINY.seeds)
    for (method, N, truth), r in rows.items():
        assert r["n_samples"] == n and 0 <= r["lookup_best"] < N and 0 < r["lookup_best_weight"] <= 1
        arr = np.load(serial / f"samples_{method}_N{N}_{truth}.npz")
        assert arr["u"].shape == (n, TINY.fwi_config().d)
        assert r["on_best"] == pytest.approx(float(np.mean(arr["nearest"] == r["lookup_best"])))
        assert np.all((arr["nearest"] >= 0) & (arr["nearest"] < N))
    # the lookup computed from the pool tasks equals the experiment's own lookup
    exp = sweep._experiment(TINY)
    for (method, N, truth), r in rows.items():
        lk = exp.lookup(N, exp.observation(truth))
        assert r["lookup_best"] == lk.best and r["lookup_best_weight"] == pytest.approx(float(lk.weights[lk.best]))


def test_dask_run_equals_serial_run(serial, tmp_path):
    pytest.importorskip("dask.distributed")
    res = run_sweep(TINY, tmp_path / "dask", workers=2, quiet=True)
    assert res["timing"]["processes_used"] == 2  # the tasks really ran in two worker processes
    assert res["results"] == results(serial)["results"]
    for f in sorted(serial.glob("samples_*.npz")):
        a, b = np.load(f), np.load(tmp_path / "dask" / f.name)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])


def test_command_line_run_on_a_worker_builds_the_experiment_once(serial, tmp_path):
    """``python -m memprior.sweep`` must hand Dask the importable module's functions: run as ``__main__``,
    cloudpickle ships them by value with fresh globals, and every task rebuilt its experiment (and the
    worker's memory grew by one experiment per task)."""
    pytest.importorskip("dask.distributed")
    import os
    import subprocess
    import sys
    out = tmp_path / "cli"
    env = dict(os.environ, MEMPRIOR_QUIET="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "memprior.sweep", "--preset", "tiny", "--out", str(out), "--workers", "1",
                    "--quiet"], check=True, env=env, capture_output=True, timeout=600)
    files = sorted((out / "tasks").glob("*.npz"))
    assert len(files) == len(tasks(TINY))
    built = [bool(np.load(f)["built_experiment"]) for f in files]
    assert sum(built) == 1, f"{sum(built)} of {len(built)} tasks built the experiment on one worker"
    assert results(out)["results"] == results(serial)["results"]


def test_sweep_resumes_after_an_interruption(serial, tmp_path, monkeypatch):
    out = tmp_path / "resume"
    part = run_sweep(TINY, out, workers=0, limit=4, quiet=True)  # stopped after 4 tasks
    assert part["complete"] is False and part["timing"]["computed"] == 4
    assert not (out / "results.json").exists()
    first = {p.name: p.stat().st_mtime_ns for p in (out / "tasks").glob("*.npz")}
    assert len(first) == 4
    # a task that fails interrupts the sweep; the finished tasks stay
    calls = []
    real = sweep.run_task

    def failing(preset, task):
        calls.append(task.id)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return real(preset, task)

    monkeypatch.setattr(sweep, "run_task", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_sweep(TINY, out, workers=0, quiet=True)
    assert len(calls) == 3 and not set(calls) & set(n[:-4] for n in first)  # finished tasks were not rerun
    done = {p.name for p in (out / "tasks").glob("*.npz")}
    assert len(done) == 6
    calls.clear()
    monkeypatch.setattr(sweep, "run_task", lambda p, t: (calls.append(t.id), real(p, t))[1])
    res = run_sweep(TINY, out, workers=0, quiet=True)
    assert res["timing"]["skipped"] == 6 and res["timing"]["computed"] == len(tasks(TINY)) - 6 == len(calls)
    assert not set(calls) & {n[:-4] for n in done}
    for name, t in first.items():  # the files of the first run were not rewritten
        assert (out / "tasks" / name).stat().st_mtime_ns == t
    assert res["results"] == results(serial)["results"]
    # a complete sweep reruns nothing
    calls.clear()
    again = run_sweep(TINY, out, workers=0, quiet=True)
    assert calls == [] and again["results"] == res["results"]


def test_bad_arguments(tmp_path, capsys):
    def fails(argv, match):
        with pytest.raises(SystemExit) as e:
            sweep.main(argv)
        assert e.value.code == 2
        assert match in capsys.readouterr().err

    fails(["--preset", "huge", "--out", str(tmp_path / "a")], "--preset")
    fails(["--preset", "tiny", "--out", str(tmp_path / "a"), "--workers", "-1"], "--workers")
    fails(["--preset", "tiny", "--out", str(tmp_path / "a"), "--workers", "two"], "--workers")
    fails(["--preset", "tiny", "--out", str(tmp_path / "a"), "--workers", "2", "--scheduler", "tcp://x:1"],
          "not allowed with")
    fails(["--preset", "tiny"], "--out")
    (tmp_path / "file").write_text("x")
    fails(["--preset", "tiny", "--out", str(tmp_path / "file")], "not a directory")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("x")
    fails(["--preset", "tiny", "--out", str(tmp_path / "full")], "not empty")
    # a directory holding another preset's sweep is refused before any work
    other = tmp_path / "other"
    sweep.prepare_out(other, PRESETS["smoke"])
    fails(["--preset", "tiny", "--out", str(other)], "another configuration")
    assert not any((other / "tasks").iterdir())
    with pytest.raises(ValueError, match="workers"):
        run_sweep(TINY, tmp_path / "b", workers=-1)
    with pytest.raises(ValueError, match="scheduler"):
        run_sweep(TINY, tmp_path / "b", workers=2, scheduler="tcp://x:1")
    with pytest.raises(TypeError, match="preset"):
        run_sweep("tiny", tmp_path / "b")
    with pytest.raises(ValueError, match="kind"):
        sweep.run_task(TINY, Task("train", (0, 1)))


def test_only_runs_the_matching_tasks(tmp_path):
    res = run_sweep(TINY, tmp_path / "part", only="dps-*-N10-*-s1-*", quiet=True)
    assert res["complete"] is False
    names = sorted(p.name for p in (tmp_path / "part" / "tasks").glob("*.npz"))
    assert names == [f"{t.id}.npz" for t in tasks(TINY) if t.kind == "dps" and t.index[1] == 10 and t.index[3] == 1]


def test_a_running_scheduler_by_address(serial, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as c:
        res = run_sweep(TINY, tmp_path / "sched", scheduler=c.scheduler_address, quiet=True)
    assert res["timing"]["scheduler"] == c.scheduler_address
    assert res["results"] == results(serial)["results"]
