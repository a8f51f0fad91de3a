"""The ``hsm`` group loads a command's module only when that command runs.

Loading every command means importing every command module, building the plugin registry and
running every plugin's ``hsm_register_commands``: most of the time of ``hsm --help`` and a good part
of ``hsm status``. What that loading yields — each top-level command's name, its help line, the
core module that adds it, and whether a plugin adds or extends it — depends only on the installed
plugins and on the files of the modules involved, so it is kept in hsm's user cache (the command
index, :mod:`hsm_core.user_cache`), keyed by:

* hsm's version, ``HSM_DISABLE_PLUGINS`` and ``HSM_LOAD_PLUGINS``;
* the installed ``hsm`` entry points (:mod:`hsm_core.entry_points`, itself keyed by a fingerprint
  of ``sys.path`` and the installed distributions);
* inode, size and modification time of every module file that defined or registered a command
  (core's command modules and the plugins').

With a valid index, ``hsm --help`` lists the commands from it (plugins' commands included) and
``hsm status`` imports ``status_cmd`` alone. Everything else loads all commands as before and
writes the index: a missing or stale index, a command a plugin adds or extends (``hsm remote``,
``hsm sync`` with the W&B plugin's ``prune``), ``hsm plugins`` (it lists core's commands plugin).
When a plugin fails to load or to add its commands, no index is written, so its warning is printed
by every command, as without the index.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

import click

from hsm_core import __version__

#: Commands that always load every command (they report on all of them).
LOAD_ALL_FOR: frozenset[str] = frozenset({"plugins"})

_CORE_PLUGIN = "core.commands"


def _tree(group: click.Group) -> dict[tuple[str, ...], int]:
    """Every command under ``group`` by its path of names -> identity, to see what a plugin changed."""
    out: dict[tuple[str, ...], int] = {}

    def walk(g: click.Group, prefix: tuple[str, ...]) -> None:
        for name, command in g.commands.items():
            out[prefix + (name,)] = id(command)
            if isinstance(command, click.Group):
                walk(command, prefix + (name,))

    walk(group, ())
    return out


def _module_file(module: str | None) -> str | None:
    mod = sys.modules.get(module or "")
    return getattr(mod, "__file__", None)


def _help_of(command: click.Command) -> dict[str, Any]:
    """What ``hsm --help`` shows of a command (enough to list it without loading it)."""
    deprecated = getattr(command, "deprecated", False)
    return {
        "help": command.help,
        "short_help": command.short_help,
        "hidden": bool(command.hidden),
        "deprecated": deprecated if isinstance(deprecated, (bool, str)) else bool(deprecated),
    }


class LazyCommandGroup(click.Group):
    """A click group whose commands come from core's command modules and from plugins, each loaded
    when first needed; :meth:`load_all` loads them all (what ``build_cli`` does for tests)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._all_loaded = False
        self._index: dict[str, Any] | None = None
        self._index_checked = False
        self._listing = False  # True while formatting the help: unloaded commands are listed from the index

    # ---- the index ------------------------------------------------------------------------------

    @staticmethod
    def _index_key() -> list[Any]:
        from hsm_core.entry_points import plugin_entry_points

        eps = [[ep.name, ep.value, ep.distribution, ep.version] for ep in plugin_entry_points()]
        return [__version__, os.environ.get("HSM_DISABLE_PLUGINS"), os.environ.get("HSM_LOAD_PLUGINS"), eps]

    def _read_index(self) -> dict[str, Any] | None:
        """The command index, if it is still valid (see the module's docstring)."""
        if self._index_checked:
            return self._index
        self._index_checked = True
        from hsm_core.user_cache import file_stamp, read_answer, user_cache_file

        path = user_cache_file("commands")
        if path is None:
            return None
        index = read_answer(path, self._index_key())
        if not isinstance(index, dict) or not isinstance(index.get("commands"), dict):
            return None
        files = index.get("files")
        if not isinstance(files, dict) or any(file_stamp(f) != stamp for f, stamp in files.items()):
            return None
        self._index = index
        return index

    def _write_index(self, owners: dict[str, str], touched: dict[str, str], files: set[str]) -> None:
        from hsm_core.user_cache import file_stamp, user_cache_file, write_answer

        commands = {}
        for name, command in self.commands.items():
            entry = _help_of(command)
            entry["module"] = owners.get(name)
            entry["plugin"] = touched.get(name)
            commands[name] = entry
        for command in self._walk():
            files.add(_module_file(getattr(command.callback, "__module__", None)) or "")
            files.add(_module_file(type(command).__module__) or "")
        files.discard("")
        stamps = {f: file_stamp(f) for f in sorted(files)}
        write_answer(user_cache_file("commands"), self._index_key(), {"commands": commands, "files": stamps})

    def _walk(self) -> list[click.Command]:
        out: list[click.Command] = []

        def walk(g: click.Group) -> None:
            for command in g.commands.values():
                out.append(command)
                if isinstance(command, click.Group):
                    walk(command)

        walk(self)
        return out

    # ---- loading --------------------------------------------------------------------------------

    def load_all(self) -> None:
        """Add every plugin's commands (built-ins included), once, and write the command index."""
        if self._all_loaded:
            return
        self._all_loaded = True
        from hsm_core.cli import commands as core_commands
        from hsm_core.cli.completion_cmd import add_value_completion
        from hsm_core.registry import get_registry

        registry = get_registry()
        registry.add_builtin(core_commands, _CORE_PLUGIN)
        # Core's commands first (plugins extend its groups: the wandb plugin adds `hsm sync prune`),
        # then each plugin's in the order they were loaded.
        impls = sorted(registry.pm.hook.hsm_register_commands.get_hookimpls(), key=lambda i: not i.plugin_name.startswith("core."))
        touched: dict[str, str] = {}  # top-level name -> the plugin that added or changed it
        files = {core_commands.__file__ or ""}
        failed = False
        for impl in impls:
            before = _tree(self)
            # One plugin's broken commands must not take `hsm --help` down with it.
            try:
                impl.function(cli=self)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # SystemExit too: a plugin must not end `hsm --help`
                if impl.plugin_name.startswith("core."):
                    raise  # a broken built-in command is a bug in hsm itself
                failed = True
                click.echo(f"hsm: warning: plugin {impl.plugin_name!r} failed to add its commands: {exc!r}", err=True)
                for info in registry.plugins:
                    if info.name == impl.plugin_name:
                        info.status, info.error = "failed", f"hsm_register_commands: {exc!r}"
            if impl.plugin_name == _CORE_PLUGIN:
                continue
            files.add(getattr(impl.plugin, "__file__", None) or "")
            after = _tree(self)
            for path in set(before) ^ set(after) | {p for p in before if p in after and before[p] != after[p]}:
                touched.setdefault(path[0], impl.plugin_name)
        add_value_completion(self)  # sweep ids and --sources entries complete in every command
        if failed or any(p.status == "failed" for p in registry.plugins):
            return  # keep warning about it on every command: no index
        # Every plugin's module, not only those adding commands now: a plugin that starts adding a
        # command (an editable install edited, a module replaced in place) must invalidate the index.
        files.update(getattr(plugin, "__file__", None) or "" for plugin in registry.pm.get_plugins())
        owners = core_commands.register_core_commands(click.Group())  # which module adds which name
        self._write_index(owners, touched, files)

    def _load_one(self, name: str) -> click.Command | None:
        """Load the command ``name`` alone when the index says core adds it and no plugin touches it."""
        index = None if name in LOAD_ALL_FOR else self._read_index()
        entry = (index or {}).get("commands", {}).get(name) if index else None
        if index is not None and entry is None:
            return None  # no such command
        if entry is None or entry.get("plugin") or not entry.get("module"):
            self.load_all()
            return self.commands.get(name)
        from hsm_core.cli.completion_cmd import add_command_value_completion

        before = dict(self.commands)
        import_module(entry["module"]).register(self)
        for added, command in self.commands.items():
            if before.get(added) is not command:
                add_command_value_completion(command)
        return self.commands.get(name)

    # ---- click's interface ----------------------------------------------------------------------

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is not None or self._all_loaded:
            return command
        if self._listing:
            entry = (self._read_index() or {}).get("commands", {}).get(cmd_name)
            if entry is not None:
                # Listed in the help from the index: a stand-in that shows the same help line.
                return click.Command(cmd_name, help=entry.get("help"), short_help=entry.get("short_help"),
                                     hidden=bool(entry.get("hidden")), deprecated=entry.get("deprecated") or False)
        return self._load_one(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        if not self._all_loaded:
            index = self._read_index()
            if index is not None:
                return sorted(set(index["commands"]) | set(self.commands))
            self.load_all()
        return sorted(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False
