"""hsm-plugin-ssh: run sweep tasks on remote hosts over SSH (paramiko).

* ``--sources ssh:NAME[:N]`` (v1: ``hsm sweep --mode remote --remote NAME``): tasks run under the
  core task runner on the remote host, detached from the SSH session; results come back as tasks
  finish.
* The ``ssh`` host provider: other plugins (Slurm, PBS) submit on a remote login node through
  ``hsm_core.hosts.get_host(name, project_config)``.
* ``hsm remote add/list/test/health/sync``, ``hsm collect-results``, ``hsm test ssh:NAME``.
* Project sync verification before a run (``--no-verify-sync`` skips it) and
  ``hsm config validate --check-sync`` (:func:`hsm_plugin_ssh.sync_check.check_all`).

paramiko is imported only by the modules that open connections, never at plugin load.
"""

__version__ = "0.1.0"
