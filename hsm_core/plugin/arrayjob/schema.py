"""The options every array-job source understands (part of the array-job toolkit of
:mod:`hsm_core.plugin`). A scheduler plugin's schema extends :data:`COMMON_SCHEMA` with its own keys."""

from __future__ import annotations

from typing import Any

__all__ = ["COMMON_SCHEMA"]

#: JSON Schema of the options every ArrayJobSource understands (plugins add their own keys).
COMMON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "system": {"type": "string", "description": "the batch scheduler: an installed scheduler plugin's name, or auto"},
        "host": {"type": "string", "description": "login node to submit from (a distributed.remotes name); omit for this machine"},
        "project_dir": {"type": "string", "description": "project root on the login node's file system (with host:)"},
        "python_interpreter": {"type": "string", "description": "Python on the cluster (with host:)"},
        "runner": {"type": "string", "description": "command starting the task runner on the compute nodes (default: this Python -m hsm_core.runner)"},
        "walltime": {"type": ["string", "integer"], "description": "HH:MM:SS (or minutes)"},
        "default_walltime": {"type": ["string", "integer"]},
        "resources": {"type": "string", "description": "resource string, e.g. select=1:ncpus=4:mem=16gb"},
        "default_resources": {"type": "string"},
        "cpus": {"type": "integer", "minimum": 1, "description": "CPUs per task"},
        "memory": {"type": ["string", "integer"], "description": "memory per task, e.g. 16gb (integer: MB)"},
        "gpus": {"type": ["integer", "string"], "minimum": 0, "pattern": "^([A-Za-z0-9_.+-]+:)?[0-9]+$",
                 "description": "GPUs per task: N, or TYPE:N for a GPU type (a100:2)"},
        "gpus_per_task": {"type": "integer", "minimum": 1, "description": "GPUs per process of a multi-process task (where the scheduler has it)"},
        "memory_per_cpu": {"type": ["string", "integer"], "description": "memory per CPU, e.g. 4G (instead of memory)"},
        "exclusive": {"type": "boolean", "description": "whole nodes, shared with no other job"},
        "constraint": {"type": "string", "description": "node features, e.g. a100 or a100&ib"},
        "reservation": {"type": "string", "description": "run in this reservation"},
        "mail_user": {"type": "string", "description": "address of the scheduler's mails"},
        "mail_type": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                      "description": "mail on: begin, end, fail, all, none, requeue, time_limit (as the scheduler has them)",
                      "x-message": "expected a mail type or a list of them: begin, end, fail, all, none, requeue, time_limit"},
        "per_task_resources": {
            "type": "array",
            "description": "rules giving some tasks other resources: [{when: {PARAM: VALUE or [VALUES]}, walltime: 4h, ...}]",
            "items": {"type": "object", "required": ["when"], "properties": {"when": {"type": "object", "minProperties": 1}}},
        },
        "nodes": {"type": "integer", "minimum": 1, "description": "nodes per task"},
        "partition": {"type": "string"},
        "default_partition": {"type": "string"},
        "queue": {"type": "string"},
        "default_queue": {"type": "string"},
        "account": {"type": "string"},
        "qos": {"type": "string"},
        "array_parallelism": {"type": "integer", "minimum": 1, "description": "at most N array elements of the sweep run at once, over all its array jobs"},
        "signal_before_walltime": {"type": ["integer", "string", "boolean"], "description": "seconds before the walltime at which tasks get SIGUSR1 (default 60; off: none)"},
        "max_array_size": {"type": "integer", "minimum": 1, "description": "tasks per array job (default: the scheduler's limit)"},
        "max_parallel_jobs": {"type": "integer", "minimum": 1, "description": "tasks hsm keeps queued or running on this source"},
        "tasks_per_element": {"type": "integer", "minimum": 1, "description": "run N tasks one after the other in each array element (many short tasks)"},
        "setup_commands": {"type": "array", "items": {"type": "string"}, "description": "shell lines run before each task (module load, conda activate)"},
        "extra_directives": {
            "anyOf": [{"type": "array", "items": {"type": "string"}},
                      {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}],
            "x-message": "expected a list of directives, or {SCHEDULER: [...], ...}",
            "description": "raw directives: a list (this scheduler's, or every scheduler's in hpc:), or "
                           "{SCHEDULER: [...], ...} (each scheduler reads its own list only)",
        },
        "skip_directives": {"type": "array", "items": {"type": "string"}, "description": "generated directive lines containing one of these are left out"},
        "requeue": {"type": "boolean", "description": "let the scheduler requeue tasks on node failure or preemption"},
        "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "environment for the scheduler's commands (e.g. where its configuration file is)"},
        "job_name": {"type": "string", "description": "job name prefix (default hsm_<sweep_id>)"},
        "poll_interval": {"type": "number", "minimum": 0.1, "description": "seconds between checks of the task files"},
        "poll_interval_max": {"type": "number", "minimum": 1, "description": "cap of the backoff between scheduler queries"},
        "submit_retries": {"type": "integer", "minimum": 0, "description": "retries of a transient submission failure"},
    },
}


