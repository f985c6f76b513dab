"""Running a sweep's planned stacks: in this process, in `--jobs` spawned processes or as Ray tasks, each under
a claim on its runs (`claims`), skipping what `<out>/runs/` already records; and reading those records back.
The folder is the single source of truth: a killed or shared sweep resumes from it to the same numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import claims
import utils
from sweep.plan import RunSpec, group_runs, schedule
from sweep.stack import record_failure, run_stack
from utils import V2SError


def _run_stack_in_worker(args):
    """A `--jobs` worker (a spawned process): `threads` intra-op threads, then `run_fn` under a claim."""
    run_fn, specs, out, threads, retry_failed = args
    os.environ["V2S_THREADS"] = os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    utils.setup_tensorflow(seed=specs[0].seed)
    return run_claimed(run_fn, specs, out, retry_failed)


def is_current(path: Path) -> bool:
    """A record written by this version of the sweep: it exists and carries the per-epoch TEST history.
    Older records (without it) still feed the honest tables, but a sweep runs them again."""
    try:
        return "test_accuracy" in json.loads(path.read_text()).get("history", {})
    except (OSError, ValueError):
        return False


def pending_runs(specs: list[RunSpec], out: str, retry_failed: bool = False) -> list[RunSpec]:
    """The specs with neither a current record (`is_current`) nor (unless `retry_failed`) an error record
    under `<out>/runs/`."""
    runs = Path(out) / "runs"
    return [
        s
        for s in specs
        if not is_current(runs / f"{s.name}.json") and (retry_failed or not (runs / f"{s.name}.error.json").exists())
    ]


def failed_runs(specs: list[RunSpec], out: str) -> list[str]:
    """Names of planned runs that have only an error record."""
    runs = Path(out) / "runs"
    return [
        s.name for s in specs if (runs / f"{s.name}.error.json").exists() and not (runs / f"{s.name}.json").exists()
    ]


def execute(
    specs: list[RunSpec],
    out: str,
    jobs: int = 1,
    run_fn=run_stack,
    programs: int = 4,
    backend: str = "local",
    ray_address: str | None = None,
    retry_failed: bool = False,
) -> list[dict]:
    """Run the specs that have no record yet (finished and failed runs are both skipped), stack by stack.

    `run_fn(stack, out, on_epoch=None)` trains one stack (a list of specs) and returns one summary per
    spec. Prints one line per finished run and keeps an overall progress bar with the time left; the bar
    counts TRAIN series x epochs (`RunSpec.cost`), so its estimate weights the big datasets that come
    last. In this process it moves after every epoch of a V2S stack (`run_fn` calls `on_epoch(epochs_done)`;
    TFa runs move it when they finish); with `--jobs` or Ray, after every stack.

    Each stack is trained under a claim on its runs (`run_claimed`): sweeps sharing `out` split the work
    and never train a run twice, and after a kill (of the sweep or of a worker) the same command trains
    what is missing, the killed stacks as a whole, to the numbers an uninterrupted sweep gives.
    """
    from tqdm import tqdm

    # runs whose trainer was killed (a stale claim) are trained again, records or not: a stack killed while
    # writing its records has only some of them, and only the whole stack gives the same numbers again
    incomplete = set(claims.stale(Path(out) / "runs", [s.name for s in specs]))
    unrecorded = set(pending_runs(specs, out, retry_failed))
    pending = [s for s in specs if s in unrecorded or s.name in incomplete]
    stacks = schedule(group_runs(pending, programs), parallel=backend == "ray" or jobs > 1)
    print(
        f"{len(specs)} runs planned, {len(specs) - len(pending)} already recorded, {len(pending)} to run "
        f"in {len(stacks)} stacks" + (f" ({len(incomplete)} left unfinished by a killed sweep)" if incomplete else ""),
        flush=True,
    )
    (Path(out) / "runs").mkdir(parents=True, exist_ok=True)
    results = []
    bar = tqdm(total=sum(spec.cost for spec in pending), unit="series", unit_scale=True, dynamic_ncols=True)

    def report(stack, summaries, shown=0):
        """A line per run of a finished stack; the bar moves by the stack's cost less what `shown` moved."""
        for spec, result in zip(stack, summaries):
            if result["ok"]:
                status = f"test_acc {result['test_accuracy']:.4f}"
            elif "skipped" in result or "interrupted" in result:
                status = (
                    f"skipped: {result['skipped']}" if "skipped" in result else f"NOT RECORDED: {result['interrupted']}"
                )
            else:
                status = f"FAILED {result['error']}"
            setting = "tfa" if spec.mod == "tfa" else f"dr{spec.dr} seg{spec.seg}"
            fold = f" fold{spec.fold}" if spec.fold is not None else ""
            bar.write(
                f"{spec.dataset} net{spec.net} {setting} seed{spec.seed}{fold}: {status} ({result['seconds']:.0f}s)"
            )
            results.append(result)
        bar.update(sum(spec.cost for spec in stack) - shown)

    def epoch_progress(stack):
        """`on_epoch` for a stack trained here: moves the bar by its share of the stack's cost per epoch;
        `.shown` is how far it moved."""
        cost, epochs = sum(spec.cost for spec in stack), max(spec.eps for spec in stack)

        def on_epoch(done):
            step = min(cost, cost * done // epochs) - on_epoch.shown
            bar.update(step)
            on_epoch.shown += step

        on_epoch.shown = 0
        return on_epoch

    if stacks and backend == "ray":
        _execute_ray(stacks, out, jobs, ray_address, run_fn, report, retry_failed)
    elif jobs <= 1 or not stacks:
        for stack in stacks:
            on_epoch = epoch_progress(stack)
            summaries = run_claimed(run_fn, stack, out, retry_failed, on_epoch)
            report(stack, summaries, on_epoch.shown)
    else:
        _execute_processes(stacks, out, jobs, run_fn, report, retry_failed)
    bar.close()
    held = [r for r in results if "being trained by another process" in r.get("skipped", "")]
    lost = [r for r in results if "interrupted" in r]
    if held or lost:
        print(
            f"not recorded by this sweep: {len(held)} runs being trained by another process, {len(lost)} whose "
            "worker died; run the same command again (once the other sweep is done) to finish them",
            flush=True,
        )
    return results


def _skipped(spec: RunSpec, reason: str) -> dict:
    return {"run": spec.name, "ok": False, "skipped": reason, "seconds": 0.0}


def _interrupted(spec: RunSpec) -> dict:
    return {
        "run": spec.name,
        "ok": False,
        "seconds": 0.0,
        "interrupted": "its worker died (killed or out of memory); not recorded, trained by the next run of the command",
    }


def run_claimed(run_fn, stack: list[RunSpec], out: str, retry_failed: bool = False, on_epoch=None) -> list[dict]:
    """`run_fn(stack, out, on_epoch)` under a claim on the stack's runs (`claims`), so that sweeps sharing `out` never
    train a run twice; the claim is released once the records (or error records) are written.

    A stack claimed by a live process is skipped. Once claimed, runs recorded meanwhile by another process
    are skipped too, unless their claim was stale (their trainer was killed, perhaps while writing the
    stack's records): those are trained again with the rest of their stack, which gives the same numbers.
    """
    try:
        claim = claims.claim(Path(out) / "runs", [spec.name for spec in stack])
    except claims.Held as held:
        return [_skipped(spec, f"being trained by another process ({held})") for spec in stack]
    with claim:
        todo = [s for s in stack if s.name in claim.took_over or pending_runs([s], out, retry_failed)]
        done = dict(zip([s.name for s in todo], run_fn(todo, out, on_epoch=on_epoch))) if todo else {}
    return [done.get(s.name) or _skipped(s, "recorded meanwhile by another process") for s in stack]


def _execute_processes(stacks, out: str, jobs: int, run_fn, report, retry_failed: bool) -> None:
    """`jobs` spawned worker processes, each training one stack at a time with `run_fn` (a module-level
    function: it is pickled; `_run_stack_in_worker`), the
    costliest first. Each worker has its own pool, so a worker that dies (killed, out of memory) loses only
    its own stack: that stack is reported as not recorded (its stale claim makes the next run of the command
    train it) and a fresh worker takes the free slot."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    queue, pools, running = list(stacks), [None] * jobs, {}
    try:
        while queue or running:
            for slot in sorted(set(range(jobs)) - {slot for slot, _ in running.values()}):
                if queue:
                    pools[slot] = pools[slot] or ProcessPoolExecutor(max_workers=1, mp_context=context)
                    stack = queue.pop(0)
                    running[pools[slot].submit(_run_stack_in_worker, (run_fn, stack, out, threads, retry_failed))] = (
                        slot,
                        stack,
                    )
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                slot, stack = running.pop(future)
                summaries = _result_or_failure(stack, out, future.result)
                if any("interrupted" in s for s in summaries):  # its worker is gone: a new pool for the slot
                    pools[slot].shutdown(wait=False)
                    pools[slot] = None
                report(stack, summaries)
    finally:
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


def _result_or_failure(stack: list[RunSpec], out: str, get) -> list[dict]:
    """`get()`'s summaries; if the worker process died (killed, out of memory: a broken process pool) the
    stack is left unrecorded, to be trained by the next run of the command; any other error records every
    run of the stack as failed. The sweep goes on."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return get()
    except BrokenProcessPool:
        return [_interrupted(spec) for spec in stack]
    except Exception as err:
        return [record_failure(spec, out, err, 0.0) for spec in stack]


def _execute_ray(stacks, out, jobs, address, run_fn, report, retry_failed: bool = False) -> None:
    """Each stack is one Ray task (1 CPU; results written by the task into `out`, the single source of truth)."""
    try:
        import ray
    except ImportError:
        raise V2SError("--backend ray needs Ray: pip install -r requirements-extras.txt") from None
    env = {
        "PYTHONPATH": os.pathsep.join([str(utils.PROJECT_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "V2S_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
    }
    for key in ("V2S_AM_DIR", "V2S_SPEECH_DIR", "V2S_DATA_DIR", "V2S_OFFLINE", "TF_ENABLE_ONEDNN_OPTS"):
        if key in os.environ:
            env[key] = os.environ[key]
    started_here = not ray.is_initialized()
    if started_here:
        options = {"address": address} if address else {"num_cpus": jobs, "include_dashboard": False}
        try:
            ray.init(runtime_env={"env_vars": env}, log_to_driver=False, **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise V2SError(f"cannot start or join Ray ({address or 'local'}): {err}".splitlines()[0]) from None
    try:
        task = ray.remote(num_cpus=1)(run_claimed)  # the claim is taken in the task (a killed task is retried)
        waiting = {task.remote(run_fn, stack, str(Path(out).resolve()), retry_failed): stack for stack in stacks}
        while waiting:
            done, _ = ray.wait(list(waiting), num_returns=1)
            for ref in done:
                stack = waiting.pop(ref)
                report(stack, _result_or_failure(stack, out, lambda: ray.get(ref)))
    finally:
        if started_here:
            ray.shutdown()


def load_records(out: str, specs: list[RunSpec] | None = None) -> list[dict]:
    """The finished runs' records under `<out>/runs/`: all of them, or those of the planned `specs` only
    (runs of another grid, more seeds or other epochs in the same folder are left out)."""
    paths = sorted((Path(out) / "runs").glob("*.json"))
    if specs is not None:
        wanted = {f"{s.name}.json" for s in specs}
        paths = [p for p in paths if p.name in wanted]
    return [json.loads(p.read_text()) for p in paths if not p.name.endswith(".error.json")]
