"""A kill at any moment loses nothing: atomic writers, a killed v2s_main.py, killed and concurrent sweeps.

The processes here are really killed (SIGKILL, which no handler can catch) while they run.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from helpers import AM_FILE, ROOT, ROWS, fake_runner

import claims
import utils
from sweep import executor, plan


def killed_while_writing(tmp_path, writer: str, patch: str) -> subprocess.CompletedProcess:
    """Run `writer` (Python using utils) in a child whose `patch` makes it SIGKILL itself mid-write."""
    code = "\n".join(
        [
            "import os, signal, sys",
            f"sys.path.insert(0, {str(ROOT)!r})",
            "import utils",
            "def die(*args, **kwargs):",
            "    os.kill(os.getpid(), signal.SIGKILL)",
            patch,
            writer,
        ]
    )
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)


def visible(folder):
    """Files a reader would take for outputs: everything but hidden names."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    "writer, patch",
    [
        # killed after half the bytes are written
        (
            "utils.atomic_write_json('out/run.json', {'new': 1})",
            "real = os.fdopen\n"
            "class Half:\n"
            "    def __init__(self, fh): self.fh = fh\n"
            "    def __enter__(self): return self\n"
            "    def __exit__(self, *a): pass\n"
            "    def fileno(self): return self.fh.fileno()\n"
            "    def write(self, data): self.fh.write(data[:len(data) // 2]); self.fh.flush(); die()\n"
            "os.fdopen = lambda fd, mode: Half(real(fd, mode))",
        ),
        # killed with the temporary file complete, before the rename
        ("utils.atomic_write_json('out/run.json', {'new': 1})", "os.replace = die"),
        # a saver (Keras, matplotlib) killed after writing part of its file
        ("utils.atomic_save('out/run.json', lambda tmp: (open(tmp, 'w').write('{\"ne'), die()))", ""),
        ("utils.atomic_save('out/run.json', lambda tmp: open(tmp, 'w').write('{\"new\": 1}'))", "os.replace = die"),
    ],
    ids=["json-killed-mid-write", "json-killed-before-rename", "saver-killed-mid-save", "saver-killed-before-rename"],
)
def test_a_writer_killed_mid_write_leaves_the_old_file_and_no_stray_output(tmp_path, writer, patch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text('{"old": 1}')
    result = killed_while_writing(tmp_path, writer, patch)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert visible(out) == ["run.json"] and (out / "run.json").read_text() == '{"old": 1}'
    assert all(name.endswith(".tmp") for name in leftovers(out))  # hidden, never matched by *.json / *.weights.h5


def test_atomic_writes_leave_nothing_but_the_file_with_the_usual_permissions(tmp_path):
    utils.atomic_write_json(tmp_path / "a" / "run.json", {"x": 1})
    utils.atomic_save(tmp_path / "a" / "run.weights.h5", lambda tmp: open(tmp, "wb").write(b"h5"))
    with pytest.raises(ZeroDivisionError):
        utils.atomic_save(tmp_path / "a" / "fig.png", lambda tmp: (open(tmp, "wb").write(b"x"), 1 / 0))
    assert sorted(os.listdir(tmp_path / "a")) == ["run.json", "run.weights.h5"]
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("run.json", "run.weights.h5"):
        assert (tmp_path / "a" / name).stat().st_mode & 0o777 == 0o666 & ~umask


# ----------------------------------------------------------------------------------------------
# Claims: one process per stack of runs


def write_dataset(root, name="Tiny", n_train=20, n_test=10, length=50):
    """A small valid UCR dataset (two classes: slow and fast noisy sines); returns the data folder."""
    rng = np.random.default_rng(0)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("TRAIN", n_train), ("TEST", n_test)):
        labels = np.arange(n) % 2
        series = np.sin(np.linspace(0, 6, length)[None] * (1 + labels[:, None])) + 0.1 * rng.normal(size=(n, length))
        np.savetxt(folder / f"{name}_{split}.tsv", np.c_[labels + 1, series], delimiter="\t", fmt="%.5f")
    return root


def holder(folder, names, env=None):
    """A live process (on this host) that claims `names` in `folder` and holds them until killed."""
    code = (
        f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); import claims; "
        f"claims.claim({str(folder)!r}, {list(names)!r}); print('claimed', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "claimed"
    return proc


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def leave_stale_lock(folder, name, runs):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.lock").write_text(
        json.dumps({"host": claims.HOST, "pid": dead_pid(), "started": None, "runs": runs})
    )


