"""The `tectonic` command.

Exit codes (Jepsen's): 0 valid, 1 invalid, 2 unknown, 254 bad arguments or input,
255 internal error. Bad input never prints a traceback: one line says what and where.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sys

import click

from core.errors import BAD_INPUT, INTERNAL, SetupError, SpecError, UserError

from core.history import HistoryError, load_history, validate
from .spec import load_spec, read_spec_file, resolve_spec

EXIT = {True: 0, False: 1}

log = logging.getLogger("tectonic")




def _verdict_exit(valid) -> int:
    return EXIT.get(valid, 2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """tectonic: Jepsen-style fault-injection tests for distributed systems."""


# ------------------------------------------------------------------------ test

@cli.command()
@click.option("--spec", "spec_file", type=str, help="A YAML spec (e.g. a stored run's spec.yaml); flags override it.")
@click.option("--target", help="raftkv, etcd, process (a program described in --spec), maelstrom (--target-opt bin=NODE), or a SQL server: mariadb, postgres (--node-count 1), galera (3 or more).")
@click.option("--workload", help="register, set, list-append, rw-register, lock (etcd); lin-kv, txn-list-append (Maelstrom's names).")
@click.option("--nemesis", help="Comma-separated faults: partition,kill,pause,clock,loss,delay,duplicate,disk,membership.")
@click.option("--nemesis-interval", type=float, help="Seconds each fault is held, and between faults.")
@click.option("--node-count", type=int, help="Number of nodes (default 5).")
@click.option("--concurrency", type=int, help="Client threads (default 10).")
@click.option("--time-limit", type=float, help="Seconds of workload (default 60).")
@click.option("--rate", type=float, help="Ops per second across all clients; 0 = unlimited.")
@click.option("--seed", type=int, help="Seed for every random choice; a run's seed is in its spec.yaml.")
@click.option("--store", help="Results directory (default ./store).")
@click.option("--name", help="Test name (default <target>-<workload>).")
@click.option("--bug", "bugs", multiple=True, help="Plant a target bug (raftkv: stale-reads, no-fsync, ...). Repeatable.")
@click.option("--op-timeout", type=float, help="Seconds before a client op is recorded as info.")
@click.option("--recovery-time", type=float, help="Seconds to wait after the final heal before final reads.")
@click.option("--serializable", is_flag=True, default=None,
              help="etcd: serializable (local, possibly stale) reads instead of linearizable ones.")
@click.option("--nemesis-opt", "nemesis_opts", multiple=True, metavar="KEY=VALUE",
              help="A nemesis option, VALUE in YAML: together=2, kill_targets=[majority,all], "
                   "partition_shapes=[isolate-leader]. Repeatable.")
@click.option("--workload-opt", "workload_opts", multiple=True, metavar="KEY=VALUE",
              help="A workload option, e.g. ops_per_key=1000. Repeatable.")
@click.option("--target-opt", "target_opts", multiple=True, metavar="KEY=VALUE",
              help="A target option, e.g. election_timeout=500 (etcd). Repeatable.")
@click.option("--backend-opt", "backend_kv", multiple=True, metavar="KEY=VALUE",
              help="A backend option, e.g. known_hosts=~/.ssh/known_hosts, sudo=true, image=... (docker). Repeatable.")
@click.option("--backend", help="Where the nodes run: local (network namespaces, default), ssh, docker.")
@click.option("--nodes", help="ssh: the hosts, comma-separated (user@host:port allowed).")
@click.option("--nodes-file", help="ssh: a file naming one host per line.")
@click.option("--ssh-user", help="ssh: the login user (default root).")
@click.option("--ssh-key", help="ssh: a private key file (default: the agent and ~/.ssh keys).")
@click.option("--ssh-port", type=int, help="ssh: the port (default 22).")
@click.option("--insecure-host-keys", is_flag=True, default=None,
              help="ssh: accept unknown host keys instead of checking known_hosts (logged and reported).")
def test(spec_file, bugs, serializable, nemesis_opts, workload_opts, target_opts, backend_kv, nodes,
         nodes_file, ssh_user, ssh_key, ssh_port, insecure_host_keys, **flags):
    """Run a test against a fresh cluster, check it, and store the results."""
    spec: dict = {}
    if spec_file:
        spec = read_spec_file(spec_file)  # a stored spec carries its seed: the schedule repeats
    backend_opts = {k: v for k, v in (("nodes", nodes), ("nodes_file", nodes_file),
                                      ("user", ssh_user), ("key_file", ssh_key),
                                      ("port", ssh_port),
                                      ("insecure_host_keys", insecure_host_keys)) if v is not None}
    backend_opts.update(_key_values("backend_opts", backend_kv))
    if backend_opts:
        spec["backend_opts"] = {**(spec.get("backend_opts") or {}), **backend_opts}
    for k, v in flags.items():
        if v is not None:
            spec[k] = v
    if bugs:
        spec["bugs"] = list(bugs)
    for field, pairs in (("nemesis_opts", nemesis_opts), ("workload_opts", workload_opts),
                         ("target_opts", target_opts)):
        if pairs:
            spec[field] = {**(spec.get(field) or {}), **_key_values(field, pairs)}
    if serializable:
        spec["target_opts"] = {**(spec.get("target_opts") or {}), "serializable": True}
    spec = resolve_spec(spec, where=spec_file or "command line")
    if spec["backend"] == "local":
        # Namespaces need root or a user namespace; remote backends need this network.
        _reexec_unprivileged()
    from .run import run_test
    progress = _progress(spec)
    try:
        outcome = run_test(spec, progress=progress)
    except BaseException:
        if progress:
            progress.close(summary=False)
        raise
    if progress:
        progress.close()
    _print_summary(outcome.results, outcome.run_dir)
    if outcome.results.get("aborted"):
        raise UserError(f"{outcome.results['aborted']}: what was recorded is in {outcome.run_dir}")
    sys.exit(outcome.exit_code)


def _key_values(field: str, pairs: tuple[str, ...]) -> dict:
    """KEY=VALUE flags, each VALUE read as YAML (numbers, lists, booleans)."""
    import yaml
    out = {}
    flag = "--" + field[:-1].replace("_", "-")
    for pair in pairs:
        key, eq, text = pair.partition("=")
        if not eq or not key.strip():
            raise SpecError(f"{flag} {pair!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise SpecError(f"{flag} {pair!r}: VALUE is not valid YAML") from None
    return out


def _reexec_unprivileged():
    if os.geteuid() == 0:
        return
    # userns.py also runs as a plain script (no project on its path), so its error is not
    # a core.errors class: it becomes one here.
    from .control.userns import UserNamespaceError, reexec_in_userns_if_needed
    try:
        reexec_in_userns_if_needed([sys.executable, "-m", "harness.cli", *sys.argv[1:]])
    except UserNamespaceError as e:
        raise SetupError(str(e)) from None


def _progress(spec):
    try:
        from .progress import Progress
    except ImportError:
        return None
    return Progress(spec, stream=sys.stderr)


# --------------------------------------------------------------------- analyze

@cli.command()
@click.argument("run_dir", type=str)
def analyze(run_dir):
    """Re-run the checkers on a stored run's history (no cluster needed)."""
    if not os.path.isdir(run_dir):
        raise UserError(f"{run_dir}: not a directory (give a run directory, e.g. store/latest)")
    # The stored history is re-checked without the target: it may not even be installed.
    spec = load_spec(os.path.join(run_dir, "spec.yaml"), check_target=False)
    from .plugins import make_workload
    from .run import _write_report, check_history, stored_history
    from .store import write_results
    history = stored_history(run_dir)
    try:
        results = check_history(history, make_workload(spec).checkers, run_dir)
    except Exception as e:
        if not isinstance(e, UserError):  # the run's own log takes the traceback
            e.log_path = os.path.join(run_dir, "tectonic.log")
        raise
    results["run_dir"] = run_dir
    results["seed"] = spec["seed"]
    write_results(run_dir, results)
    _write_report(run_dir)
    _print_summary(results, run_dir)
    sys.exit(_verdict_exit(results["valid"]))


