import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from iclkit import (
    ConfigError,
    PluginConflictError,
    PluginLoadError,
    PluginNotFoundError,
    Selection,
    Selector,
    register_selector,
)
from iclkit.orderers.basic import RandomOrderer
from iclkit.registry import GROUPS, backends, formatters, orderers, selectors
from iclkit.selectors.random import RandomSelector

ICLKIT = str(Path(sys.executable).with_name("iclkit"))


class EveryOther(Selector):
    def select(self, query, k, *, exclude=frozenset()):
        picked = tuple(self.candidates(exclude)[::2][:k])
        return Selection(picked, (None,) * len(picked))


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """Install (on sys.path) a real distribution whose entry points we control."""

    def make(name, entry_points, module_source=""):
        dist = tmp_path / f"{name}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        if module_source:
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(module_source))
        monkeypatch.syspath_prepend(str(tmp_path))

    return make


def test_builtins_declared_through_entry_points():
    for group, names in {
        "selectors": {"random", "first", "balanced"},
        "orderers": {"as-selected", "random", "reverse"},
        "formatters": {"text", "chat"},
    }.items():
        infos = {p.name: p for p in GROUPS[group].plugins()}
        assert names <= set(infos)
        assert {infos[n].distribution for n in names} == {"iclkit"}
    assert selectors.get("random") is RandomSelector
    assert orderers.get("random") is RandomOrderer


