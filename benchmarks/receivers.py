"""The receivers under load, and how long a page takes to become an executed notebook.

Usage (from the repo root)::

    python benchmarks/receivers.py [--data data/sample] [--seconds 20] [--clients 4] [--batch 512] [--json out.json]

1. **OTLP throughput**: ``workbench serve`` runs in its own process on a fresh workspace; ``--clients``
   threads of this process POST protobuf ``ExportTraceServiceRequest``s (``--batch`` spans each, every
   span unique) to ``/v1/traces`` for ``--seconds``, then ``ExportLogsServiceRequest``s to
   ``/v1/logs``, as the OTel exporters do (a 503 is retried after its Retry-After). Reported: spans and
   log records accepted per second, p50/p99 request latency, 503s; then the server is stopped and
   the store is checked to hold exactly the accepted rows (``consistent``).
2. **Alert to executed notebook**: a workspace holding ``--data`` (the sample; ingest not timed),
   ``workbench serve`` and a warm ``workbench worker`` running; a real Alertmanager (Debian's
   ``prometheus-alertmanager``, when installed; otherwise the same webhook payload is posted
   directly, and the JSON says so) gets the sample's first alert of the bad payments deploy
   (HighErrorRate, 2026-11-02T14:08:48Z) and sends its webhook to the workbench. Measured from the
   incident's creation (the webhook's arrival) to the analysis done, the notebook executed and the
   report written (target: the notebook ≤ 30 s), with ``--workers`` worker processes.

Both servers, the worker and Alertmanager listen on loopback only and are stopped at the end.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKBENCH = [sys.executable, "-m", "workbench.cli"]
ALERT_START = "2026-11-02T14:08:48Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token(root: Path, scopes: list[str]) -> str:
    args = [*WORKBENCH, "token", "new", "bench", "--json", "-w", str(root)]
    for scope in scopes:
        args += ["--scope", scope]
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)["token"]


def start(args: list[str], log: Path, ready_url: str | None = None, timeout: float = 60.0) -> subprocess.Popen:
    proc = subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    if ready_url is None:
        return proc
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(ready_url, timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{args[0]} did not start: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- OTLP throughput

def _requests(signal: str, count: int, batch: int, seed: int) -> list[bytes]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    out = []
    now = time.time_ns()
    resource = [KeyValue(key="service.name", value=AnyValue(string_value=f"bench-{seed % 4}")),
                KeyValue(key="deployment.environment", value=AnyValue(string_value="bench"))]
    for r in range(count):
        if signal == "traces":
            req = ExportTraceServiceRequest()
            rs = req.resource_spans.add()
            rs.resource.attributes.extend(resource)
            scope = rs.scope_spans.add()
            for i in range(batch):
                span = scope.spans.add()
                span.trace_id = (seed * 1_000_003 + r).to_bytes(16, "big")
                span.span_id = (seed << 40 | r << 16 | i + 1).to_bytes(8, "big")
                span.name = f"op {i % 20}"
                span.kind = 2
                span.start_time_unix_nano = now - 1_000_000 * (i + 1)
                span.end_time_unix_nano = now - 1_000_000 * i
                span.attributes.add(key="http.route", value=AnyValue(string_value=f"/route/{i % 7}"))
        else:
            req = ExportLogsServiceRequest()
            rl = req.resource_logs.add()
            rl.resource.attributes.extend(resource)
            scope = rl.scope_logs.add()
            for i in range(batch):
                rec = scope.log_records.add()
                rec.time_unix_nano = now - 1_000 * (r * batch + i)
                rec.severity_number = 9
                rec.severity_text = "INFO"
                rec.body.string_value = f"request {seed}-{r}-{i} served in {i % 97} ms"
        out.append(req.SerializeToString())
    return out


def _load(port: int, secret: str, signal: str, seconds: float, clients: int, batch: int) -> dict:
    per_client = max(4, int(seconds * 4))
    payloads = [_requests(signal, per_client, batch, c) for c in range(clients)]
    latencies: list[float] = []
    accepted = [0] * clients
    refused = [0] * clients
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {secret}"}
        for body in payloads[c]:
            if time.monotonic() >= deadline:
                break
            while True:
                t0 = time.perf_counter()
                conn.request("POST", f"/v1/{signal}", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                elapsed = time.perf_counter() - t0
                if resp.status == 503:
                    refused[c] += 1
                    time.sleep(float(resp.getheader("Retry-After") or 1))
                    continue
                if resp.status != 200:
                    raise SystemExit(f"/v1/{signal} answered {resp.status}")
                with lock:
                    latencies.append(elapsed)
                accepted[c] += batch
                break
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    return {"items": sum(accepted), "per_second": round(sum(accepted) / wall, 1), "requests": len(latencies),
            "refused_503": sum(refused), "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "seconds": round(wall, 2), "batch": batch, "clients": clients}


def throughput(seconds: float, clients: int, batch: int, tmp: Path) -> dict:
    import workbench

    ws = workbench.init(tmp / "otlp")
    secret = token(ws.root, ["telemetry:write"])
    port = free_port()
    server = start([*WORKBENCH, "serve", "--port", str(port), "-w", str(ws.root)], tmp / "serve-otlp.log",
                   f"http://127.0.0.1:{port}/api/v1/openapi.json")
    try:
        spans = _load(port, secret, "traces", seconds, clients, batch)
        logs = _load(port, secret, "logs", seconds, clients, batch)
    finally:
        stop(server)
    counts = ws.telemetry().counts()
    return {"spans": spans, "logs": logs, "stored": {"spans": counts["spans"], "logs": counts["logs"]},
            "consistent": counts["spans"] == spans["items"] and counts["logs"] == logs["items"]}


# --------------------------------------------------------------------------- alert to notebook

def _alertmanager(tmp: Path, hook: str, secret: str) -> tuple[subprocess.Popen | None, str | None]:
    exe = shutil.which("prometheus-alertmanager")
    if exe is None:
        return None, None
    port = free_port()
    (tmp / "am.yml").write_text(
        "route: {receiver: workbench, group_by: [alertname], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\n"
        f"receivers:\n  - name: workbench\n    webhook_configs:\n      - url: {hook}\n"
        f"        http_config: {{authorization: {{type: Bearer, credentials: {secret}}}}}\n")
    url = f"http://127.0.0.1:{port}"
    proc = start([exe, f"--config.file={tmp / 'am.yml'}", f"--storage.path={tmp / 'am-data'}",
                  f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
                  f"--web.external-url={url}", "--log.level=warn"], tmp / "am.log", f"{url}/-/ready")
    return proc, url


def _post(url: str, body: object, headers: dict[str, str] | None = None) -> None:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def alert_to_notebook(data: Path, tmp: Path, workers: int = 1, timeout: float = 180.0) -> dict:
    import workbench
    from workbench.telemetry.ingest import ingest

    ws = workbench.init(tmp / "sample")
    ingest(ws, str(data), who="bench")
    secret = token(ws.root, ["alerts:write"])
    port = free_port()
    server = start([*WORKBENCH, "serve", "--port", str(port), "-w", str(ws.root)], tmp / "serve-sample.log",
                   f"http://127.0.0.1:{port}/api/v1/openapi.json")
    worker = start([*WORKBENCH, "worker", "--poll", "0.25", "--concurrency", str(workers), "-w", str(ws.root)],
                   tmp / "worker.log")
    hook = f"http://127.0.0.1:{port}/api/v1/alerts/alertmanager"
    am, am_url = _alertmanager(tmp, hook, secret)
    try:
        end = time.monotonic() + 120  # a worker waiting for pages is warm: wait until it says so
        while (tmp / "worker.log").read_text(errors="replace").count(" ready (") < workers and time.monotonic() < end:
            time.sleep(0.2)
        alert = {"labels": {"alertname": "HighErrorRate", "service": "payments", "severity": "critical"},
                 "annotations": {"summary": "payments error_rate 16.1% > 5% for 5m",
                                 "runbook_url": "https://runbooks.example.com/payments"},
                 "startsAt": ALERT_START}
        sent = datetime.now(timezone.utc)
        if am_url:
            _post(f"{am_url}/api/v2/alerts", [alert])
        else:
            _post(hook, {"version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "status": "firing",
                         "receiver": "workbench", "truncatedAlerts": 0,
                         "alerts": [{**alert, "status": "firing", "endsAt": "0001-01-01T00:00:00Z",
                                     "fingerprint": "bench"}]}, {"Authorization": f"Bearer {secret}"})
        end = time.monotonic() + timeout
        kb = ws.knowledge_base()
        jobs = {}
        incident = None
        while time.monotonic() < end:
            new = [i for i in kb.list_incidents(status="open") if i.title.startswith("HighErrorRate")]
            if new:
                incident = new[0]
                jobs = kb.latest_jobs([incident.id]).get(incident.id, {})
                if all(jobs.get(k) is not None and jobs[k].status in ("done", "failed") for k in ("notebook", "report")):
                    break
            time.sleep(0.25)
        top = kb.list_hypotheses(incident.id)[:1] if incident else []
        kb.close()
    finally:
        for proc in (am, worker, server):
            if proc is not None:
                stop(proc)
    if incident is None:
        raise SystemExit("no incident was opened: " + (tmp / "serve-sample.log").read_text()[-2000:])

    def since(job: object) -> float | None:
        return None if job is None or job.finished_at is None else round((job.finished_at - incident.created).total_seconds(), 2)

    split = {}
    notebook = jobs.get("notebook")
    if notebook is not None and notebook.result and notebook.result.get("output_path"):
        from workbench.postmortem.notebooks import notebook_timings

        split = {k: round(v, 2) for k, v in notebook_timings(notebook.result["output_path"]).items()}
        split["job_s"] = notebook.result.get("seconds")
    return {"via": "alertmanager" if am_url else "direct webhook (no prometheus-alertmanager)",
            "notebook_split_s": split, "load_after": os.getloadavg()[0],
            "incident_id": incident.id, "alertmanager_to_webhook_s": round((incident.created - sent).total_seconds(), 2),
            "webhook_to_analysis_s": since(jobs.get("analysis")), "webhook_to_notebook_s": since(jobs.get("notebook")),
            "webhook_to_report_s": since(jobs.get("report")),
            "statuses": {k: j.status for k, j in jobs.items()}, "errors": {k: j.error for k, j in jobs.items() if j.error},
            "top_hypothesis": f"{top[0].service}/{top[0].cause}" if top else None,
            "target_notebook_s": 30}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "sample", help="workspace data for part 2")
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per signal")
    parser.add_argument("--clients", type=int, default=4, help="concurrent OTLP clients")
    parser.add_argument("--batch", type=int, default=512, help="spans / log records per request")
    parser.add_argument("--workers", type=int, default=1, help="worker processes for part 2")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-alert", action="store_true")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    out: dict = {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="wb-bench-receivers-") as folder:
        tmp = Path(folder)
        if not args.skip_throughput:
            out["otlp"] = throughput(args.seconds, args.clients, args.batch, tmp)
            print(json.dumps(out["otlp"], indent=1))
        if not args.skip_alert:
            out["alert_to_notebook"] = alert_to_notebook(args.data, tmp, workers=args.workers)
            print(json.dumps(out["alert_to_notebook"], indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