# ----------------------------------------------------------------------- check

@cli.command()
@click.argument("file", type=str)
@click.option("--model", help="Linearizability model: register, cas-register, kv, multi-register, set, mutex, queue, fifo-queue.")
@click.option("--initial", help="The model's initial state (JSON, e.g. 0 or null).")
@click.option("--nil-read", type=click.Choice(["absent", "unknown"]), help="absent: nil is read only before the first write (Porcupine); unknown: a nil read is always legal (Knossos).")
@click.option("--independent/--single", default=None, help="Split [key, value] tuples by key (default: on when values look keyed).")
@click.option("--workload", help="Transactional check instead: list-append or rw-register.")
@click.option("--models", default="strict-serializable", show_default=True, help="Consistency models for --workload (comma-separated).")
@click.option("--out", "out_dir", help="Directory for explanations (linear/, elle/).")
@click.option("--time-limit", type=float, default=300.0, show_default=True, help="Seconds before the verdict is unknown.")
@click.option("--failures", type=click.Choice(["all", "first"]), default="all", show_default=True, help="Linearizability: find and explain every failing key, or stop at the first one (quicker).")
def check(file, model, initial, nil_read, independent, workload, models, out_dir, time_limit, failures):
    """Check a history file (history.jsonl, Jepsen history.edn, Jepsen/Porcupine log)."""
    if bool(model) == bool(workload):
        raise UserError("give exactly one of --model (linearizability) or --workload (transactions)")
    if not math.isfinite(time_limit) or time_limit <= 0:
        raise UserError(f"--time-limit must be a positive number of seconds, got {time_limit}")
    if workload and not model:
        _check_transactions(file, workload, models, out_dir, time_limit)
    history = load_history(file)
    validate(history)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    if model:
        from checkers.linearizable import LinearizableChecker, explain_text
        kwargs = {"time_limit": time_limit, "failures": failures}
        if initial is not None:
            try:
                kwargs["initial"] = json.loads(initial)
            except json.JSONDecodeError:
                raise UserError(f"--initial: not JSON: {initial!r} (e.g. 0, null, '{{\"x\": 0}}')") from None
        if nil_read:
            kwargs["nil_read"] = nil_read
        if independent is None:
            independent = _looks_keyed(history)
        kwargs["independent"] = independent
        try:
            checker = LinearizableChecker(model, **kwargs)
        except ValueError as e:  # the flags describe a model that cannot exist
            raise UserError(f"--model {model}: {e}") from None
        result = checker.check(history, {"out_dir": out_dir})
        click.echo(explain_text(result))
    sys.exit(_verdict_exit(result["valid"]))