def test_a_stack_is_claimed_whole_and_released_when_done(tmp_path):
    with claims.claim(tmp_path, ["a", "b"]) as claim:
        assert sorted(visible(tmp_path)) == ["a.lock", "b.lock"] and claim.took_over == []
        with pytest.raises(claims.Held, match=f"pid {os.getpid()}"):
            claims.claim(tmp_path, ["b", "c"])  # one run of the stack is held: none is claimed
        assert not (tmp_path / "c.lock").exists()
    assert visible(tmp_path) == []


def test_a_claim_of_a_live_process_is_refused_and_one_of_a_killed_process_taken_over(tmp_path):
    proc = holder(tmp_path, ["a", "b"])
    try:
        with pytest.raises(claims.Held, match=f"pid {proc.pid}"):
            claims.claim(tmp_path, ["a"])
        assert claims.stale(tmp_path, ["a", "b", "c"]) == []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert claims.stale(tmp_path, ["a", "b", "c"]) == ["a", "b"]
    with claims.claim(tmp_path, ["a", "b"]) as claim:
        assert claim.took_over == ["a", "b"]
        assert json.loads((tmp_path / "a.lock").read_text())["pid"] == os.getpid()


def test_two_processes_racing_for_the_same_stacks_never_both_get_one(tmp_path):
    """Half of the stacks are fresh, half left stale by a killed process: each is won by exactly one racer."""
    names = [f"run{i}" for i in range(120)]
    for name in names[::2]:
        leave_stale_lock(tmp_path / "runs", name, [name])
    (tmp_path / "runs").mkdir(exist_ok=True)
    code = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        import claims
        while not os.path.exists({str(tmp_path / "go")!r}):
            time.sleep(0.001)
        won = []
        for name in {names!r}:
            try:
                claims.claim({str(tmp_path / "runs")!r}, [name])  # kept: the other racer must not get it later
                won.append(name)
            except claims.Held:
                pass
        print(" ".join(won), flush=True)
        while not os.path.exists({str(tmp_path / "end")!r}):  # alive until both are done: a gone racer's
            time.sleep(0.01)  # locks are stale, and the other would rightly take them over
    """)
    racers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(1.0)
    (tmp_path / "go").write_text("")
    won = [set(proc.stdout.readline().split()) for proc in racers]
    (tmp_path / "end").write_text("")
    for proc in racers:
        proc.communicate(timeout=120)
    assert won[0] | won[1] == set(names) and not won[0] & won[1]


def test_execute_skips_a_stack_a_live_sweep_is_training(tmp_path):
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None)
    proc = holder(tmp_path / "runs", [s.name for s in specs[:2]])
    try:
        calls = []
        results = executor.execute(specs, str(tmp_path), run_fn=fake_runner(calls), programs=2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert calls == [s.name for s in specs[2:]]
    assert [r.get("skipped", "").startswith("being trained by another process") for r in results[:2]] == [True, True]
    assert not list((tmp_path / "runs").glob(f"{specs[2].name}.lock"))


def test_a_stack_a_killed_sweep_left_half_recorded_is_trained_again_whole(tmp_path):
    """Dropout masks come from one stream per stack: only the whole stack gives the recorded numbers again."""
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None)  # 4 runs, one stack
    executor.execute(specs, str(tmp_path), run_fn=fake_runner([]))
    for spec in specs[2:]:  # killed after writing two of its four records
        (tmp_path / "runs" / f"{spec.name}.json").unlink()
    for spec in specs:
        leave_stale_lock(tmp_path / "runs", spec.name, [s.name for s in specs])
    calls = []
    executor.execute(specs, str(tmp_path), run_fn=fake_runner(calls))
    assert calls == [s.name for s in specs]  # one stack of four, not a new stack of the two missing runs
    assert sorted(visible(tmp_path / "runs")) == sorted(f"{s.name}.json" for s in specs)  # no lock left


def test_a_stack_whose_worker_was_killed_is_left_for_the_next_run_not_recorded_as_failed(tmp_path):
    from concurrent.futures.process import BrokenProcessPool

    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None)[:2]

    def killed_worker():
        raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    summaries = executor._result_or_failure(specs, str(tmp_path), killed_worker)
    assert all("interrupted" in s for s in summaries)
    assert executor.failed_runs(specs, str(tmp_path)) == [] and executor.pending_runs(specs, str(tmp_path)) == specs


# ----------------------------------------------------------------------------------------------
# v2s_main.py killed at any moment

# v2s_main.py with the small stand-in AM of helpers.py (the rest of the program unchanged)
TINY_AM_MAIN = "\n".join(
    [
        "import sys",
        f"sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]",
        "import am_weights, helpers, utils, v2s_main",
        "am_weights.load_am = lambda net, am_weights=None: (helpers.make_tiny_am(), dict(helpers.TINY_AM_INFO))",
        "utils.run_cli(lambda: v2s_main.main(sys.argv[1:]))",
    ]
)
PNG_END = b"IEND\xaeB`\x82"


def assert_only_complete_outputs(folder):
    """Every file under `folder` a reader would take for an output is complete; the rest is hidden `*.tmp`."""
    import h5py

    for path in folder.iterdir() if folder.exists() else []:
        if path.name.startswith("."):
            assert path.name.endswith(".tmp"), path
        elif path.is_dir():
            assert_only_complete_outputs(path)
        elif path.name.endswith(".json"):
            assert "metrics" in json.loads(path.read_text()), path
        elif path.name.endswith(".png"):
            data = path.read_bytes()
            assert data.startswith(b"\x89PNG") and data.endswith(PNG_END), path
        elif path.name.endswith(".weights.h5"):
            with h5py.File(path, "r") as fh:
                assert len(fh.keys()) > 0, path
        else:
            pytest.fail(f"unexpected output {path}")


def start(command, env, stdout=subprocess.PIPE, **kwargs):
    """Start `command`; its output (stdout and stderr) unbuffered into `stdout`."""
    return subprocess.Popen(
        command,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "V2S_OFFLINE": "1", **env},
        **kwargs,
    )


def wait_for_line(proc, prefix, timeout=300):
    deadline = time.time() + timeout
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(prefix):
            return
        assert time.time() < deadline, "".join(seen[-20:])
    pytest.fail(f"exited before printing {prefix!r}:\n" + "".join(seen[-20:]))


def v2s_main_killed(tmp_path, kills, eps=8):
    """Run v2s_main.py (stand-in AM, periodic saves every epoch) and SIGKILL it at each (epoch, delay in s
    after that epoch began) of `kills`, checking the outputs after each kill; then run the same command to
    the end. Returns the output folder and the final run's record."""
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-c",
        TINY_AM_MAIN,
        "--dataset",
        "Tiny",
        "--data-dir",
        str(write_dataset(tmp_path)),
        "--eps",
        str(eps),
        "--per",
        "1",
        "--results-dir",
        str(out / "results"),
        "--weight-dir",
        str(out / "weight"),
    ]
    for epoch, delay in kills:
        proc = start(command, {})
        wait_for_line(proc, f"Epoch {epoch}/{eps}")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL  # killed, not finished
        assert_only_complete_outputs(out)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert_only_complete_outputs(out)
    record = json.loads(next((out / "results").glob("*.json")).read_text())
    assert len(record["history"]["loss"]) == eps and (out / "results" / f"{record['run']}.png").is_file()
    assert len(list((out / "weight" / "beta").glob("*.weights.h5"))) >= eps
    return out, record


