#!/usr/bin/env python3
"""Writes N usage records (default 200,000) in W distinct workloads (default 50,000) as NDJSON,
for the fifty-thousand-workloads benchmark (issue 12, goal 3): two models, 70% interactive,
`max_tokens` 4096, 5,000 prompt prefixes, the 30 days before 2026-11-29, seeded.

    python3 benches/wide_file.py /tmp/wide.ndjson [N] [W]
"""
import json
import random
import sys

path = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
workloads = int(sys.argv[3]) if len(sys.argv) > 3 else 50_000
random.seed(11)
end = 1796083200000 - 2 * 86400000
models = ["gpt-4o", "gpt-4o-mini"]
with open(path, "w") as out:
    for i in range(count):
        record = {
            "id": f"wide-{i:07d}",
            "ts": end - random.randrange(30 * 86400000),
            "model": random.choice(models),
            "provider": "openai",
            "workload": f"w-{i % workloads}",
            "prompt_tokens": random.randrange(50, 4000),
            "completion_tokens": random.randrange(5, 800),
            "cached_tokens": 0,
            "latency_ms": random.randrange(100, 5000),
            "max_tokens": 4096,
            "interactive": random.random() < 0.7,
            "status": "ok",
            "prompt_prefix_hash": f"p{random.randrange(5000)}",
        }
        out.write(json.dumps(record, separators=(",", ":")) + "\n")
