#!/usr/bin/env python3
"""A flood of `cancel_run` frames naming unknown runs (issue 14) from one socket of one user,
while a second user's `GET /api/threads` is timed: p50/p95/max before and during the flood,
and the server's RSS before, right after and 20 s after. Needs `pip install websockets` and a
running dev-mode server (`enclave serve --dev`).

    python3 benches/frame_flood.py http://127.0.0.1:8080 SERVER_PID [FRAMES]
"""
import asyncio
import json
import statistics
import sys
import threading
import time
import urllib.request
import uuid

import websockets

url, pid = sys.argv[1], int(sys.argv[2])
frames = int(sys.argv[3]) if len(sys.argv) > 3 else 50_000


def token(user):
    request = urllib.request.Request(f"{url}/api/dev/token", data=json.dumps({"user": user}).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))["token"]


def rss_mib():
    with open(f"/proc/{pid}/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS")) / 1024


def probe(token, seconds):
    """GET /api/threads as the probe user for `seconds`; its latencies in ms."""
    took, end = [], time.monotonic() + seconds
    request = urllib.request.Request(f"{url}/api/threads", headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() < end:
        start = time.monotonic()
        urllib.request.urlopen(request).read()
        took.append((time.monotonic() - start) * 1000)
        time.sleep(0.005)
    return took


def summary(took):
    took = sorted(took)
    return f"n {len(took)} p50 {statistics.median(took):.1f} ms p95 {took[int(len(took) * 0.95)]:.1f} ms max {took[-1]:.1f} ms"


async def flood(token):
    async with websockets.connect(f"{url.replace('http', 'ws', 1)}/ws?token={token}", max_queue=None) as socket:
        await socket.recv()
        answers = {"rate_limited": 0, "not_found": 0, "other": 0}

        async def read():
            async for message in socket:
                frame = json.loads(message)
                if frame.get("type") == "error":
                    code = frame.get("code")
                    answers[code if code in answers else "other"] += 1
                if sum(answers.values()) >= frames:
                    return

        reader = asyncio.create_task(read())
        start = time.monotonic()
        for _ in range(frames):
            await socket.send(json.dumps({"type": "cancel_run", "run_id": str(uuid.uuid4())}))
        sent = time.monotonic() - start
        try:
            await asyncio.wait_for(reader, 60)
        except (asyncio.TimeoutError, websockets.ConnectionClosed):
            pass
        return sent, answers


probe_token, flood_token = token("probe"), token("flood")
print("rss before", f"{rss_mib():.0f} MiB")
print("probe alone:", summary(probe(probe_token, 3)))
result = {}
thread = threading.Thread(target=lambda: result.update(took=probe(probe_token, 4)))
thread.start()
sent, answers = asyncio.run(flood(flood_token))
thread.join()
print(f"{frames} frames sent in {sent:.2f} s; answers {answers}")
print("probe during the flood:", summary(result["took"]))
print("rss right after", f"{rss_mib():.0f} MiB")
time.sleep(20)
print("rss 20 s after", f"{rss_mib():.0f} MiB")