def _check_transactions(file, workload, models, out_dir, time_limit) -> None:
    """`tectonic check --workload`: the file goes to Elle's check_path, which streams a
    list-append history.jsonl into columns (a million transactions in a few hundred MB)
    and loads and validates anything else. Exits with the verdict."""
    from checkers.elle import ElleChecker
    from checkers.elle.checker import check_path
    if workload not in ("list-append", "rw-register"):
        raise UserError(f"--workload: must be list-append or rw-register, got {workload!r}")
    ms = [m.strip() for m in models.split(",") if m.strip()]
    try:
        ElleChecker(workload, consistency_models=ms, time_limit=time_limit)
    except ValueError as e:
        raise UserError(f"--models: {e}") from None
    if not os.path.isfile(file):
        load_history(file)  # its one-line error: no such file, or a directory
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    try:
        result = check_path(file, workload, consistency_models=ms, time_limit=time_limit,
                            out_dir=out_dir)
    except HistoryError:
        raise
    except ValueError as e:  # a history the checker cannot read as transactions
        raise UserError(f"{file}: {e}") from None
    click.echo(_elle_summary(result))
    sys.exit(_verdict_exit(result["valid"]))


def _looks_keyed(history) -> bool:
    """Jepsen's independent tuples: every client op's value is [key, v] with a key that
    is not itself a list (a cas value [from, to] would otherwise look like a tuple)."""
    vals = [op.get("value") for op in history if op.get("process") != "nemesis" and op.get("type") == "invoke"]
    if not vals:
        return False
    if not all(isinstance(v, list) and len(v) == 2 and not isinstance(v[0], list) for v in vals):
        return False
    # (an op of a malformed history may have any f: the checker names it, not this guess)
    cas = [op.get("value") for op in history if op.get("f") == "cas" and op.get("type") == "invoke"]
    return all(isinstance(v, list) and len(v) == 2 and isinstance(v[1], list) for v in cas)


