"""hsm's configuration files: loading and validating them, with errors that name file, line and key.

Two files are configuration: the project's ``hsm_config.yaml`` (over the site, user and
``HSM_CONFIG`` layers) and sweep files. Every problem is one
:class:`~hsm_core.errors.ConfigError` line such as::

    hsm_config.yaml:12: compute.health_chek_interval: unknown key 'health_chek_interval', did you mean 'health_check_interval'?

One concern per module, each importing only the ones listed before it:

=================  =============================================================================
``lines``          :class:`LineDict`/:class:`LineList` (values that know their file and line),
                   ``line_of``, ``key_path``, ``display_path``: how a message points at a value
``project_root``   where the project is: ``resolve_project_root`` (the one resolver of
                   ``--project-dir`` and the current directory), ``find_config_file``
``yaml_io``        ``load_yaml`` (safe, lines kept, YAML 1.2 numbers), ``dump_yaml``, ``yaml_inline``,
                   ``parse_value``
``layers``         the site, user and ``HSM_CONFIG`` layers below the project's file, and merging
``schema``         the core JSON Schemas plus the installed plugins' fragments: ``build_schema``
``validate``       ``validate`` (one-line errors with "did you mean"), near-miss keys
``installed``      what a config names against the installed plugins (``unprovided_sources``)
``project_config`` ``load_project_config`` -> :class:`ProjectConfig`
``sweep_file``     ``load_sweep_file``: a sweep file validated and normalised to the v2 form
``editing``        ``set_config_value`` (``hsm config set``): validated, comments kept, atomic
=================  =============================================================================

Import a name from the module that owns it (``from hsm_core.config.project_config import
load_project_config``); this package re-exports nothing, so that importing one module does not
load the others. Plugins use none of these directly: they reach the project through
:mod:`hsm_core.plugin` (``locate_project``, ``set_project_setting``).
"""
