"""Lazily loaded handler modules: ApiVersions still advertises every API exactly, and the
first call of an API loads the real handler (issue 8, start-up time)."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from tests.server.fresh_interpreter import run_python

import kbroker.handlers as handlers
from kbroker import dispatch
from kbroker.dispatch import HANDLERS, RequestContext



def test_registry_matches_every_modules_own_registrations():
    handlers.load_all()
    real = {key: (entry.fn.__module__.rsplit(".", 1)[-1], entry.min_version, entry.max_version)
            for key, entry in HANDLERS.items() if entry.fn.__module__.startswith("kbroker.handlers.")}
    assert real == handlers.REGISTRY
    assert all(dispatch.is_loaded(key) for key in handlers.REGISTRY)


def test_registry_names_every_module_on_disk():
    # an unlisted module would be imported eagerly at every start (and warned about)
    listed = {module for module, _, _ in handlers.REGISTRY.values()}
    assert set(handlers.module_names()) == listed


def test_broker_start_imports_no_handler_module_but_advertises_all():
    out = run_python("""
        import json, sys
        from kbroker.broker import Broker  # what the broker imports before serving
        import kbroker.handlers
        from kbroker.dispatch import supported_versions
        loaded = sorted(m for m in sys.modules if m.startswith("kbroker.handlers."))
        print(json.dumps({"loaded": loaded, "served": supported_versions()}))
    """)
    result = json.loads(out)
    assert result["loaded"] == []
    served = {int(key): tuple(versions) for key, versions in result["served"].items()}
    assert served == {key: (low, high) for key, (_, low, high) in handlers.REGISTRY.items()}


def test_lazy_entry_loads_the_module_on_first_call():
    out = run_python("""
        import json, sys, trio
        import kbroker.handlers
        from kbroker.dispatch import HANDLERS, RequestContext, is_loaded

        class Image:
            offset = 7
        class Controller:
            image = Image()
        class Broker:
            controller = Controller()

        stand_in = HANDLERS[18]
        before = (is_loaded(18), "kbroker.handlers.api_versions" in sys.modules)
        ctx = RequestContext(Broker(), {}, 3, "c", "peer")
        body = trio.run(stand_in.fn, ctx, {"client_software_name": "a",
                                           "client_software_version": "1"})
        after = (is_loaded(18), HANDLERS[18].fn.__name__, HANDLERS[18] is not stand_in)
        keys = {k["api_key"]: [k["min_version"], k["max_version"]] for k in body["api_keys"]}
        print(json.dumps({"before": before, "after": after, "error": body["error_code"],
                          "keys": keys, "metadata_loaded": is_loaded(3)}))
    """)
    result = json.loads(out)
    assert result["before"] == [False, False]
    assert result["after"] == [True, "handle_api_versions", True]
    assert result["error"] == 0
    assert {int(k): tuple(v) for k, v in result["keys"].items()} == \
        {key: (low, high) for key, (_, low, high) in handlers.REGISTRY.items()}
    assert result["metadata_loaded"] is False  # only the module called is imported


@pytest.fixture
def fake_module(tmp_path, monkeypatch):
    """A handler module on sys.path for an unused api key; HANDLERS restored afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = dict(HANDLERS), dict(dispatch._LAZY)

    def write(name: str, body: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
        return name

    yield write
    HANDLERS.clear()
    HANDLERS.update(saved[0])
    dispatch._LAZY.clear()
    dispatch._LAZY.update(saved[1])
    for name in [m for m in sys.modules if m.startswith("fake_handler_")]:
        del sys.modules[name]


def _ctx() -> RequestContext:
    return RequestContext(None, {}, 0, None, "peer")  # type: ignore[arg-type]


async def test_stand_in_is_replaced_by_the_real_entry(fake_module):
    module = fake_module("fake_handler_ok", """
        from kbroker.dispatch import handler
        @handler(9001, 0, 2)
        async def handle(ctx, request):
            return {"echo": request["x"]}
    """)
    dispatch.register_lazy(9001, 0, 2, module)
    stand_in = HANDLERS[9001].fn
    assert not dispatch.is_loaded(9001)
    assert await stand_in(_ctx(), {"x": 5}) == {"echo": 5}
    assert dispatch.is_loaded(9001)
    assert HANDLERS[9001].fn.__module__ == module
    assert await HANDLERS[9001].fn(_ctx(), {"x": 6}) == {"echo": 6}


async def test_module_serving_another_range_than_advertised_fails_loudly(fake_module):
    module = fake_module("fake_handler_range", """
        from kbroker.dispatch import handler
        @handler(9002, 0, 3)
        async def handle(ctx, request):
            return {}
    """)
    dispatch.register_lazy(9002, 0, 2, module)
    with pytest.raises(RuntimeError, match="update REGISTRY"):
        await HANDLERS[9002].fn(_ctx(), {})


async def test_module_not_registering_its_key_fails_loudly(fake_module):
    module = fake_module("fake_handler_missing", """
        x = 1
    """)
    dispatch.register_lazy(9003, 0, 0, module)
    with pytest.raises(RuntimeError, match="did not register"):
        await HANDLERS[9003].fn(_ctx(), {})


def test_real_registration_twice_is_still_refused(fake_module):
    async def fn(ctx, request):
        return {}

    dispatch.handler(9004, 0, 0)(fn)
    with pytest.raises(RuntimeError, match="registered twice"):
        dispatch.handler(9004, 0, 0)(fn)
