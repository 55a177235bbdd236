"""Writes examples/sample-usage.ndjson: a month of LLM usage of a fictional product, built so
that every optimisation kind of PROTOCOL.md §4 applies somewhere. Deterministic (seeded)."""

import json
import random

rng = random.Random(20261101)
START = 1_792_540_800_000  # 2026-10-20T00:00:00Z
DAY = 86_400_000
records = []


def add(model, workload, prompt, completion, latency, **extra):
    n = len(records) + 1
    rec = {
        "id": f"sample-{n:05d}",
        "ts": START + rng.randrange(30 * DAY),
        "model": model,
        "workload": workload,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "latency_ms": latency,
    }
    rec.update(extra)
    records.append(rec)


# Short classification-like answers on a large model: substitution, an oversized output cap
# (max_tokens tuning) and a few failures (retry waste).
for i in range(600):
    add("gpt-4o", "support-bot", rng.randint(600, 1500), rng.randint(8, 45),
        rng.randint(400, 1400), max_tokens=1024,
        status="error" if i % 50 == 0 else "ok")
# Retrieval answers sharing a handful of long system prompts: prompt caching.
for i in range(400):
    add("gpt-4o", "rag-answers", rng.randint(3000, 6000), rng.randint(150, 400),
        rng.randint(1500, 4000), prompt_prefix_hash=f"rag-prefix-{i % 5}")
# Nightly summaries nobody waits for: batching.
for _ in range(300):
    add("gpt-4o", "nightly-summaries", rng.randint(3500, 4500), rng.randint(400, 600),
        rng.randint(5000, 9000), interactive=False)
# A flaky tool-using agent: retry waste.
for i in range(200):
    add("claude-3-5-sonnet", "agent-tools", rng.randint(2500, 3500), rng.randint(200, 400),
        rng.randint(2000, 6000), status="error" if i % 10 == 0 else "ok")

records.sort(key=lambda r: r["ts"])
with open("examples/sample-usage.ndjson", "w") as out:
    for rec in records:
        out.write(json.dumps(rec, separators=(",", ":")) + "\n")
print(f"wrote {len(records)} records")
