"""The toolkit for array-job schedulers (part of :mod:`hsm_core.plugin`).

Shared machinery for batch-scheduler compute sources (Slurm, PBS Pro, Torque ...): the Slurm and PBS
plugins build on it, and a plugin for another scheduler (LSF, SGE, HTCondor ...) needs only to fill
in what differs. One concern per module:

* :mod:`.resources`: :class:`Resources` in one generic vocabulary, read from the source's options
  (:func:`resources_from_options`), walltime and memory parsing and formatting.
* :mod:`.directives`: text made safe for directive lines (:func:`check_name`, :func:`check_line`)
  and the two escape hatches of dask-jobqueue (:func:`finish_directives`).
* :mod:`.script`: :class:`ArrayJob`, the input of a plugin's *pure* render function, the lines
  every script shares (:func:`script_body`) and array chunking (:func:`chunk_ranges`).
* :mod:`.states`: :class:`QueueState` and :func:`resolve_task_state`: what a task's
  ``status.yaml`` and the scheduler's view together mean.
* :mod:`.schema`: :data:`COMMON_SCHEMA`, the options every array-job source understands.
* :mod:`.source`: :class:`ArrayJobSource`, the compute source; a subclass implements the
  scheduler's commands: :meth:`~ArrayJobSource.render_script`, :meth:`~ArrayJobSource.submit_argv`,
  :meth:`~ArrayJobSource.parse_job_id`, :meth:`~ArrayJobSource.query`,
  :meth:`~ArrayJobSource.cancel_argv` and a few optional ones. It is a thin composition of:
* :mod:`.jobfiles`: the list file and job script of each chunk, built from the source's options;
* :mod:`.submission`: chunking, submission with retries, all or nothing per launch;
* :mod:`.manifest`: :class:`SubmittedChunk` and ``jobs.jsonl``, and ``submitted`` written into
  each task's status before its job is submitted (put back if the scheduler refuses it);
* :mod:`.staging`: the sweep's files on a login node's file system (``host:``);
* :mod:`.watcher`: the tasks followed and their polling (one query per poll, with backoff; the
  scheduler's accounting for jobs the queue forgot);
* :mod:`.final_status`: the end of a task the runner could not record, written from a verdict.

Plugins import these names from :mod:`hsm_core.plugin`, not from here; this package imports none of
its modules itself, so that a plugin asking for :data:`COMMON_SCHEMA` (every ``hsm`` command, as
plugins register) does not load :class:`ArrayJobSource`.
"""
