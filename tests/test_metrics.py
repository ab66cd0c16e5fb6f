"""Metrics: Mesos's `/metrics/snapshot` key set with real values (per-framework counters,
per-role shares and offer filters, registrar, system, timers), and `/metrics` in Prometheus's
text format with the latency histograms, on master and agent."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from mezzo.master import views
from mezzo.master.metrics import framework_metrics
from mezzo.testing.master_cluster import MasterCluster, framework_info, task_info
from tests import test_agent_api, test_master_http
from tests.test_master_http import Running
from tests.test_operator_api import launch_running_task

running = test_master_http.running  # fixtures
runtime = test_agent_api.runtime


def test_per_framework_counters_and_latency_timers_follow_the_core() -> None:
    c = MasterCluster()
    agent = c.add_agent("cpus:2;mem:1024")
    sched = c.add_scheduler(framework_info("web app", roles=["web"], capabilities=["MULTI_ROLE"]))
    c.allocate()
    offer = sched.next_event("OFFERS").offers.offers[0]
    c.clock.advance(2.0)  # the scheduler thinks for 2 s
    sched.launch(offer, [task_info("t1", offer, "cpus:1;mem:128")])
    status = agent.update("t1", "TASK_RUNNING", framework_id=sched.framework_id)
    c.clock.advance(0.25)  # the acknowledgement comes back 250 ms later
    sched.acknowledge(sched.next_event("UPDATE").update.status)
    agent.update("t1", "TASK_FINISHED", framework_id=sched.framework_id)
    assert status.uuid
    c.allocate()
    second = sched.next_event("OFFERS").offers.offers[0]
    sched.call("DECLINE", {"offer_ids": [{"value": second.id.value}], "filters": {"refuse_seconds": 60}})

    prefix = f"master/frameworks/web%20app/{sched.framework_id}/"
    got = framework_metrics(c.master)
    assert got[prefix + "subscribed"] == 1
    assert got[prefix + "calls"] == 4  # SUBSCRIBE, ACCEPT, ACKNOWLEDGE, DECLINE
    assert got[prefix + "calls/accept"] == 1 and got[prefix + "calls/decline"] == 1
    assert got[prefix + "offers/sent"] == 2 and got[prefix + "offers/accepted"] == 1
    assert got[prefix + "offers/declined"] == 1 and got[prefix + "offers/rescinded"] == 0
    assert got[prefix + "events/offers"] == 2 and got[prefix + "events/update"] == 2
    assert got[prefix + "tasks/terminal/task_finished"] == 1
    assert got[prefix + "tasks/active/task_running"] == 0
    assert got[prefix + "roles/web/suppressed"] == 0

    timers = c.master.metrics.timer_snapshot()
    assert timers["master/offer_accept_latency_ms"] == 2000.0
    assert timers["master/offer_accept_latency_ms/count"] == 1
    assert timers["master/status_update_round_trip_ms"] == 250.0
    assert timers["allocator/mesos/allocation_run_ms/count"] == 2
    assert timers["allocator/mesos/allocation_run_ms/p99"] >= timers["allocator/mesos/allocation_run_ms/min"]

    core = views.metrics(c.master, c.clock.now())
    # The decline installed a refuse filter for the framework's role.
    assert core["allocator/mesos/offer_filters/roles/web/active"] == 1
    assert core["allocator/mesos/roles/web/shares/dominant"] == 0.0  # everything is back
    assert core["allocator/mesos/resources/cpus/total"] == 2


async def test_snapshot_has_mesos_keys_with_live_values(running: Running) -> None:
    r = running
    agent, fid, resp = await launch_running_task(r)
    try:
        snap = await r.get_json("/metrics/snapshot")
        for key in ("registrar/queued_operations", "registrar/registry_size_bytes",
                    "registrar/state_fetch_ms", "registrar/state_store_ms", "registrar/state_store_ms/p99",
                    "system/cpus_total", "system/load_1min", "system/load_5min", "system/load_15min",
                    "system/mem_total_bytes", "system/mem_free_bytes",
                    "allocator/mesos/allocation_run_ms/p50", "master/offer_accept_latency_ms",
                    "master/status_update_round_trip_ms"):
            assert key in snap, key
        assert snap["registrar/registry_size_bytes"] > 0  # the admitted agent
        assert snap["registrar/state_store_ms/count"] >= 1
        assert snap["system/cpus_total"] >= 1 and snap["system/mem_total_bytes"] > snap["system/mem_free_bytes"] > 0
        assert snap["master/event_queue_http_requests"] >= 1  # this very request
        assert snap["master/event_queue_messages"] >= 1
        assert snap["allocator/mesos/roles/*/shares/dominant"] > 0  # 0.5 of 8 cpus are used
        name = r.master.frameworks[fid].info.name
        assert snap[f"master/frameworks/{name}/{fid}/tasks/active/task_running"] == 1
        assert snap[f"master/frameworks/{name}/{fid}/offers/accepted"] == 1
        metrics = (await r.post("/api/v1", {"type": "GET_METRICS", "get_metrics": {}}))[1]
        assert "registrar/registry_size_bytes" in metrics and "system/load_1min" in metrics

        async with r.session.get(r.url + "/metrics") as got:
            assert got.status == 200 and got.content_type == "text/plain"
            text = await got.text()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
        assert len(names) == len(set(names)), "a metric family is exposed twice"
        cpus = families["mezzo_master_cpus_total"].samples[0]
        assert cpus.value == snap["master/cpus_total"] == 8
        running_tasks = families["mezzo_master_framework_tasks_active_task_running"].samples
        assert [(s.labels["id"], s.labels["name"], s.value) for s in running_tasks] == [(fid, name, 1.0)]
        shares = families["mezzo_allocator_role_dominant_share"].samples
        assert {s.labels["role"] for s in shares} >= {"*"}
        for histogram in ("mezzo_allocation_run_seconds", "mezzo_offer_accept_latency_seconds",
                          "mezzo_status_update_round_trip_seconds", "mezzo_registrar_state_store_seconds"):
            count = next(s for s in families[histogram].samples if s.name == histogram + "_count")
            assert count.value >= 1, histogram
        http = families["mezzo_http_request_duration_seconds"].samples
        endpoints = {s.labels["endpoint"] for s in http if s.name.endswith("_count")}
        assert {"/metrics/snapshot", "/api/v1/scheduler", "/api/v1"} <= endpoints
    finally:
        resp.close()
        await agent.stop()


async def test_agent_metrics(runtime) -> None:  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as session:
        async with session.get(runtime.url + "/metrics/snapshot") as got:
            snap = await got.json()
        assert snap["slave/cpus_total"] == 2 and snap["system/cpus_total"] >= 1
        async with session.get(runtime.url + "/metrics") as got:
            assert got.status == 200
            families = {f.name: f for f in text_string_to_metric_families(await got.text())}
    assert families["mezzo_slave_cpus_total"].samples[0].value == 2
    assert families["mezzo_system_load_1min"].samples
    http = families["mezzo_http_request_duration_seconds"].samples
    assert any(s.labels.get("endpoint") == "/metrics/snapshot" for s in http)


def test_a_timers_window_is_the_last_samples_and_outside_the_collector() -> None:
    """The ring keeps the last WINDOW samples (oldest first in `samples`), the snapshot's
    last value, count and percentiles are those of a deque of that length, and the window
    holds no object for the garbage collector to visit."""
    import gc
    import random
    from collections import deque

    from mezzo.core import metrics

    timer = metrics.DaemonMetrics().timer("x/run_ms", "x_run", "a test timer")
    reference: deque[float] = deque(maxlen=metrics.WINDOW)
    rng = random.Random(7)
    for n in (0, 1, 5, metrics.WINDOW - 1, 1, 1, metrics.WINDOW + 3):
        for _ in range(n):
            sample = rng.random()
            timer.observe(sample)
            reference.append(sample)
        assert timer.samples == list(reference)
        snap = timer.snapshot()
        if not reference:
            assert snap == {}
            continue
        ordered = sorted(reference)
        assert snap["x/run_ms"] == reference[-1] * 1000.0
        assert snap["x/run_ms/count"] == timer.count
        assert snap["x/run_ms/min"] == ordered[0] * 1000.0 and snap["x/run_ms/max"] == ordered[-1] * 1000.0
        assert snap["x/run_ms/p50"] == ordered[min(len(ordered) - 1, int(0.5 * len(ordered)))] * 1000.0
    assert len(gc.get_referents(timer._ring)) <= 1  # its type at most: no float objects

