"""JSON Schema of one ``distributed.remotes.NAME`` entry (merged into ``hsm config schema``)."""

from __future__ import annotations

from typing import Any

REMOTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "host": {"type": "string", "description": "host name, address or ~/.ssh/config alias"},
        "user": {"type": "string", "description": "login name (default: ~/.ssh/config, else yours)"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "SSH port (default 22)"},
        "ssh_key": {"type": "string", "description": "private key file (v1 name; same as key)"},
        "key": {"type": "string", "description": "private key file (default: ~/.ssh/config IdentityFile, agent, ~/.ssh/id_*)"},
        "known_hosts": {"type": "string", "description": "extra known_hosts file, read with ~/.ssh/known_hosts; --trust-host-key writes here"},
        "ssh_config": {"type": "string", "description": "OpenSSH client config to read (default ~/.ssh/config)"},
        "proxy_jump": {"type": "string", "description": "jump host(s) as for ssh -J: [user@]host[:port][,...]"},
        "connect_timeout": {"type": "number", "exclusiveMinimum": 0, "description": "seconds to wait for a connection (default 15)"},
        "compression": {"type": "boolean", "description": "compress the SSH stream"},
        "max_parallel_jobs": {"type": "integer", "minimum": 1, "description": "tasks at once (default: the remote's CPU count)"},
        "project_dir": {"type": "string", "description": "project root on the remote (default: same path relative to $HOME, else the same absolute path)"},
        "python_interpreter": {"type": "string", "description": "Python on the remote (default: the remote hsm_config.yaml's, else python3)"},
        "gpus": {"type": "array", "items": {"type": ["integer", "string"]}, "description": "GPU ids to share out"},
        "gpus_per_task": {"type": "integer", "minimum": 1, "description": "GPUs per task (default 1 when gpus set)"},
        "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                "description": "extra environment variables for tasks on this remote"},
        "lost_after": {"type": "number", "minimum": 0,
                       "description": "seconds a host may stay unreachable before its running tasks are run elsewhere (default 600)"},
        "poll_interval": {"type": "number", "exclusiveMinimum": 0, "description": "longest wait between status polls (default 5; polls come sooner after a change)"},
        "kill_grace": {"type": "number", "minimum": 0, "description": "seconds between SIGTERM and SIGKILL on cancel (default 10)"},
        "transfer": {"type": "string", "enum": ["auto", "rsync", "sftp"],
                     "description": "how task dirs are copied: rsync over ssh when both sides have it (auto), or SFTP"},
    },
}