def test_lookup_is_lazy():
    code = (
        "import sys\n"
        "from iclkit.registry import selectors, formatters\n"
        "selectors.plugins(); formatters.names()\n"
        "assert 'iclkit.selectors.balanced' not in sys.modules\n"
        "assert 'iclkit.formatters.chat' not in sys.modules\n"
        "selectors.get('balanced')\n"
        "assert 'iclkit.selectors.balanced' in sys.modules\n"
        "assert 'iclkit.selectors.first' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_name_lists_available():
    with pytest.raises(PluginNotFoundError) as info:
        selectors.get("nearest")
    message = str(info.value)
    assert "unknown selector plugin 'nearest'" in message
    assert all(name in message for name in ("balanced", "first", "random"))
    assert info.value.available == selectors.names()


def test_register_in_process_duplicate_and_override():
    register_selector("every-other", EveryOther)
    try:
        assert selectors.get("every-other") is EveryOther
        assert "every-other" in selectors.names()
        [info] = [p for p in selectors.plugins() if p.name == "every-other"]
        assert info.distribution is None and info.target.endswith(":EveryOther")
        with pytest.raises(PluginConflictError, match="already registered"):
            register_selector("every-other", EveryOther)
    finally:
        selectors.unregister("every-other")
    with pytest.raises(PluginConflictError, match="'random' is already registered"):
        register_selector("random", EveryOther)
    register_selector("random", EveryOther, override=True)
    try:
        assert selectors.get("random") is EveryOther
    finally:
        selectors.unregister("random")
    assert selectors.get("random") is RandomSelector
    with pytest.raises(PluginNotFoundError):
        selectors.unregister("random")  # the entry point stays


def test_register_rejects_wrong_type():
    with pytest.raises(PluginLoadError, match="not a subclass of iclkit.selectors.base.Selector"):
        register_selector("bad", RandomOrderer)


def test_conflicting_entry_points_need_an_override(fake_distribution):
    source = """
        from iclkit import Selection, Selector
        class Other(Selector):
            def select(self, query, k, *, exclude=frozenset()):
                return Selection((), ())
        """
    fake_distribution("fakeplug", "[iclkit.selectors]\nshared = fakeplug:Other\n", source)
    fake_distribution("fakeplug2", "[iclkit.selectors]\nshared = fakeplug2:Other\n", source)
    with pytest.raises(PluginConflictError) as info:
        selectors.get("shared")
    assert "fakeplug (fakeplug:Other)" in str(info.value)
    assert "fakeplug2 (fakeplug2:Other)" in str(info.value)
    import fakeplug

    register_selector("shared", fakeplug.Other, override=True)
    try:
        assert selectors.get("shared") is fakeplug.Other
    finally:
        selectors.unregister("shared")


def test_plugins_third_party_named_like_a_builtin_is_ignored_with_a_warning(
    fake_distribution, caplog
):
    fake_distribution(
        "squatter",
        """
        [iclkit.selectors]
        random = squatter:Other
        [iclkit.backends]
        local = squatter:Other
        """,
        "raise SystemExit('never imported')\n",
    )
    with caplog.at_level("WARNING", logger="iclkit.plugins"):
        assert selectors.get("random") is RandomSelector
        assert selectors.create("random", seed=2).seed == 2
        assert "iclkit" == next(p for p in selectors.plugins() if p.name == "random").distribution
        assert backends.get("local").__name__ == "LocalBackend"
    warned = [r.getMessage() for r in caplog.records]
    assert any(
        "selector 'random' of squatter (squatter:Other) is ignored: iclkit's built-in" in m
        for m in warned
    )
    assert any("backend 'local' of squatter" in m for m in warned)


def test_plugins_that_exit_or_fail_are_reported_by_name(fake_distribution):
    fake_distribution(
        "exiter",
        """
        [iclkit.selectors]
        exits-on-import = exiter_import:Thing
        fails-to-construct = exiter:Fails
        exits-on-construct = exiter:Exits
        """,
        """
        from iclkit import Selection, Selector
        class Fails(Selector):
            def __init__(self):
                raise RuntimeError("no GPU here")
            def select(self, query, k, *, exclude=frozenset()):
                return Selection((), ())
        class Exits(Fails):
            def __init__(self):
                raise SystemExit(3)
        """,
    )
    with pytest.raises(PluginLoadError, match=r"'fails-to-construct' \(exiter:Fails\) failed when"):
        selectors.create("fails-to-construct")
    with pytest.raises(PluginLoadError, match="RuntimeError: no GPU here"):
        selectors.create("fails-to-construct")
    with pytest.raises(PluginLoadError, match=r"'exits-on-construct'.*SystemExit: 3"):
        selectors.create("exits-on-construct")


def test_plugin_calling_sys_exit_at_import_is_reported_by_name(fake_distribution, tmp_path):
    fake_distribution(
        "exiter2", "[iclkit.selectors]\nbye = exiter2:Thing\n", "import sys\nsys.exit(0)\n"
    )
    with pytest.raises(
        PluginLoadError, match="'bye' from exiter2 could not be imported.*SystemExit"
    ):
        selectors.get("bye")


def test_plugins_malformed_entry_points_of_any_package_break_no_command(tmp_path, pool_file):
    dist = tmp_path / "broken_meta-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-meta\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[iclkit.selectors]\nthis line has no equals sign\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    listing = subprocess.run(
        [ICLKIT, "plugins", "--json"], capture_output=True, text=True, env=env, check=False
    )
    assert listing.returncode == 0, listing.stderr
    assert "skipped the plugins of broken-meta: its entry points cannot be read" in listing.stderr
    assert {"random", "first"} <= {p["name"] for p in json.loads(listing.stdout)["selectors"]}
    build = subprocess.run(
        [ICLKIT, "build", "--pool", pool_file, "--query", "q", "--k", "2"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert build.returncode == 0, build.stderr
    assert build.stdout.rstrip().endswith("Input: q\nOutput:")


def test_broken_and_wrong_type_entry_points(fake_distribution):
    fake_distribution(
        "brokenplug",
        """
        [iclkit.selectors]
        broken = brokenplug_missing_module:Thing
        [iclkit.formatters]
        notaformatter = json:dumps
        """,
    )
    with pytest.raises(PluginLoadError, match="could not be imported from brokenplug_missing"):
        selectors.get("broken")
    with pytest.raises(PluginLoadError, match="not a subclass"):
        formatters.get("notaformatter")


def test_create_from_name_mapping_and_instance():
    assert selectors.create("random", seed=3).seed == 3
    assert selectors.create({"name": "balanced", "seed": 5}).seed == 5
    ready = RandomSelector(seed=9)
    assert selectors.create(ready) is ready
    with pytest.raises(
        ConfigError, match="does not take option\\(s\\) lam; it takes: per_query, seed"
    ):
        selectors.create("random", lam=0.5)
    with pytest.raises(ConfigError, match="needs a 'name' key"):
        selectors.create({"seed": 1})
    with pytest.raises(ConfigError, match="cannot be applied to a ready selector"):
        selectors.create(ready, seed=1)
    with pytest.raises(ConfigError, match="must be a name"):
        selectors.create(42)
