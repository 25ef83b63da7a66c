"""Model-based test: random admin operations, snapshots and restarts against a dict model.

After every step the committed image must equal the model, and a restart (from the log, or
from a snapshot plus the log) must rebuild exactly the same image.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.errors import KafkaError
from kbroker.metadata.image import RESOURCE_TOPIC, to_records

from .conftest import running_controller

NAMES = ["a", "b", "c"]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(NAMES), st.integers(1, 3)),
        st.tuples(st.just("delete"), st.sampled_from(NAMES)),
        st.tuples(st.just("grow"), st.sampled_from(NAMES), st.integers(1, 2)),
        st.tuples(st.just("alter"), st.sampled_from(NAMES), st.sampled_from([None, "1000", "2000"])),
        st.tuples(st.just("snapshot")),
        st.tuples(st.just("restart")),
    ),
    max_size=25,
)


def observed(image) -> dict:
    return {name: (len(t.partitions), dict(t.configs)) for name, t in image.topics_by_name.items()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_random_operations_match_model(ops):
    model: dict[str, tuple[int, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        pending = list(ops)
        while True:
            async with running_controller(data_dir) as c:
                assert observed(c.image) == model
                restart = False
                while pending and not restart:
                    op = pending.pop(0)
                    kind = op[0]
                    try:
                        if kind == "create":
                            await c.create_topic(op[1], op[2], 1, None, {})
                            assert op[1] not in model
                            model[op[1]] = (op[2], {})
                        elif kind == "delete":
                            await c.delete_topic(op[1])
                            del model[op[1]]
                        elif kind == "grow":
                            total = model.get(op[1], (0, {}))[0] + op[2]
                            await c.create_partitions(op[1], total, None)
                            model[op[1]] = (total, model[op[1]][1])
                        elif kind == "alter":
                            await c.alter_configs(RESOURCE_TOPIC, op[1], {"retention.ms": op[2]})
                            configs = dict(model[op[1]][1])
                            configs.pop("retention.ms", None)
                            if op[2] is not None:
                                configs["retention.ms"] = op[2]
                            model[op[1]] = (model[op[1]][0], configs)
                        elif kind == "snapshot":
                            c.write_snapshot()
                        else:
                            restart = True
                    except KafkaError:
                        # only operations on a missing topic (or creating an existing one) may fail
                        assert (kind == "create") == (op[1] in model)
                    assert observed(c.image) == model
                before = to_records(c.image)
            if not pending:
                async with running_controller(data_dir) as c:
                    assert to_records(c.image) == before
                return
