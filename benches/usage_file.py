#!/usr/bin/env python3
"""Writes N usage records as NDJSON (default 1,000,000, ~242 MB) for benches/ingest.sh: four
models, five workloads, 200 prompt prefixes, the 30 days before 2026-11-29, seeded.

    python3 benches/usage_file.py /tmp/big.ndjson [N]
"""
import json
import random
import sys

path = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
random.seed(7)
end = 1796083200000 - 2 * 86400000
models = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "gpt-4.1"]
workloads = ["chat", "rag", "classify", "summarise", "extract"]
with open(path, "w") as out:
    for i in range(count):
        record = {
            "id": f"rec-{i:07d}",
            "ts": end - random.randrange(30 * 86400000),
            "model": random.choice(models),
            "provider": "openai",
            "workload": random.choice(workloads),
            "prompt_tokens": random.randrange(50, 4000),
            "completion_tokens": random.randrange(5, 800),
            "cached_tokens": 0,
            "latency_ms": random.randrange(100, 5000),
            "interactive": True,
            "status": "ok",
            "prompt_prefix_hash": f"p{random.randrange(200)}",
        }
        out.write(json.dumps(record, separators=(",", ":")) + "\n")
