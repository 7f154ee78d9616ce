"""Many people reading the registry at once: N client processes against the team MLflow server
(registry/start-server.sh on PostgreSQL) and the lifecycle DB on PostgreSQL, each looping over
what people read for ``--seconds``: `kernels list` (registry.list_kernels), `kernels show NAME`
(registry.list_versions), `kernels show NAME@champion` (registry.resolve), `kernels audit NAME`
and a gate read (the lifecycle DB). Then the same N processes with a plain MlflowClient doing the
MLflow reads (search_registered_models; get_registered_model + search_model_versions;
get_model_version_by_alias), in the same run, against the same server. The registry is seeded
with ``--kernels`` x ``--versions`` versions first.

    python bench/load.py [--clients 32] [--seconds 20] [--kernels 50] [--versions 100]

Needs PostgreSQL (``KL_TEST_POSTGRES_URL``, default postgresql://postgres@127.0.0.1:5432/test):
two throw-away databases, dropped at the end. The last line names ``p99`` and ``errors``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OURS = ("kernels list", "kernels show NAME", "kernels show NAME@champion", "kernels audit NAME", "gate read")
PLAIN = ("search_registered_models", "get_registered_model + search_model_versions", "get_model_version_by_alias")


def _kernel(i: int) -> str:
    return f"load-{i:03d}"


def seed(kernels: int, versions: int) -> None:
    """``kernels`` registered models of ``versions`` versions each (lineage-like tags, champion
    and candidate aliases), audit rows and gate decisions in the lifecycle DB."""
    from mlflow import MlflowClient

    from kernel_lifecycle.db import repo
    from kernel_lifecycle.db.engine import session_scope

    client = MlflowClient()
    run = client.create_run(client.create_experiment("load-seed")).info.run_id

    def one(i: int) -> None:
        name = _kernel(i)
        client.create_registered_model(name, description=f"load kernel {i}")
        for v in range(1, versions + 1):
            client.create_model_version(name, f"runs:/{run}/bundle", run_id=run, tags={
                "kernel.parent_version": str(v - 1) if v > 1 else "", "kernel.job_kind": "upskill",
                "kernel.skills.retained": "python sql", "kernel.skills.retired": "cobol", "gate.status": "passed"})
        client.set_registered_model_alias(name, "champion", str(versions - 1))
        client.set_registered_model_alias(name, "candidate", str(versions))
        with session_scope() as session:
            for v in range(max(1, versions - 20), versions + 1):
                repo.record_audit(session, actor="alice", action="alias_set", kernel=name, version=str(v), alias="candidate",
                                  to_version=str(v), reason="seed")
                repo.record_gate_decision(session, kernel=name, version=str(v), champion_version=str(v - 1), passed=True,
                                          harness_hash="seed", policy_sha256=None, decision={"passed": True, "reasons": []})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(kernels)))


def _ours(op: str, name: str, versions: int) -> None:
    from kernel_lifecycle.db import repo
    from kernel_lifecycle.db.engine import session_scope
    from kernel_lifecycle.registry import client as registry

    if op == "kernels list":
        assert len(registry.list_kernels()) >= 1
    elif op == "kernels show NAME":
        assert len(registry.list_versions(name)) == versions
    elif op == "kernels show NAME@champion":
        assert registry.resolve(f"{name}@champion").version == str(versions - 1)
    elif op == "kernels audit NAME":
        with session_scope() as session:
            assert repo.list_audit(session, kernel=name, limit=50)
    else:
        with session_scope() as session:
            assert repo.latest_gate_decision(session, kernel=name, version=str(versions)) is not None


def _plain(op: str, name: str, versions: int, client) -> None:  # noqa: ANN001 - an MlflowClient
    if op == "search_registered_models":
        assert client.search_registered_models(max_results=1000)
    elif op.startswith("get_registered_model"):
        client.get_registered_model(name)
        assert len(client.search_model_versions(f"name='{name}'", max_results=10000)) == versions
    else:
        assert client.get_model_version_by_alias(name, "champion").version == str(versions - 1)


def client_process(args: tuple) -> list[tuple[str, float, str]]:
    """One client: loop over the ops for ``seconds`` after its imports (a spawned process takes
    seconds to import on a busy machine); (op, seconds, error) each."""
    side, index, seconds, kernels, versions = args
    from mlflow import MlflowClient

    from kernel_lifecycle.db import repo  # noqa: F401 - imported before the clock starts
    from kernel_lifecycle.registry import client as registry  # noqa: F401

    ops = OURS if side == "ours" else PLAIN
    plain = MlflowClient() if side == "plain" else None
    for op in ops:  # warm: the clients, the pool's connections, the schema check
        _ours(op, _kernel(0), versions) if plain is None else _plain(op, _kernel(0), versions, plain)
    deadline = time.time() + seconds
    out, n = [], index
    while time.time() < deadline:
        op, name = ops[n % len(ops)], _kernel(n % kernels)
        n += 1
        start = time.perf_counter()
        error = ""
        try:
            _ours(op, name, versions) if plain is None else _plain(op, name, versions, plain)
        except Exception as exc:  # noqa: BLE001 - counted, not fatal: the benchmark reports errors
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        out.append((op, time.perf_counter() - start, error))
    return out


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run_side(side: str, clients: int, seconds: float, kernels: int, versions: int) -> list[tuple[str, float, str]]:
    with mp.get_context("spawn").Pool(clients) as pool:
        results = pool.map(client_process, [(side, i, seconds, kernels, versions) for i in range(clients)], chunksize=1)
    return [r for part in results for r in part]


def report(side: str, rows: list, seconds: float) -> tuple[float, int]:
    ops = sorted({op for op, _, _ in rows}, key=lambda o: (OURS + PLAIN).index(o))
    print(f"\n{side}: {len(rows)} requests, {len(rows) / seconds:.1f}/s")
    print(f"  {'read':48s} {'n':>6s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s}")
    for op in ops:
        times = [t for o, t, e in rows if o == op and not e]
        errors = sum(1 for o, _, e in rows if o == op and e)
        print(f"  {op:48s} {len(times):6d} {_pct(times, 0.5) * 1000:8.1f} {_pct(times, 0.99) * 1000:8.1f} {errors:6d}")
    for e in sorted({e for _, _, e in rows if e})[:5]:
        print(f"  error: {e}")
    ok = [t for _, t, e in rows if not e]
    return _pct(ok, 0.99), sum(1 for _, _, e in rows if e)


def single(repeats: int = 15) -> tuple[float, float]:
    """Median seconds of one `kernels list` (registry.list_kernels) and one plain
    search_registered_models, alone, alternated."""
    from mlflow import MlflowClient

    from kernel_lifecycle.registry.client import list_kernels

    client, ours, plain = MlflowClient(), [], []
    for _ in range(repeats):
        start = time.perf_counter()
        list_kernels()
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        client.search_registered_models(max_results=1000)
        plain.append(time.perf_counter() - start)
    return statistics.median(ours), statistics.median(plain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--kernels", type=int, default=50)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--postgres", default=os.environ.get("KL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from kernel_lifecycle.db.engine import upgrade
    from tests.registry.team_server import team_server

    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    lifecycle = f"kl_load_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{lifecycle}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="kl-load-") as root, team_server(Path(root), args.postgres, {"MLFLOW_WORKERS": "4"}) as url:
            os.environ.update(MLFLOW_TRACKING_URI=url, KL_HOME=str(Path(root) / "home"),
                              KL_DATABASE_URL=make_url(args.postgres).set(database=lifecycle).render_as_string(hide_password=False))
            upgrade()
            start = time.perf_counter()
            seed(args.kernels, args.versions)
            print(f"seeded {args.kernels} kernels x {args.versions} versions in {time.perf_counter() - start:.0f} s "
                  f"(server: 4 workers; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
            ours_list, plain_list = single()
            print(f"one `kernels list`: {ours_list * 1000:.1f} ms; one plain search_registered_models: {plain_list * 1000:.1f} ms "
                  f"({ours_list / plain_list:.2f}x)")
            ours = run_side("ours", args.clients, args.seconds, args.kernels, args.versions)
            plain = run_side("plain", args.clients, args.seconds, args.kernels, args.versions)
            p99, errors = report(f"kernel-lifecycle, {args.clients} client processes", ours, args.seconds)
            p99_plain, errors_plain = report(f"plain MlflowClient, {args.clients} client processes", plain, args.seconds)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{lifecycle}" WITH (FORCE)'))
        admin.dispose()
    print(f"\nload: {args.clients} clients, {args.kernels}x{args.versions} versions: kernel-lifecycle p99 {p99 * 1000:.0f} ms "
          f"errors {errors}; plain MlflowClient p99 {p99_plain * 1000:.0f} ms errors {errors_plain}; "
          f"kernels list {ours_list / plain_list:.2f}x one search_registered_models")


if __name__ == "__main__":
    main()