def _elle_summary(result: dict) -> str:
    lines = [f"valid: {result['valid']}"]
    if result.get("anomaly-types"):
        lines.append("anomalies: " + ", ".join(result["anomaly-types"]))
    if result.get("not"):
        lines.append("not: " + ", ".join(result["not"]))
    for name, text in (result.get("explanations") or {}).items():
        lines.append(f"\n{name}:\n{text}")
    return "\n".join(lines)


# ---------------------------------------------------------- campaign / serve / clean

@cli.command()
@click.argument("file", type=str)
@click.option("--store", help="Results directory (default: the campaign's, else ./store).")
@click.option("--parallel", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tests at once on this machine, each with its own cluster and subnet.")
@click.option("--dask", "dask_address", metavar="tcp://HOST:PORT",
              help="Run each test as a task on the Dask cluster with this scheduler.")
@click.option("--shared-store", is_flag=True,
              help="--dask: the workers see --store at the same path; else runs are shipped back.")
def campaign(file, store, parallel, dask_address, shared_store):
    """Run a matrix of tests with expected verdicts (regression testing)."""
    from .campaign import load_campaign, run_campaign
    from .campaign_exec import DaskExecutor, PoolExecutor, SerialExecutor
    if dask_address is not None and parallel != 1:
        raise UserError("campaign: give --parallel or --dask, not both (Dask workers decide "
                        "their own parallelism with --nthreads)")
    if shared_store and dask_address is None:
        raise UserError("campaign: --shared-store is for --dask")
    if dask_address is not None and not re.fullmatch(r"(tcp|tls)://[^\s/:]+:\d+", dask_address):
        raise UserError(f"campaign: --dask must look like tcp://HOST:PORT, got {dask_address!r}")
    loaded = load_campaign(file, store)  # a malformed campaign is reported before anything starts
    if dask_address is not None:
        if shared_store and not os.path.isabs(loaded.store):
            raise UserError(f"campaign: --shared-store needs an absolute --store path (the workers' "
                            f"working directories differ), got {loaded.store!r}")
        executor = DaskExecutor(dask_address, shared_store=shared_store)
    else:
        _reexec_unprivileged()
        executor = PoolExecutor(parallel) if parallel > 1 else SerialExecutor()
    sys.exit(run_campaign(file, store=store, executor=executor))


@cli.command()
@click.option("--store", default="store", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--allow-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A host name browsers may use to reach the server (IP addresses and localhost "
                   "always work; other names are refused against DNS rebinding). Repeatable.")
def serve(store, host, port, allowed_hosts):
    """Browse stored runs in a web page."""
    from .serve import serve as serve_store
    try:
        serve_store(store, host=host, port=port, allowed_hosts=tuple(allowed_hosts))
    except (ValueError, OSError) as e:  # no such store, port taken
        raise UserError(f"serve: {e}") from None


# ----------------------------------------------------- what can be plugged in

@cli.command()
@click.argument("name", required=False)
def targets(name):
    """List the targets (built in and plugged in), one line each; with NAME, its options."""
    from .plugins import describe_target, target_names
    for target in [name] if name else target_names():
        line, options = describe_target(target)
        click.echo(line)
        for option in options if name else []:
            click.echo(f"  {option}")


@cli.command()
def workloads():
    """List the workloads (built in and plugged in), one line each, with what they need."""
    from .plugins import describe_workload, workload_names
    for name in workload_names():
        click.echo(describe_workload(name))


@cli.command()
def models():
    """List the linearizability models `tectonic check --model` takes."""
    from checkers.linearizable.models import model_names
    for name in model_names():
        click.echo(name)


@cli.command()
@click.option("--force", is_flag=True, help="Also remove what running tests hold (they will fail).")
def clean(force):
    """Remove namespaces, links, rules, processes and work dirs left by dead tests.

    A running test's resources are left alone (each test records its controller's pid and
    start time); --force removes them too."""
    from .control.clean import clean as do_clean, live_tests
    kept = [] if force else live_tests()
    removed = do_clean(force=force)
    for line in removed:
        click.echo(f"removed {line}")
    for line in kept:
        click.echo(f"kept {line}: it is running (--force removes it)")
    if not removed and not kept:
        click.echo("nothing to clean")


# ------------------------------------------------------------------- output

def _print_summary(results: dict, run_dir: str) -> None:
    valid = results.get("valid")
    word = {True: "VALID", False: "INVALID"}.get(valid, "UNKNOWN")
    if results.get("aborted"):
        word = "ABORTED"
    elif results.get("interrupted"):
        word = f"INTERRUPTED (what was recorded is {word})"
    click.echo(f"\n{word}  ({run_dir})")
    for name, r in (results.get("checkers") or {}).items():
        line = f"  {name}: {r.get('valid')}"
        if r.get("anomaly-types"):
            line += " — " + ", ".join(r["anomaly-types"])
        if r.get("error"):
            line += f" — {r['error']}"
        click.echo(line)
        if r.get("valid") is False and r.get("explanation"):
            for text_line in str(r["explanation"]).splitlines()[:20]:
                click.echo(f"    {text_line}")
    if os.path.exists(os.path.join(run_dir, "report.html")):
        click.echo(f"  report: {os.path.join(run_dir, 'report.html')}")
    spec = os.path.join(run_dir, "spec.yaml")
    click.echo(f"  repeat: tectonic test --spec {spec}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: map every way of failing to its exit code and one line on stderr.

    User errors (core.errors.UserError, bad flags) exit 254 with their message. Anything
    else is a bug in tectonic: exit 255, one line naming the log that holds the traceback
    (the run's tectonic.log, or a fresh file when there is no run); TECTONIC_DEBUG=1 also
    prints the traceback."""
    # The controller's log records go to the run's tectonic.log only; without this, a record
    # logged outside a run would reach stderr through logging's last-resort handler.
    logging.getLogger("tectonic").addHandler(logging.NullHandler())
    try:
        cli.main(args=argv, prog_name="tectonic", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("tectonic: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:  # usage errors: bad flag, missing argument
        click.echo(f"tectonic: {_one_line(e.format_message())}", err=True)
        sys.exit(BAD_INPUT)
    except UserError as e:
        click.echo(f"tectonic: {_one_line(str(e))}", err=True)
        sys.exit(BAD_INPUT)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - an internal error: one line, details in the log
        import traceback
        path = _write_traceback(getattr(e, "log_path", None), traceback.format_exc())
        click.echo(f"tectonic: internal error: {_one_line(f'{type(e).__name__}: {e}')} "
                   f"(a bug in tectonic; traceback in {path})", err=True)
        if os.environ.get("TECTONIC_DEBUG"):
            traceback.print_exc()
        sys.exit(INTERNAL)


def _one_line(text: str) -> str:
    """A message as one line: its lines joined, so a log tail never spills over stderr."""
    return " | ".join(line.strip() for line in text.splitlines() if line.strip()) or text


def _write_traceback(log_path: str | None, text: str) -> str:
    """Append the traceback to the run's log, or to a fresh file when there is no run."""
    import tempfile
    if log_path is None:
        fd, log_path = tempfile.mkstemp(prefix="tectonic-internal-error-", suffix=".log")
        os.close(fd)
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(f"internal error:\n{text}")
    return log_path


if __name__ == "__main__":
    main()