def test_v2s_main_killed_while_saving_leaves_only_complete_files_and_the_same_command_finishes(tmp_path):
    """Killed as the last epoch ends: while it saves that epoch's weights (--per 1), the final weights,
    the plot and the record (about 1 s on 2 cores). ~25 s on 2 quiet cores (two TensorFlow start-ups)."""
    v2s_main_killed(tmp_path, [(8, 0.3)])


@pytest.mark.slow
def test_v2s_main_killed_at_many_moments_leaves_only_complete_files(tmp_path):
    """Six kills: at the start of training, mid-training and across the ~1 s of final saves."""
    v2s_main_killed(tmp_path, [(1, 0.0), (4, 0.1), (8, 0.0), (8, 0.2), (8, 0.5), (8, 1.0)])


# ----------------------------------------------------------------------------------------------
# reproduce.py: the whole sweep killed, one worker killed, two sweeps on one --out (the real V2Sa)

# 4 runs of a tiny "Coffee" (dropout {0, 0.4} x segments {1, 10}, one seed) in 2 stacks of 2 programs
SWEEP = ["--datasets", "Coffee", "--eps", "1", "--seeds", "1", "--programs", "2", "--no-minirocket"]
RUN_LINE = re.compile(r"Coffee net0 dr\d seg\d+ seed\d: test_acc")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The sweep's command and environment (one intra-op thread everywhere, as in a --jobs 2 worker, so
    every way of running it gives the same numbers), and the records of an uninterrupted run."""
    if not AM_FILE.exists():
        pytest.skip(f"{AM_FILE} not present")
    root = tmp_path_factory.mktemp("sweep")
    data = write_dataset(root / "data", "Coffee")
    (root / "no_speech").mkdir()  # no Table-3 SWD: it needs the speech clips and is not what is tested here
    env = {
        "V2S_AM_DIR": str(AM_FILE.parent),
        "V2S_SPEECH_DIR": str(root / "no_speech"),
        "V2S_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
    }

    def command(out, *extra):
        return [sys.executable, str(ROOT / "reproduce.py"), *SWEEP, "--data-dir", str(data), "--out", str(out), *extra]

    reference = run_to_end(command(root / "reference"), env)
    assert len(RUN_LINE.findall(reference)) == 4, reference
    return {"command": command, "env": env, "numbers": numbers(root / "reference")}


def run_to_end(command, env) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=900, env={**os.environ, "V2S_OFFLINE": "1", **env}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def numbers(out):
    """Per recorded run: its per-epoch history and its metrics."""
    runs = [p for p in (out / "runs").glob("*.json") if not p.name.endswith(".error.json")]
    return {p.name: (r["history"], r["metrics"]) for p in runs for r in [json.loads(p.read_text())]}


def assert_sweep_files_complete(out):
    """Under <out>/runs: complete records and claims; hidden, only the claims' flock file and *.tmp files."""
    for path in (out / "runs").iterdir():
        if path.name.startswith("."):
            assert path.name == ".claims.flock" or path.name.endswith(".tmp"), path
        elif path.name.endswith(".lock"):
            assert json.loads(path.read_text())["pid"] > 0
        else:
            assert path.name.endswith(".json") and "metrics" in json.loads(path.read_text()), path


