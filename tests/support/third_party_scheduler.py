"""A third-party batch-scheduler plugin, as an outside author writes it from the docs: "spool", whose
"scheduler" (``spoolq.py``) runs each array element as a local background process.

Written into a throw-away site directory and installed through a real ``hsm`` entry point
(:func:`install`). Core knows nothing of it but its record: the options live in ``compute.spool``
(validated by its schema), ``hpc.system: spool`` selects it, its worker script does not export the
``HSM_JOB_*`` variables (so a worker learns its job through the record's ``job_from_env``), and its
cancel command is its own.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

#: The scheduler: ``spoolq.py submit SCRIPT | query ID... | cancel ID... | ping | list``; state
#: files ``<SPOOL_DIR>/<job>_<index>.state`` hold ``Q``, ``R <pid>``, ``C <exit code>`` or ``X``.
SPOOLQ = r'''
import os, re, signal, subprocess, sys
from pathlib import Path

STATE = Path(os.environ["SPOOL_DIR"])


def put(key, text):
    tmp = STATE / f".{key}.{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, STATE / f"{key}.state")


def get(key):
    try:
        return (STATE / f"{key}.state").read_text().split()
    except FileNotFoundError:
        return []


def next_id():
    n = 100
    while True:
        n += 1
        try:
            os.close(os.open(STATE / f"job-{n}", os.O_CREAT | os.O_EXCL))
            return n
        except FileExistsError:
            continue


def submit(script):
    text = Path(script).read_text()
    size = int(re.search(r"^#SPOOL --array=0-(\d+)$", text, re.M).group(1)) + 1
    out = Path(re.search(r"^#SPOOL --output=(\S+)$", text, re.M).group(1))
    out.mkdir(parents=True, exist_ok=True)
    STATE.mkdir(parents=True, exist_ok=True)
    job = next_id()
    for i in range(size):
        key = f"{job}_{i}"
        put(key, "Q")
        env = {**os.environ, "SPOOL_JOB_ID": str(job), "SPOOL_ARRAY_INDEX": str(i), "SPOOL_ELEMENT_ID": key}
        with open(out / f"spool-{key}.out", "ab") as log:
            subprocess.Popen([sys.executable, __file__, "run", key, os.path.abspath(script)], env=env, stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    print(job)


def run(key, script):
    put(key, f"R {os.getpid()}")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # cancel signals the element's group: the script decides
    rc = subprocess.call(["bash", script], preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    if get(key)[:1] != ["X"]:
        put(key, f"C {rc}")


def keys(ids):
    for p in sorted(STATE.glob("*.state")):
        key = p.name[: -len(".state")]
        if key in ids or key.split("_")[0] in ids:
            yield key


def query(ids):
    for key in keys(ids):
        state = get(key)
        if state[:1] == ["R"]:
            try:
                os.kill(int(state[1]), 0)
            except ProcessLookupError:
                state = ["C", "-1"]
        print(key, " ".join(state))


def cancel(ids):
    for key in list(keys(ids)):
        state = get(key)
        put(key, "X")
        if state[:1] == ["R"]:
            try:
                os.killpg(int(state[1]), signal.SIGTERM)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "submit":
        submit(args[0])
    elif cmd == "run":
        run(*args)
    elif cmd == "query":
        query(args)
    elif cmd == "cancel":
        cancel(args)
    elif cmd in ("ping", "list"):
        STATE.mkdir(parents=True, exist_ok=True)
        print("spool ok")
'''

#: The entry-point module: records only (cheap to import).
PLUGIN = '''
from hsm_core.plugin import ComputeSourceRecord, hookimpl


def spool_job(environ):
    """A spool element's own variables, under hsm's names."""
    key = environ.get("SPOOL_ELEMENT_ID")
    if not key:
        return None
    return {"HSM_JOB_ID": key, "HSM_JOB_KEY": "spool:" + key, "HSM_ARRAY_INDEX": environ["SPOOL_ARRAY_INDEX"]}


@hookimpl
def hsm_register_compute_sources():
    return [ComputeSourceRecord(
        "spool", "array elements as local processes (a test scheduler)", "hsm_spool_impl:SpoolSource",
        config_schema={
            "type": "object",
            "properties": {"spool_dir": {"type": "string", "description": "where spoolq keeps its queue"}},
        },
        batch_scheduler=True,
        job_from_env=spool_job,
    )]
'''

#: The source, on hsm's array-job toolkit.
IMPL = '''
import os, sys
from pathlib import Path

from hsm_core.plugin import ArrayJobSource, JobInfo, QueryFailed, QueueState, script_body

SPOOLQ = str(Path(__file__).with_name("spoolq.py"))
STATES = {"Q": QueueState.PENDING, "R": QueueState.RUNNING, "X": QueueState.CANCELLED}


class SpoolSource(ArrayJobSource):
    scheduler_name = "Spool"
    directive_prefix = "#SPOOL"
    cancel_command = (sys.executable, SPOOLQ, "cancel")
    script_suffix = ".spool"

    def __init__(self, name, options, context):
        super().__init__(name, options, context)
        self.env = {**self.env, "SPOOL_DIR": str(self.options["spool_dir"])}

    def _directives(self, job):
        return ["#!/bin/bash", f"#SPOOL --array=0-{job.size - 1}", f"#SPOOL --output={job.log_dir}", ""]

    def render_script(self, job):
        export = 'export HSM_ARRAY_INDEX="$SPOOL_ARRAY_INDEX" HSM_JOB_ID="$SPOOL_ELEMENT_ID"'
        return "\\n".join([*self._directives(job), *script_body(job, index_expr="$HSM_ARRAY_INDEX", header=[export])]) + "\\n"

    def render_worker_script(self, job):
        return "\\n".join([*self._directives(job), *script_body(job)]) + "\\n"

    def submit_argv(self, script_name, job):
        return [sys.executable, SPOOLQ, "submit", script_name]

    def parse_job_id(self, stdout):
        last = stdout.strip().splitlines()[-1:]
        if not last or not last[0].isdigit():
            raise ValueError(stdout)
        return last[0]

    def element_keys(self, job_id, index):
        return [f"{job_id}_{index}"]

    def query(self, ids):
        res = self.run([sys.executable, SPOOLQ, "query", *ids], timeout=60)
        if res.returncode != 0:
            raise QueryFailed(res.stderr)
        out = {}
        for line in res.stdout.splitlines():
            key, letter, *rest = line.split()
            state = STATES.get(letter) or (QueueState.COMPLETED if rest == ["0"] else QueueState.FAILED)
            out[key] = JobInfo(state, line)
        return out

    def health_argv(self):
        return [sys.executable, SPOOLQ, "ping"]

    def queue_argv(self):
        return [sys.executable, SPOOLQ, "list"]
'''


def install(site: Path, make_dist) -> None:
    """Install the spool plugin into ``site`` (on PYTHONPATH) with a real ``hsm`` entry point."""
    make_dist(site, "hsm-plugin-spool", "spool", "hsm_spool_plugin", PLUGIN)
    (site / "hsm_spool_impl.py").write_text(textwrap.dedent(IMPL))
    (site / "spoolq.py").write_text(SPOOLQ)
