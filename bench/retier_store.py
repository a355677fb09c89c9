"""Re-tiering N customers of one partition kept as the worker keeps them (encoded bytes in a memory store):
one `rules` record, one `Engine.process` call. `python -m bench.retier_store 1000000` (docs/PERFORMANCE.md).
"""
import resource
import sys
import time

import msgspec
import orjson

from bench.retier import RULES_B
from segmenter.engine import Engine, InputMessage, RulesChange
from segmenter.events import Kind
from segmenter.rules import default_rules, parse_rules
from state.codec import StoreCustomers, encode_customer
from state.stores import MemoryStore, StoreWrite

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
rules = default_rules()
store = MemoryStore(0)
table = StoreCustomers(store)
engine = Engine(rules, {}, {}, autoflush=False, customers_of=lambda p: table)
templates = []
for n in range(200):
    ts = f"2025-{1 + n % 12:02d}-{1 + n % 27:02d}T10:00:00Z"
    amount = f"{5 + n * 7 % 900}.00"
    body = {"event_id": f"t{n}", "type": "purchase", "customer_id": f"t{n}", "ts": ts, "amount": amount}
    r = engine.process([InputMessage(Kind.PURCHASES, "p", 0, n, f"t{n}".encode(), orjson.dumps(body), [])])
    templates.append(r.customers[f"t{n}"])
t0 = time.perf_counter()
write = StoreWrite()
for i in range(N):
    state = msgspec.structs.replace(templates[i % 200], customer_id=f"c{i}", emitted=[])
    write.customers[f"c{i}"] = encode_customer(state)
store.write(write)
del write
build = time.perf_counter() - t0
engine.forget_partitions()
version = parse_rules(RULES_B).version
t0 = time.perf_counter()
result = engine.process([RulesChange(0, RULES_B, version, "2026-12-02T01:40:00Z")])
took = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"customers={N} build={build:.1f}s retier={took:.1f}s per_customer_us={took / N * 1e6:.0f} "
      f"rate={N / took:,.0f}/s transitions={len(result.transitions):,} records={len(result.records):,} "
      f"peak_rss_mib={rss:,.0f}")