def claims_in(out):
    """The lock files of the runs claimed under <out>/runs."""
    runs = out / "runs"
    return [p for p in runs.glob("*.lock") if not p.name.startswith(".")] if runs.is_dir() else []


def assert_finished_as_uninterrupted(out, sweep):
    assert numbers(out) == sweep["numbers"]  # the same runs, each recorded once, with the same numbers
    assert not claims_in(out) and not list((out / "runs").glob("*.error.json"))
    assert_sweep_files_complete(out)


def wait_until(condition, proc, timeout=900):
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def started_sweep(sweep, out, log, *extra):
    return start(sweep["command"](out, *extra), sweep["env"], stdout=open(log, "w"), start_new_session=True)


def test_a_sweep_killed_mid_way_then_run_again_records_every_run_once_with_the_same_numbers(sweep, tmp_path):
    out = tmp_path / "sweep"
    proc = started_sweep(sweep, out, tmp_path / "killed.log")
    wait_until(
        lambda: (
            (out / "runs").is_dir()
            and any(not p.name.startswith(".") and p.suffix == ".json" for p in (out / "runs").iterdir())
        ),
        proc,
    )
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and anything it started
    proc.wait()
    assert_sweep_files_complete(out)
    assert len(numbers(out)) < 4  # killed with runs left to do
    again = run_to_end(sweep["command"](out), sweep["env"])
    assert len(RUN_LINE.findall(again)) == len(set(RUN_LINE.findall(again)))
    assert_finished_as_uninterrupted(out, sweep)


@pytest.mark.slow
def test_a_killed_worker_loses_only_its_stack_which_the_same_command_then_trains(sweep, tmp_path):
    """--jobs 2: five TensorFlow start-ups in all, ~45 s of CPU (2 min when the cores were shared)."""
    out, log = tmp_path / "sweep", tmp_path / "jobs2.log"
    proc = started_sweep(sweep, out, log, "--jobs", "2")

    def worker_claim():
        owners = [json.loads(p.read_text()) for p in claims_in(out)]
        return next((o["pid"] for o in owners if o["pid"] != proc.pid), None)

    wait_until(worker_claim, proc)
    os.kill(worker_claim(), signal.SIGKILL)  # one worker, while it trains its stack
    assert proc.wait(timeout=900) == 0
    text = log.read_text()
    assert "NOT RECORDED: its worker died" in text and "FAILED" not in text
    assert len(numbers(out)) == 2 and not list((out / "runs").glob("*.error.json"))  # the other stack went on
    run_to_end(sweep["command"](out, "--jobs", "2"), sweep["env"])
    assert_finished_as_uninterrupted(out, sweep)


def test_two_sweeps_on_one_out_folder_share_the_runs_and_train_each_once(sweep, tmp_path):
    out = tmp_path / "shared"
    logs = [tmp_path / f"sweep{i}.log" for i in range(2)]
    procs = [started_sweep(sweep, out, log) for log in logs]
    assert [proc.wait(timeout=900) for proc in procs] == [0, 0]
    trained = [line for log in logs for line in RUN_LINE.findall(log.read_text())]
    assert sorted(trained) == sorted(set(trained)) and len(trained) == 4  # each run trained by one sweep only
    assert_finished_as_uninterrupted(out, sweep)


def test_a_frozen_heap_is_given_back_after_the_block_even_when_it_fails():
    """Training runs with the objects built before it out of the collector's scans; after the block (or an
    error in it) they are collectable again, so a long sweep process does not keep every stack's cycles."""
    import gc

    import utils

    with utils.frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError):
        with utils.frozen_heap():
            raise RuntimeError("a failing epoch")
    assert gc.get_freeze_count() == 0
